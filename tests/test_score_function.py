"""Score-function estimators: sampled trajectories, hand calculations, autodiff of a
surrogate, and unbiasedness against the exact gradient of the policy-gradient theorem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import dp
from rlbook_lib import policy_gradient as pg
from rlbook_lib import score_function as sf
from rlbook_lib import returns

from _pg_models import chain_with_terminal, episodic_mdp, random_theta


# --- sampling and the estimators -------------------------------------------------------


def test_sample_trajectory_stops_at_termination():
    gamma = 0.9
    t = sf.sample_trajectory(chain_with_terminal(gamma), jnp.zeros((3, 2)), jax.random.key(6), 5)
    np.testing.assert_array_equal(t.states, [0, 1, 2, 2, 2])
    np.testing.assert_allclose(t.rewards, [1, 2, 0, 0, 0])  # no reward is earned in the terminal state
    np.testing.assert_allclose(t.discounts, [gamma, 0, 0, 0, 0])
    np.testing.assert_allclose(returns.discounted_returns(t.rewards, t.discounts), [1 + gamma * 2, 2, 0, 0, 0],
                               rtol=1e-6)


def test_estimators_by_hand():
    # One state, π = (1/4, 3/4). The episode ends on its second step; the third step is after the end.
    theta = jnp.log(jnp.array([[1.0, 3.0]]))
    t = sf.Trajectory(states=jnp.array([0, 0, 0]), actions=jnp.array([1, 0, 1]),
                      rewards=jnp.array([1.0, 2.0, 0.0]), discounts=jnp.array([0.5, 0.0, 0.0]))
    score_0 = np.array([[1 - 1 / 4, -3 / 4]])  # e_a − π for a = 0
    score_1 = np.array([[-1 / 4, 1 - 3 / 4]])  # for a = 1
    G_0, G_1 = 1 + 0.5 * 2, 2
    np.testing.assert_allclose(sf.total_return_estimate(theta, t), G_0 * (score_1 + score_0), atol=1e-6)
    np.testing.assert_allclose(sf.reinforce_estimate(theta, t), 1 * G_0 * score_1 + 0.5 * G_1 * score_0, atol=1e-6)
    b = jnp.array([1.0, 1.0, 1.0])
    np.testing.assert_allclose(sf.reinforce_estimate(theta, t, b),
                               1 * (G_0 - 1) * score_1 + 0.5 * (G_1 - 1) * score_0, atol=1e-6)


def episode_ending_within(m, theta, horizon, first_key=9, min_steps=3):
    """The first key (searched in order from ``first_key``) whose episode ends in min_steps..horizon-1 steps.

    Deterministic for a given JAX random stream, and valid for any stream: episodes of the episodic MDP
    last about 14 steps, so some key among the first hundred qualifies.
    """
    for k in range(first_key, first_key + 100):
        t = sf.sample_trajectory(m, theta, jax.random.key(k), horizon)
        steps = int(np.sum(np.cumprod(np.concatenate([[1.0], np.asarray(t.discounts[:-1]) > 0]))))
        if min_steps <= steps < horizon:
            return t
    raise AssertionError("no episode of the right length among 100 keys")


@pytest.mark.parametrize("entropy_coef", [0.0, 0.7])
def test_estimators_equal_autodiff_of_a_surrogate(entropy_coef):
    # Independent route: weights w_t by plain Python loops, then jax.grad of the surrogate
    # Σ_t w_t log π(a_t|s_t) + c_H Σ_t Γ_t H(π(·|s_t)), whose gradient is the estimate.
    m = episodic_mdp(0.9)
    theta = random_theta(jax.random.key(8), 5, 3)
    H = 40
    t = episode_ending_within(m, theta, H)
    pi = np.asarray(pg.softmax_policy(theta), np.float64)
    entropy = -np.sum(pi * np.log(pi), axis=-1)
    r, c = np.asarray(t.rewards, np.float64), np.asarray(t.discounts, np.float64)
    Gamma, alive = np.ones(H), np.ones(H)
    for k in range(1, H):
        Gamma[k] = Gamma[k - 1] * c[k - 1]
        alive[k] = alive[k - 1] * (c[k - 1] > 0)
    assert 3 <= alive.sum() < H  # the episode ended inside the horizon, after a few steps
    r = r + entropy_coef * alive * entropy[np.asarray(t.states)]  # the bonus is paid on the steps taken
    G = np.zeros(H + 1)
    for k in reversed(range(H)):
        G[k] = r[k] + c[k] * G[k + 1]
    b = np.asarray(jax.random.normal(jax.random.key(10), (H,)))

    def surrogate_gradient(weights):
        def surrogate(th):
            log_pi = jax.nn.log_softmax(th, -1)
            entropies = -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1)
            return (jnp.sum(weights * log_pi[t.states, t.actions])
                    + entropy_coef * jnp.sum(jnp.asarray(Gamma, jnp.float32) * entropies[t.states]))
        return jax.grad(surrogate)(theta)

    for estimate, weights in [(sf.total_return_estimate(theta, t, entropy_coef), G[0] * alive),
                              (sf.reinforce_estimate(theta, t, None, entropy_coef), Gamma * G[:H]),
                              (sf.reinforce_estimate(theta, t, b, entropy_coef), Gamma * (G[:H] - b))]:
        np.testing.assert_allclose(estimate, surrogate_gradient(jnp.asarray(weights, jnp.float32)), atol=1e-5)


# --- Monte Carlo: the estimators are unbiased, and their variances ---------------------

NUM_EPISODES, HORIZON = 30_000, 120  # the cut at 120 steps moves the means by O(0.9^120) ≈ 3e-6, far below one SE
ENTROPY_COEF = 0.5


@pytest.fixture(scope="module")
def samples():
    """Per-episode estimates for the episodic MDP, and the exact values they estimate."""
    m = episodic_mdp(0.9)
    theta = 0.5 * random_theta(jax.random.key(11), 5, 3)
    pi = pg.softmax_policy(theta)
    v = dp.policy_evaluation_exact(m, pi)
    # v of the regularised reward r(s, a) + c_H H(π(·|s)), a baseline for the regularised estimate.
    v_entropy = dp.policy_evaluation_exact(m._replace(R=m.R + ENTROPY_COEF * pg.entropy(theta)[:, None]), pi)

    def one_episode(key):
        t = sf.sample_trajectory(m, theta, key, HORIZON)
        Gamma = jnp.cumprod(jnp.concatenate([jnp.ones(1), t.discounts[:-1]]))
        return dict(
            total_return=sf.total_return_estimate(theta, t),
            reward_to_go=sf.reinforce_estimate(theta, t),
            baseline=sf.reinforce_estimate(theta, t, v[t.states]),
            total_return_entropy=sf.total_return_estimate(theta, t, ENTROPY_COEF),
            baseline_entropy=sf.reinforce_estimate(theta, t, v_entropy[t.states], ENTROPY_COEF),
            G_0=returns.discounted_returns(t.rewards, t.discounts)[0],
            visits=jnp.einsum("t,ts->s", Gamma, jax.nn.one_hot(t.states, 5)),
        )

    draws = jax.jit(jax.vmap(one_episode))(jax.random.split(jax.random.key(12), NUM_EPISODES))
    exact = dict(gradient=pg.exact_gradient(m, theta), J=pg.exact_objective(m, theta),
                 gradient_entropy=pg.exact_gradient(m, theta, ENTROPY_COEF),
                 d=pg.discounted_visitation(m, pi))
    return {k: np.asarray(x, np.float64) for k, x in draws.items()}, exact


def assert_mean_within_standard_errors(draws, expected, k=4.0):
    """|mean − expected| ≤ k · SE in every component; components that never vary must match exactly."""
    mean = draws.mean(axis=0)
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    expected = np.asarray(expected, np.float64)
    assert np.all(np.abs(mean - expected) <= k * se + 1e-6), (mean - expected) / np.maximum(se, 1e-12)


def test_sampler_matches_the_model(samples):
    draws, exact = samples
    assert_mean_within_standard_errors(draws["G_0"], exact["J"])
    assert_mean_within_standard_errors(draws["visits"], exact["d"])


@pytest.mark.parametrize("form", ["total_return", "reward_to_go", "baseline"])
def test_estimator_is_unbiased(samples, form):
    draws, exact = samples
    assert_mean_within_standard_errors(draws[form], exact["gradient"])


@pytest.mark.parametrize("form", ["total_return_entropy", "baseline_entropy"])
def test_entropy_regularised_estimator_is_unbiased(samples, form):
    draws, exact = samples
    assert_mean_within_standard_errors(draws[form], exact["gradient_entropy"])


def test_baseline_keeps_the_mean_and_variance_falls(samples):
    draws, _ = samples
    # Paired on the same episodes, the difference has mean zero: the baseline adds no bias.
    assert_mean_within_standard_errors(draws["reward_to_go"] - draws["baseline"], np.zeros((5, 3)))
    total_variance = {form: draws[form].var(axis=0).sum() for form in ["total_return", "reward_to_go", "baseline"]}
    assert total_variance["total_return"] > total_variance["reward_to_go"] > total_variance["baseline"], total_variance
