"""Importance sampling: the estimators against plain loops and their defining properties,
off-policy Monte Carlo on Blackjack against S&B's value, and the argument checks."""

import numpy as np
import pytest

from rlbook_lib import checks, importance_sampling, returns  # sets the XLA flags first  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import blackjack, one_state, random_walk  # noqa: E402

EXAMPLE_5_4 = -0.27726  # S&B Example 5.4: v_π(13, 2, usable ace), π sticks on 20 or 21


def batch(seed, n=50):
    """Returns of either sign and heavy-tailed ratios, some of them 0."""
    k_g, k_r, k_z = jax.random.split(jax.random.key(seed), 3)
    g = np.asarray(jax.random.normal(k_g, (n,)), np.float64)
    rho = np.asarray(jnp.exp(2 * jax.random.normal(k_r, (n,))) * jax.random.bernoulli(k_z, 0.7, (n,)), np.float64)
    return g, rho


def test_ordinary_is_with_pi_equal_to_mu_is_the_plain_mean():
    g, _ = batch(0)
    probs = np.asarray(jax.random.uniform(jax.random.key(1), (50,), minval=0.1, maxval=1.0))
    rho = importance_sampling.step_ratios(probs, probs)
    np.testing.assert_array_equal(rho, np.ones(50))
    assert float(importance_sampling.ordinary_estimate(g, rho)) == pytest.approx(g.mean(), rel=1e-5, abs=1e-6)
    assert float(importance_sampling.weighted_estimate(g, rho)) == pytest.approx(g.mean(), rel=1e-5, abs=1e-6)


def test_pi_equal_to_mu_in_an_environment_gives_ratio_one():
    env = random_walk.RandomWalk()
    policy = lambda obs: jnp.array([0.3, 0.7])  # noqa: E731
    episodes = importance_sampling.off_policy_episodes(env, env.default_params(), policy, policy,
                                                       jax.random.key(2), 200, 1000)
    np.testing.assert_allclose(episodes.ratios, 1.0, rtol=1e-6)
    assert float(importance_sampling.ordinary_estimate(episodes.returns, episodes.ratios)) == pytest.approx(
        float(np.mean(episodes.returns)), rel=1e-6)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_weighted_is_is_a_convex_combination_of_the_returns(seed):
    g, rho = batch(seed)
    weights = rho / rho.sum()
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
    estimate = float(importance_sampling.weighted_estimate(g, rho))
    assert estimate == pytest.approx(float(weights @ g), rel=1e-4, abs=1e-6)
    assert g[rho > 0].min() - 1e-6 <= estimate <= g[rho > 0].max() + 1e-6


def test_estimators_by_hand():
    g, rho = np.array([1.0, -2.0, 4.0]), np.array([2.0, 0.0, 0.5])
    assert float(importance_sampling.ordinary_estimate(g, rho)) == pytest.approx((2 * 1 + 0 * -2 + 0.5 * 4) / 3)
    assert float(importance_sampling.weighted_estimate(g, rho)) == pytest.approx((2 * 1 + 0.5 * 4) / (2 + 0.5))
    assert float(importance_sampling.weighted_estimate(g, np.zeros(3))) == 0.0  # nothing consistent with π yet


def test_running_estimates_equal_sutton_and_bartos_incremental_updates():
    g, rho = batch(6, n=200)
    running = importance_sampling.running_estimates(g, rho)
    # Ordinary: the sample mean of ρG. Weighted: C ← C + W, V ← V + (W / C)(G − V) (S&B §5.6).
    ordinary, weighted, total, mean, c, v = [], [], 0.0, 0.0, 0.0, 0.0
    for n, (g_n, w) in enumerate(zip(g, rho), start=1):
        total += w * g_n
        ordinary.append(total / n)
        c += w
        if c > 0:
            v += w / c * (g_n - v)
        weighted.append(v)
    np.testing.assert_allclose(running.ordinary, ordinary, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(running.weighted, weighted, rtol=1e-4, atol=1e-5)
    assert float(running.weighted[-1]) == pytest.approx(float(importance_sampling.weighted_estimate(g, rho)), rel=1e-5)


def test_per_decision_returns_equal_the_plain_sum():
    T = 9
    k_r, k_p = jax.random.split(jax.random.key(7))
    r = np.asarray(jax.random.normal(k_r, (T,)), np.float64)
    rho = np.asarray(jax.random.uniform(k_p, (T,), maxval=2.0), np.float64)
    d = np.full(T, 0.9)
    d[3] = 0.0  # an episode ends after step 3
    bootstrap = 0.7
    expected = []
    for t in range(T):  # G̃_t = Σ_k (Π_{j=t}^{k-1} γ_{j+1}) ρ_{t:k} r_{k+1} + (Π γ)(Π ρ) V(S_T)
        total, discount, ratio = 0.0, 1.0, 1.0
        for k in range(t, T):
            ratio *= rho[k]
            total += discount * ratio * r[k]
            discount *= d[k]
        expected.append(total + discount * ratio * bootstrap)
    np.testing.assert_allclose(importance_sampling.per_decision_returns(r, d, rho, bootstrap), expected,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(importance_sampling.per_decision_returns(r, d, np.ones(T), bootstrap),
                               returns.discounted_returns(r, d, bootstrap), rtol=1e-6)


def test_ratio_to_end():
    rho = np.array([2.0, 0.5, 3.0])
    np.testing.assert_allclose(importance_sampling.ratio_to_end(rho), [2 * 0.5 * 3, 0.5 * 3, 3], rtol=1e-6)


def test_discounted_returns_of_played_episodes():
    env, params = one_state.OneState(), one_state.OneStateParams()
    left = lambda obs: jnp.array([1.0, 0.0])  # noqa: E731
    episodes = importance_sampling.off_policy_episodes(env, params, left, left, jax.random.key(8), 300, 1000,
                                                       gamma=0.5)
    # Always left: the only reward is the +1 of the last step, discounted by γ^(T−1).
    np.testing.assert_allclose(episodes.returns, 0.5 ** (np.asarray(episodes.lengths) - 1.0), rtol=1e-6)
    capped = importance_sampling.off_policy_episodes(env, params, left, left, jax.random.key(8), 50, 1)
    assert np.all(np.asarray(capped.lengths) == 1)


@pytest.mark.slow
def test_off_policy_monte_carlo_recovers_example_5_4():
    """Ordinary IS from the uniform behaviour policy is unbiased for S&B's v_π(13, 2, usable ace)."""
    env = blackjack.Blackjack()
    params = env.default_params()
    target = lambda obs: jnp.where(obs[0] >= 20, jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]))  # noqa: E731
    uniform = lambda obs: jnp.array([0.5, 0.5])  # noqa: E731
    start = lambda k: env.initial_from(k, params, jnp.array([13, 2, 1]))  # noqa: E731
    play = lambda k: importance_sampling.off_policy_episodes(  # noqa: E731
        env, params, target, uniform, k, 100, blackjack.LONGEST_EPISODE, initial=start)
    episodes = jax.jit(jax.vmap(play))(jax.random.split(jax.random.key(9), 2000))
    g, rho = np.asarray(episodes.returns).ravel(), np.asarray(episodes.ratios).ravel()
    assert set(np.unique(rho)) <= {0.0} | {2.0**k for k in range(1, 21)}
    weighted_g = rho * g
    standard_error = weighted_g.std(ddof=1) / np.sqrt(len(g))
    assert abs(weighted_g.mean() - EXAMPLE_5_4) <= 4 * standard_error
    assert abs(float(importance_sampling.weighted_estimate(g, rho)) - EXAMPLE_5_4) <= 4 * standard_error


@pytest.mark.parametrize("call, match", [
    (lambda: importance_sampling.step_ratios(np.array([0.5, 1.0]), np.array([0.5, 0.0])),
     "behaviour_probs .* support condition"),
    (lambda: importance_sampling.step_ratios(np.array([0.5]), np.array([0.5, 0.5])), "same length"),
    (lambda: checks.check_support(np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]])), r"mu .* index \(0, 1\)"),
    (lambda: importance_sampling.ordinary_estimate(np.zeros(3), np.zeros(4)), "returns: 3, ratios: 4"),
    (lambda: importance_sampling.weighted_estimate(np.zeros(2), np.array([1.0, -1.0])), "non-negative"),
    (lambda: importance_sampling.per_decision_returns(np.zeros(2), np.array([0.9, 1.2]), np.ones(2)),
     "discounts"),
    (lambda: importance_sampling.off_policy_episodes(one_state.OneState(), one_state.OneStateParams(), None, None,
                                                     jax.random.key(0), 10, 10, gamma=1.5), "gamma"),
    (lambda: importance_sampling.off_policy_episodes(one_state.OneState(), one_state.OneStateParams(), None, None,
                                                     jax.random.key(0), 0, 10), "num_episodes"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_support_condition_passes_when_mu_covers_pi_and_under_vmap():
    checks.check_support(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]]))
    ratios = jax.vmap(importance_sampling.step_ratios)(jnp.ones((2, 3)), jnp.full((2, 3), 0.5))
    np.testing.assert_allclose(ratios, 2.0)
