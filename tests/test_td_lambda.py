"""TD(λ) with accumulating traces and the offline λ-return algorithm: the forward/backward
equivalence offline, plain NumPy loops of S&B's boxes, padding, and argument checks."""

import numpy as np
import pytest

from rlbook_lib import mc, returns, td_lambda  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import random_walk  # noqa: E402


def trajectory(seed, T=15, d=5, terminate_at=(6,), gamma=0.9):
    """Dense random features, rewards and weights; episodes end after the steps in ``terminate_at``;
    the last step is a time-limit cut (discount γ), so x(S_T) counts."""
    k_x, k_r, k_w = jax.random.split(jax.random.key(seed), 3)
    x = np.asarray(jax.random.normal(k_x, (T + 1, d)), np.float64)
    r = np.asarray(jax.random.normal(k_r, (T,)), np.float64)
    d_ = np.full(T, gamma)
    d_[list(terminate_at)] = 0.0
    return np.asarray(jax.random.normal(k_w, (d,)), np.float64), x, r, d_


def np_traces(x, discounts, lam):
    z, out = np.zeros(x.shape[1]), []
    for t in range(len(discounts)):
        previous = discounts[t - 1] if t > 0 else 0.0
        z = previous * lam * z + x[t]
        out.append(z.copy())
    return np.array(out)


def np_online_td_lambda(w, x, r, discounts, alpha, lam):
    """S&B's box "Semi-gradient TD(λ)", with per-step discounts, in NumPy float64."""
    w, z = w.copy(), np.zeros_like(w)
    for t in range(len(r)):
        previous = discounts[t - 1] if t > 0 else 0.0
        z = previous * lam * z + x[t]
        delta = r[t] + discounts[t] * w @ x[t + 1] - w @ x[t]
        w = w + alpha * delta * z
    return w


CASES = [dict(seed=0), dict(seed=1, terminate_at=()), dict(seed=2, terminate_at=(0, 4, 14)), dict(seed=3, gamma=1.0)]


@pytest.mark.parametrize("case", CASES)
def test_traces_equal_the_plain_loop(case):
    _, x, _, d = trajectory(**case)
    np.testing.assert_allclose(td_lambda.eligibility_traces(x, d, 0.8), np_traces(x, d, 0.8), rtol=1e-5, atol=1e-5)


def test_a_termination_clears_the_trace():
    x = np.eye(3)[[0, 1, 2, 0]]  # S_0..S_3 one-hot; S_3 only stands after the last step
    z = td_lambda.eligibility_traces(x, np.array([0.5, 0.0, 0.5]), 1.0)
    np.testing.assert_allclose(z, [[1, 0, 0], [0.5, 1, 0], [0, 0, 1]], rtol=1e-6)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.9, 1.0])
def test_offline_td_lambda_equals_the_offline_lambda_return_algorithm(case, lam):
    w, x, r, d = trajectory(**case)
    backward = td_lambda.offline_td_lambda(w, x, r, d, 0.1, lam)
    forward = td_lambda.offline_lambda_return(w, x, r, d, 0.1, lam)
    np.testing.assert_allclose(backward, forward, rtol=1e-4, atol=1e-5)
    assert not np.allclose(backward, w)  # the update did something


def test_offline_lambda_one_is_gradient_monte_carlo_and_zero_is_td0():
    w, x, r, d = trajectory(4)
    v = x @ w
    G = np.asarray(returns.discounted_returns(r, d, v[-1]), np.float64)  # Monte Carlo, bootstrap V(S_T)
    np.testing.assert_allclose(td_lambda.offline_lambda_return(w, x, r, d, 0.1, 1.0),
                               w + 0.1 * (G - v[:-1]) @ x[:-1], rtol=1e-4, atol=1e-5)
    td0 = r + d * v[1:] - v[:-1]
    np.testing.assert_allclose(td_lambda.offline_td_lambda(w, x, r, d, 0.1, 0.0),
                               w + 0.1 * td0 @ x[:-1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("lam", [0.0, 0.7, 1.0])
def test_online_td_lambda_equals_sutton_and_bartos_box(case, lam):
    w, x, r, d = trajectory(**case)
    np.testing.assert_allclose(td_lambda.online_td_lambda(w, x, r, d, 0.05, lam),
                               np_online_td_lambda(w, x, r, d, 0.05, lam), rtol=1e-4, atol=1e-5)


def test_online_approaches_offline_as_alpha_shrinks():
    w, x, r, d = trajectory(5)
    gaps = []
    for alpha in (1e-2, 1e-3):
        online = np.asarray(td_lambda.online_td_lambda(w, x, r, d, alpha, 0.8), np.float64)
        offline = np.asarray(td_lambda.offline_td_lambda(w, x, r, d, alpha, 0.8), np.float64)
        gaps.append(np.abs(online - offline).max() / alpha)  # the gap is O(α²): gap / α is O(α)
    assert gaps[1] < 0.3 * gaps[0]


def test_padded_tabular_episode_equals_the_unpadded_one():
    env = random_walk.RandomWalk(19)
    params = random_walk.RandomWalkParams(left_reward=-1.0)
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731
    episode = mc.collect_episode(env, params, policy, jax.random.key(6), 1.0, 2000)
    n = int(episode.length)
    assert 0 < n < 2000 and float(episode.discounts[n - 1]) == 0.0  # it terminated
    w = jnp.full(env.num_states, 0.1)
    x = td_lambda.tabular_features(episode.observations, episode.mask, env.num_states)
    padded = td_lambda.offline_lambda_return(w, x, episode.rewards, episode.discounts, 0.2, 0.8)
    short = td_lambda.offline_lambda_return(w, x[: n + 1], episode.rewards[:n], episode.discounts[:n], 0.2, 0.8)
    np.testing.assert_allclose(padded, short, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(td_lambda.offline_td_lambda(w, x, episode.rewards, episode.discounts, 0.2, 0.8),
                               padded, rtol=1e-4, atol=1e-5)


def test_jit_and_vmap_over_alpha_and_lambda():
    w, x, r, d = trajectory(7)
    alphas, lams = jnp.array([0.01, 0.1, 0.3]), jnp.array([0.0, 0.5, 1.0])
    run = jax.jit(jax.vmap(lambda a, lam: td_lambda.online_td_lambda(w, x, r, d, a, lam)))
    out = run(alphas, lams)
    for i in range(3):
        np.testing.assert_allclose(out[i], np_online_td_lambda(w, x, r, d, float(alphas[i]), float(lams[i])),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lambda_=1.2), r"lambda_ must be a scalar in \[0, 1\]"),
    (dict(alpha=0.0), "step_size must be a scalar > 0"),
    (dict(features=np.zeros((3, 2))), r"features must have shape \[T\+1, d\] .* = \[4, \.\.\.\]"),
    (dict(features=np.zeros(4)), "features must have shape"),
    (dict(rewards=np.zeros(4)), "rewards: 4, discounts: 3"),
    (dict(discounts=np.array([0.9, 2.0, 0.9])), r"discounts must lie in \[0, 1\]"),
])
def test_bad_arguments_are_named(kwargs, match):
    args = dict(w=np.zeros(2), features=np.zeros((4, 2)), rewards=np.zeros(3), discounts=np.full(3, 0.9),
                alpha=0.1, lambda_=0.5)
    args.update(kwargs)
    for fn in (td_lambda.offline_td_lambda, td_lambda.offline_lambda_return, td_lambda.online_td_lambda):
        with pytest.raises(ValueError, match=match):
            fn(**args)


def np_n_step_td(w, x, r, discounts, alpha, n):
    """S&B's box "n-step TD for estimating V", with linear features and per-step discounts:
    at time t the update of τ = t − n + 1 uses the w of that moment."""
    w, T = w.copy(), len(r)
    for t in range(T + n - 1):
        tau = t - n + 1
        if tau < 0:
            continue
        if tau >= T:
            break
        m = min(n, T - tau)
        g, product = 0.0, 1.0
        for i in range(m):
            g += product * r[tau + i]
            product *= discounts[tau + i]
        g += product * (w @ x[tau + m])
        w = w + alpha * (g - w @ x[tau]) * x[tau]
    return w


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n", [1, 2, 4, 40])
def test_n_step_td_equals_sutton_and_bartos_box(case, n):
    w, x, r, d = trajectory(**case)
    np.testing.assert_allclose(td_lambda.n_step_td(w, x, r, d, 0.05, n), np_n_step_td(w, x, r, d, 0.05, n),
                               rtol=1e-4, atol=1e-5)


def test_one_step_td_is_online_td0():
    w, x, r, d = trajectory(8)
    np.testing.assert_allclose(td_lambda.n_step_td(w, x, r, d, 0.05, 1),
                               td_lambda.online_td_lambda(w, x, r, d, 0.05, 0.0), rtol=1e-5, atol=1e-6)


def test_n_step_td_vmaps_over_n_and_alpha():
    w, x, r, d = trajectory(9)
    ns, alphas = jnp.array([1, 3, 8]), jnp.array([0.02, 0.1, 0.05])
    out = jax.jit(jax.vmap(lambda n, a: td_lambda.n_step_td(w, x, r, d, a, n)))(ns, alphas)
    for i in range(3):
        np.testing.assert_allclose(out[i], np_n_step_td(w, x, r, d, float(alphas[i]), int(ns[i])),
                                   rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="n must be a positive int"):
        td_lambda.n_step_td(w, x, r, d, 0.1, 0)


def np_lambda_return_updates(w, x, r, discounts, alpha, lam):
    """S&B eq. 12.4 in NumPy: targets G^λ_t from the first w (weighted sum of n-step returns),
    updates one after another."""
    v = x @ w
    T = len(r)

    def n_step(t, n):
        m, g, product = min(n, T - t), 0.0, 1.0
        for i in range(m):
            g += product * r[t + i]
            product *= discounts[t + i]
        return g + product * v[t + m]

    targets = [(1 - lam) * sum(lam ** (n - 1) * n_step(t, n) for n in range(1, T - t))
               + lam ** (T - t - 1) * n_step(t, T - t) for t in range(T)]
    w = w.copy()
    for t in range(T):
        w = w + alpha * (targets[t] - w @ x[t]) * x[t]
    return w


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("lam", [0.0, 0.8, 1.0])
def test_lambda_return_updates_equal_the_plain_loop(case, lam):
    w, x, r, d = trajectory(**case)
    np.testing.assert_allclose(td_lambda.lambda_return_updates(w, x, r, d, 0.05, lam),
                               np_lambda_return_updates(w, x, r, d, 0.05, lam), rtol=1e-4, atol=1e-5)


def test_sequential_and_summed_lambda_return_updates():
    w, x, r, d = trajectory(10)
    gaps = []
    for alpha in (1e-2, 1e-3):
        sequential = np.asarray(td_lambda.lambda_return_updates(w, x, r, d, alpha, 0.8), np.float64)
        summed = np.asarray(td_lambda.offline_lambda_return(w, x, r, d, alpha, 0.8), np.float64)
        gaps.append(np.abs(sequential - summed).max() / alpha)
    assert gaps[1] < 0.3 * gaps[0]  # they agree to O(α²)
    # One-hot, one state visited twice, α = 1: the summed increments overshoot, the sequential ones do not.
    x1 = np.eye(2)[[0, 0, 1]]  # S_0 = S_1 = state 0, S_2 = state 1 (terminal, after the last step)
    r1, d1 = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    w0 = np.zeros(2)
    assert float(td_lambda.offline_lambda_return(w0, x1, r1, d1, 1.0, 1.0)[0]) == pytest.approx(2.0)
    assert float(td_lambda.lambda_return_updates(w0, x1, r1, d1, 1.0, 1.0)[0]) == pytest.approx(1.0)


def test_index_features_equal_their_dense_one_hot_rows():
    # Two active features per state out of d = 6, and one padded step (index 6 = no feature).
    T, d = 8, 6
    k_i, k_r, k_w = jax.random.split(jax.random.key(11), 3)
    index = np.array(jax.random.randint(k_i, (T + 1, 2), 0, d))
    index[T - 1] = d  # a padded step: no feature, no reward, discount 0
    dense = np.asarray(jax.nn.one_hot(index, d).sum(axis=1))
    assert dense[T - 1].sum() == 0
    r = np.array(jax.random.normal(k_r, (T,)))
    r[T - 1] = 0.0
    discounts = np.full(T, 0.9)
    discounts[[3, T - 1]] = 0.0
    w = np.asarray(jax.random.normal(k_w, (d,)))
    for fn in (td_lambda.offline_td_lambda, td_lambda.offline_lambda_return, td_lambda.lambda_return_updates,
               td_lambda.online_td_lambda):
        np.testing.assert_allclose(fn(w, index, r, discounts, 0.1, 0.7), fn(w, dense, r, discounts, 0.1, 0.7),
                                   rtol=1e-5, atol=1e-6)
    for n in (1, 3):
        np.testing.assert_allclose(td_lambda.n_step_td(w, index, r, discounts, 0.1, n),
                                   td_lambda.n_step_td(w, dense, r, discounts, 0.1, n), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(td_lambda.eligibility_traces(index, discounts, 0.7, num_features=d),
                               td_lambda.eligibility_traces(dense, discounts, 0.7), rtol=1e-6)
    with pytest.raises(ValueError, match="num_features"):
        td_lambda.eligibility_traces(index, discounts, 0.7)
