"""Tests for rlbook_lib.contextual_bandits: hand-computed confidence widths, Sherman-Morrison
against a direct inverse, ridge estimates against NumPy, Thompson sampling's projected law,
bad input, and learning (LinUCB's regret grows more slowly than ε-greedy's)."""

import numpy as np
import pytest

from rlbook_lib import contextual_bandits as cb  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


def fed(state, xs, actions, rewards):
    for x, a, r in zip(xs, actions, rewards):
        state = cb.update(state, jnp.asarray(x, jnp.float32), jnp.int32(a), jnp.float32(r))
    return state


def test_linucb_width_equals_hand_computation():
    # Arm 0 has seen x = (1, 0) twice with λ = 1: A_0 = [[1 + 1 + 1, 0], [0, 1]] = diag(3, 1).
    # Arm 1 has seen nothing: A_1 = I. For the context x = (1, 1):
    state = fed(cb.init_state(2, 2, regularization=1.0), [[1, 0], [1, 0]], [0, 0], [1.0, 0.5])
    x = jnp.array([1.0, 1.0])
    expected = [np.sqrt(1 / 3 + 1 / 1), np.sqrt(1 + 1)]
    np.testing.assert_allclose(cb.confidence_widths(state, x), expected, rtol=1e-6)
    # ŵ_0 = A_0^{-1} b_0 = (1.0 + 0.5) / 3 in the first coordinate; the score adds c times the width.
    alpha = 0.5
    np.testing.assert_allclose(cb.linucb_scores(state, x, alpha),
                               [1.5 / 3 + alpha * expected[0], 0 + alpha * expected[1]], rtol=1e-6)


def test_sherman_morrison_matches_direct_ridge_regression():
    rng = np.random.default_rng(0)
    d, K, n, lam = 4, 3, 40, 0.7
    xs, actions, rewards = rng.normal(size=(n, d)), rng.integers(0, K, n), rng.normal(size=n)
    state = fed(cb.init_state(K, d, lam), xs, actions, rewards)
    for a in range(K):
        X, r = xs[actions == a], rewards[actions == a]
        gram = lam * np.eye(d) + X.T @ X
        np.testing.assert_allclose(state.a_inv[a], np.linalg.inv(gram), atol=1e-5)
        np.testing.assert_allclose(cb.estimates(state)[a], np.linalg.solve(gram, X.T @ r), atol=1e-4)


def test_thompson_score_has_the_projected_posterior_law():
    # x·w̃ with w̃ ~ N(ŵ, v² A^{-1}) is N(x·ŵ, v² xᵀA^{-1}x): compare moments over many draws.
    state = fed(cb.init_state(2, 2), [[1, 0], [1, 1], [0, 1]], [0, 0, 1], [1.0, 2.0, -1.0])
    x, v = jnp.array([0.5, 1.0]), 0.8
    mean, width = cb.estimates(state) @ x, cb.confidence_widths(state, x)
    theta_hat = cb.estimates(state)
    chol = np.linalg.cholesky(np.asarray(state.a_inv, np.float64))
    z = np.random.default_rng(1).normal(size=(200_000, 2, 2))
    draws = np.einsum("kij,nkj->nki", chol, z) * v + np.asarray(theta_hat)  # full vectors w̃_a
    projected = draws @ np.asarray(x)
    np.testing.assert_allclose(projected.mean(0), mean, atol=0.01)
    np.testing.assert_allclose(projected.std(0), v * np.asarray(width), rtol=0.01)


def test_world_rewards_and_regret_are_exact():
    world = cb.world_from_factors([[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [3.0, -1.0]], noise_std=0.0)
    np.testing.assert_allclose(cb.expected_rewards(world), [[1.0, 3.0], [2.0, -1.0]])
    trace = jax.jit(lambda k: cb.run(cb.epsilon_greedy(1.0), world, k, num_rounds=50))(jax.random.key(0))
    q = np.array([[1.0, 3.0], [2.0, -1.0]])
    users, actions = np.asarray(trace.users), np.asarray(trace.actions)
    np.testing.assert_allclose(trace.rewards, q[users, actions])  # no noise
    np.testing.assert_allclose(trace.regret, q[users].max(1) - q[users, actions])


def test_context_dimension_mismatch_raises():
    with pytest.raises(ValueError, match="context dimension mismatch"):
        cb.world_from_factors(np.zeros((5, 3)), np.zeros((4, 2)))
    state = cb.init_state(3, 4)
    with pytest.raises(ValueError, match="context dimension mismatch"):
        cb.confidence_widths(state, jnp.zeros(3))
    with pytest.raises(ValueError, match="context dimension mismatch"):
        cb.update(state, jnp.zeros(5), 0, 1.0)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="epsilon"):
        cb.epsilon_greedy(1.5)
    with pytest.raises(ValueError, match="c must"):
        cb.linucb(-1.0)
    with pytest.raises(ValueError, match="regularization"):
        cb.init_state(2, 2, regularization=0.0)


@pytest.mark.slow
def test_linucb_regret_grows_more_slowly_than_epsilon_greedy():
    world = cb.make_world(jax.random.key(0), num_users=50, num_items=5, dim=3)
    keys = jax.random.split(jax.random.key(1), 32)

    @jax.jit
    def regrets(keys):
        return [jax.vmap(lambda k: cb.run(agent, world, k, 500).regret.sum())(keys)
                for agent in (cb.epsilon_greedy(0.1), cb.linucb(1.0), cb.thompson_sampling(0.5))]

    eps, ucb, ts = (np.asarray(r) for r in regrets(keys))
    assert np.median(ucb) < np.median(eps) and np.median(ts) < np.median(eps)
    # A uniformly random choice would lose the mean gap to the best item every round.
    q = np.asarray(cb.expected_rewards(world))
    uniform = 500 * np.mean(q.max(1) - q.mean(1))
    assert np.median(ucb) < 0.25 * uniform
