"""Discounted returns: hand calculations, an lfilter oracle, episode ends, transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from rlbook_lib import returns


def lfilter_returns(rewards, gamma):
    """G_t = Σ_k γ^k r_{t+1+k} as a linear filter run over the reversed rewards."""
    return scipy.signal.lfilter([1.0], [1.0, -gamma], np.asarray(rewards, np.float64)[::-1])[::-1]


def test_by_hand():
    G = returns.discounted_returns(jnp.array([1.0, 0.0, 2.0]), jnp.full(3, 0.9))
    expected = [1 + 0.9 * (0 + 0.9 * 2), 0 + 0.9 * 2, 2]
    np.testing.assert_allclose(G, expected, rtol=1e-6)
    assert G.dtype == jnp.float32


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_constant_discount_equals_lfilter(gamma):
    rewards = jax.random.normal(jax.random.key(0), (200,))
    G = returns.discounted_returns(rewards, jnp.full(200, gamma))
    expected = lfilter_returns(rewards, gamma)
    np.testing.assert_allclose(G, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_zero_discount_cuts_the_sum_between_episodes():
    # Two episodes back to back: the first terminates on its second step.
    rewards = jnp.array([1.0, 2.0, 3.0, 4.0])
    discounts = jnp.array([0.9, 0.0, 0.9, 0.9])
    G = returns.discounted_returns(rewards, discounts)
    expected = [1 + 0.9 * 2, 2, 3 + 0.9 * 4, 4]
    np.testing.assert_allclose(G, expected, rtol=1e-6)
    # Each episode's returns equal the returns of that episode alone.
    np.testing.assert_allclose(G[:2], lfilter_returns(rewards[:2], 0.9), rtol=1e-6)
    np.testing.assert_allclose(G[2:], lfilter_returns(rewards[2:], 0.9), rtol=1e-6)


def test_bootstrap_value_enters_with_gamma_to_the_remaining_steps():
    T, gamma, bootstrap = 6, 0.8, 5.0
    rewards = jax.random.normal(jax.random.key(1), (T,))
    discounts = jnp.full(T, gamma)
    with_bootstrap = returns.discounted_returns(rewards, discounts, bootstrap)
    without = returns.discounted_returns(rewards, discounts)
    remaining = T - np.arange(T)  # T − t steps to the cut
    np.testing.assert_allclose(with_bootstrap - without, gamma**remaining * bootstrap, rtol=1e-5)


def test_bootstrap_value_is_ignored_after_termination():
    rewards, discounts = jnp.array([1.0, 2.0]), jnp.array([0.9, 0.0])
    np.testing.assert_array_equal(returns.discounted_returns(rewards, discounts, 100.0),
                                  returns.discounted_returns(rewards, discounts, 0.0))


def test_jit_equals_eager():
    key_r, key_d = jax.random.split(jax.random.key(2))
    rewards = jax.random.normal(key_r, (50,))
    discounts = 0.95 * jax.random.bernoulli(key_d, 0.9, (50,))
    jitted = jax.jit(returns.discounted_returns)(rewards, discounts, 1.5)
    with jax.disable_jit():
        eager = returns.discounted_returns(rewards, discounts, 1.5)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)


def test_vmap_equals_loop():
    B, T = 5, 30
    key_r, key_d, key_b = jax.random.split(jax.random.key(3), 3)
    rewards = jax.random.normal(key_r, (B, T))
    discounts = 0.9 * jax.random.bernoulli(key_d, 0.8, (B, T))
    bootstrap = jax.random.normal(key_b, (B,))
    batched = jax.vmap(returns.discounted_returns)(rewards, discounts, bootstrap)
    looped = [returns.discounted_returns(rewards[i], discounts[i], bootstrap[i]) for i in range(B)]
    np.testing.assert_allclose(batched, np.stack(looped), rtol=1e-6, atol=1e-6)


def test_empty_trajectory():
    assert returns.discounted_returns(jnp.zeros(0), jnp.zeros(0)).shape == (0,)


@pytest.mark.parametrize(
    "rewards, discounts, bootstrap, match",
    [
        (jnp.ones(3), jnp.ones(4), 0.0, "rewards: 3, discounts: 4"),
        (jnp.ones((2, 3)), jnp.ones((2, 3)), 0.0, r"rewards must have shape \[T\]"),
        (jnp.ones(3), 0.9, 0.0, r"discounts must have shape \[T\]"),
        (jnp.ones(3), jnp.ones(3), jnp.zeros(3), "bootstrap_value must be a scalar"),
    ],
)
def test_errors(rewards, discounts, bootstrap, match):
    with pytest.raises(ValueError, match=match):
        returns.discounted_returns(rewards, discounts, bootstrap)


# ------------------------------------------------- n-step returns, λ-returns and GAE
#
# The oracles below are plain Python loops over the definitions, written apart from
# the library's backward recursions.


def np_n_step_returns(rewards, discounts, values, bootstrap, n):
    """G_{t:t+n} = Σ_{k<m} (Π_{j<k} γ_{t+j+1}) r_{t+k+1} + (Π_{j<m} γ_{t+j+1}) V(S_{t+m}), m = min(n, T − t)."""
    T = len(rewards)
    v = list(values) + [bootstrap]
    out = []
    for t in range(T):
        m = min(n, T - t)
        g, weight = 0.0, 1.0
        for k in range(m):
            g += weight * rewards[t + k]
            weight *= discounts[t + k]
        out.append(g + weight * v[t + m])
    return np.array(out)


def np_lambda_returns_as_weighted_sum(rewards, discounts, values, bootstrap, lam):
    """G^λ_t = (1 − λ) Σ_{n=1}^{T−t−1} λ^{n−1} G_{t:t+n} + λ^{T−t−1} G_{t:T}."""
    T = len(rewards)
    by_n = {n: np_n_step_returns(rewards, discounts, values, bootstrap, n) for n in range(1, T + 1)}
    return np.array([(1 - lam) * sum(lam ** (n - 1) * by_n[n][t] for n in range(1, T - t))
                     + lam ** (T - t - 1) * by_n[T - t][t] for t in range(T)])


def np_gae_double_loop(rewards, discounts, values, bootstrap, lam):
    """Â_t = Σ_l (Π_{j=1}^{l} γ_{t+j} λ) δ_{t+l}, δ_t = r_{t+1} + γ_{t+1} V(S_{t+1}) − V(S_t)."""
    T = len(rewards)
    v = list(values) + [bootstrap]
    delta = [rewards[t] + discounts[t] * v[t + 1] - v[t] for t in range(T)]
    out = []
    for t in range(T):
        a, weight = 0.0, 1.0
        for l in range(T - t):
            a += weight * delta[t + l]
            weight *= discounts[t + l] * lam
        out.append(a)
    return np.array(out)


def trajectory(seed, T=12, terminate_at=(4,), gamma=0.9):
    """Random rewards and values; episodes end (discount 0) after the steps in ``terminate_at``;
    the last step is a time-limit cut (discount γ), so the bootstrap value counts."""
    k_r, k_v, k_b = jax.random.split(jax.random.key(seed), 3)
    rewards = np.asarray(jax.random.normal(k_r, (T,)), np.float64)
    values = np.asarray(jax.random.normal(k_v, (T,)), np.float64)
    discounts = np.full(T, gamma)
    discounts[list(terminate_at)] = 0.0
    return rewards, discounts, values, float(jax.random.normal(k_b, ()))


ORACLE_CASES = [dict(seed=0), dict(seed=1, terminate_at=()), dict(seed=2, terminate_at=(0, 5, 11)),
                dict(seed=3, gamma=1.0), dict(seed=4, T=1, terminate_at=())]


@pytest.mark.parametrize("case", ORACLE_CASES)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 30])
def test_n_step_returns_equal_the_plain_loop(case, n):
    r, d, v, b = trajectory(**case)
    np.testing.assert_allclose(returns.n_step_returns(r, d, v, b, n), np_n_step_returns(r, d, v, b, n),
                               rtol=1e-5, atol=1e-5)


def test_n_step_by_hand():
    r, d, v, b = [1.0, 2.0, 3.0], [0.9, 0.9, 0.9], [10.0, 20.0, 30.0], 40.0
    expected = [1 + 0.9 * 2 + 0.9**2 * 30, 2 + 0.9 * 3 + 0.9**2 * 40, 3 + 0.9 * 40]
    np.testing.assert_allclose(returns.n_step_returns(r, d, v, b, 2), expected, rtol=1e-6)


@pytest.mark.parametrize("case", ORACLE_CASES)
def test_n_step_with_n_at_least_T_is_the_monte_carlo_return(case):
    r, d, v, b = trajectory(**case)
    mc = returns.discounted_returns(r, d, b)
    for n in (len(r), len(r) + 1, 1000):
        np.testing.assert_allclose(returns.n_step_returns(r, d, v, b, n), mc, rtol=1e-5, atol=1e-5)


def test_one_step_return_is_the_td_target():
    r, d, v, b = trajectory(5)
    np.testing.assert_allclose(returns.n_step_returns(r, d, v, b, 1) - v, returns.td_errors(r, d, v, b),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ORACLE_CASES)
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.8, 1.0])
def test_lambda_return_is_the_weighted_sum_of_n_step_returns(case, lam):
    r, d, v, b = trajectory(**case)
    np.testing.assert_allclose(returns.lambda_returns(r, d, v, b, lam),
                               np_lambda_returns_as_weighted_sum(r, d, v, b, lam), rtol=1e-5, atol=1e-5)


def test_lambda_return_ends():
    r, d, v, b = trajectory(6)
    np.testing.assert_allclose(returns.lambda_returns(r, d, v, b, 0.0), returns.n_step_returns(r, d, v, b, 1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns.lambda_returns(r, d, v, b, 1.0), returns.discounted_returns(r, d, b),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ORACLE_CASES)
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_gae_equals_the_double_loop(case, lam):
    r, d, v, b = trajectory(**case)
    np.testing.assert_allclose(returns.gae(r, d, v, b, lam), np_gae_double_loop(r, d, v, b, lam),
                               rtol=1e-5, atol=1e-5)


def test_gae_lambda_one_is_the_monte_carlo_advantage_and_zero_the_td_error():
    r, d, v, b = trajectory(7, terminate_at=(3, 8))
    np.testing.assert_allclose(returns.gae(r, d, v, b, 1.0), returns.discounted_returns(r, d, b) - v,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns.gae(r, d, v, b, 0.0), returns.td_errors(r, d, v, b), rtol=1e-6)
    np.testing.assert_allclose(returns.gae(r, d, v, b, 0.7), returns.lambda_returns(r, d, v, b, 0.7) - v,
                               rtol=1e-5, atol=1e-5)


def test_gae_by_hand_with_termination_and_truncation():
    # Step 0 terminates the first episode; the second is cut by a time limit after step 2.
    r, d, v, b, lam = [1.0, 0.0, 2.0], [0.0, 0.5, 0.5], [3.0, 4.0, 5.0], 6.0, 0.5
    delta = [1 + 0 * 4 - 3, 0 + 0.5 * 5 - 4, 2 + 0.5 * 6 - 5]
    expected = [delta[0], delta[1] + 0.5 * 0.5 * delta[2], delta[2]]
    np.testing.assert_allclose(returns.gae(r, d, v, b, lam), expected, rtol=1e-6)
    # A time-limit cut bootstraps: a different V(S_T) changes the last advantages.
    assert float(returns.gae(r, d, v, b + 1.0, lam)[2]) == pytest.approx(expected[2] + 0.5)


@pytest.mark.parametrize("fn, extra", [(returns.n_step_returns, 3), (returns.lambda_returns, 0.9),
                                       (returns.gae, 0.9), (returns.td_errors, None)])
def test_bootstrapped_estimators_jit_and_vmap(fn, extra):
    B, T = 4, 16
    k_r, k_d, k_v, k_b = jax.random.split(jax.random.key(8), 4)
    r = jax.random.normal(k_r, (B, T))
    d = 0.9 * jax.random.bernoulli(k_d, 0.8, (B, T))
    v, b = jax.random.normal(k_v, (B, T)), jax.random.normal(k_b, (B,))
    call = (lambda *a: fn(*a)) if extra is None else (lambda *a: fn(*a, extra))
    batched = jax.jit(jax.vmap(call))(r, d, v, b)
    with jax.disable_jit():
        looped = np.stack([call(r[i], d[i], v[i], b[i]) for i in range(B)])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-5)


def test_n_and_lambda_may_be_vmapped():
    r, d, v, b = trajectory(9)
    ns = jnp.array([1, 2, 5, 40])
    by_n = jax.vmap(lambda n: returns.n_step_returns(r, d, v, b, n))(ns)
    for i, n in enumerate([1, 2, 5, 40]):
        np.testing.assert_allclose(by_n[i], np_n_step_returns(r, d, v, b, n), rtol=1e-5, atol=1e-5)
    lams = jnp.array([0.0, 0.5, 1.0])
    by_lam = jax.vmap(lambda lam: returns.gae(r, d, v, b, lam))(lams)
    for i, lam in enumerate([0.0, 0.5, 1.0]):
        np.testing.assert_allclose(by_lam[i], np_gae_double_loop(r, d, v, b, lam), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lambda_=1.5), r"lambda_ must be a scalar in \[0, 1\]"),
    (dict(lambda_=-0.1), "lambda_"),
    (dict(discounts=np.full(4, 1.1)), r"discounts must lie in \[0, 1\]"),
    (dict(discounts=np.full(4, -0.5)), "discounts"),
    (dict(values=np.zeros(5)), "rewards: 4, discounts: 4, values: 5"),
    (dict(values=np.zeros((4, 1))), r"values must have shape \[T\]"),
    (dict(bootstrap_value=np.zeros(4)), "bootstrap_value must be a scalar"),
])
def test_bad_arguments_are_named(kwargs, match):
    args = dict(rewards=np.zeros(4), discounts=np.full(4, 0.9), values=np.zeros(4), bootstrap_value=0.0,
                lambda_=0.5)
    args.update(kwargs)
    for fn in (returns.lambda_returns, returns.gae):
        with pytest.raises(ValueError, match=match):
            fn(**args)
    if "lambda_" not in kwargs:
        del args["lambda_"]
        with pytest.raises(ValueError, match=match):
            returns.n_step_returns(**args, n=2)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_n_must_be_a_positive_int(n):
    with pytest.raises(ValueError, match="n must be a positive int"):
        returns.n_step_returns(np.zeros(3), np.ones(3), np.zeros(3), 0.0, n)


@pytest.mark.parametrize("n", [5, 13, 21, 36, 37, 64])
def test_n_step_returns_on_a_longer_trajectory(n):
    r, d, v, b = trajectory(10, T=37, terminate_at=(9, 30))
    np.testing.assert_allclose(returns.n_step_returns(r, d, v, b, n), np_n_step_returns(r, d, v, b, n),
                               rtol=1e-5, atol=1e-5)


def test_gae_from_transitions_equals_gae_on_each_cut_segment():
    # Three episodes in one segment: a termination after step 3, a time-limit cut after
    # step 7 (bootstrapping from the true next state, not from values[8]), and a cut at the end.
    T, lam = 12, 0.8
    r, d, v, b = trajectory(11, T=T, terminate_at=(3,))
    k = jax.random.key(12)
    next_values = np.concatenate([v[1:], [b]])
    next_values[7] = float(jax.random.normal(k, ()))  # V of the truncated episode's last state
    truncated = np.zeros(T)
    truncated[7] = 1.0
    expected = np.concatenate([np_gae_double_loop(r[:8], d[:8], v[:8], next_values[7], lam),
                               np_gae_double_loop(r[8:], d[8:], v[8:], b, lam)])
    got = returns.gae_from_transitions(r, d, v, next_values, truncated, lam)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns.lambda_returns_from_transitions(r, d, v, next_values, truncated, lam),
                               expected + v, rtol=1e-5, atol=1e-5)
    # Without cuts it is gae.
    plain = np.concatenate([v[1:], [b]])
    np.testing.assert_allclose(returns.gae_from_transitions(r, d, v, plain, np.zeros(T), lam),
                               returns.gae(r, d, v, b, lam), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="truncated: 11"):
        returns.gae_from_transitions(r, d, v, plain, np.zeros(T - 1), lam)


def test_n_may_be_a_concrete_jax_integer():
    r, d, v, b = trajectory(13)
    np.testing.assert_allclose(returns.n_step_returns(r, d, v, b, jnp.int32(3)), np_n_step_returns(r, d, v, b, 3),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="n must be a positive int"):
        returns.n_step_returns(r, d, v, b, jnp.int32(0))
