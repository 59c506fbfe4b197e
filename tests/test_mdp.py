"""Tabular MDPs: validation, policy matrices and the gymnasium toy-text models."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import mdp as mdp_lib

# A two-state, two-action MDP used in several tests.
P2 = [[[1.0, 0.0], [0.5, 0.5]],
      [[0.0, 1.0], [0.2, 0.8]]]
R2 = [[1.0, 0.0],
      [2.0, -1.0]]


def test_make_mdp_defaults_and_dtypes():
    m = mdp_lib.make_mdp(P2, R2, 0.9)
    assert m.P.dtype == jnp.float32 and m.R.dtype == jnp.float32 and m.gamma.dtype == jnp.float32
    np.testing.assert_array_equal(m.initial, [0.5, 0.5])
    np.testing.assert_array_equal(m.terminal, [False, False])
    assert m.terminal.dtype == jnp.bool_


@pytest.mark.parametrize(
    "P, R, gamma, initial, match",
    [
        ([[[1.0, 0.0], [0.5, 0.4]], [[0.0, 1.0], [0.2, 0.8]]], R2, 0.9, None, r"\(s, a\) = \(0, 1\) sums to 0\.9"),
        ([[[1.5, -0.5], [0.5, 0.5]], [[0.0, 1.0], [0.2, 0.8]]], R2, 0.9, None, "negative probability"),
        (P2, R2, -0.1, None, r"gamma must lie in \[0, 1\]"),
        (P2, R2, 1.5, None, r"gamma must lie in \[0, 1\]"),
        (P2, R2, [0.9, 0.9], None, "gamma must be a scalar"),
        (P2, [[1.0, 0.0]], 0.9, None, r"R must have shape \[S, A\]"),
        (P2, [[1.0, 0.0, 3.0], [2.0, -1.0, 3.0]], 0.9, None, r"R must have shape \[S, A\]"),
        ([[1.0, 0.0], [0.0, 1.0]], R2, 0.9, None, r"P must have shape \[S, A, S\], got 2-D"),
        (np.full((2, 2, 3), 1 / 3), R2, 0.9, None, "same S twice"),
        (P2, R2, 0.9, [0.7, 0.7], r"initial must sum to 1, but sums to 1\.4"),
        (P2, R2, 0.9, [1.0], r"initial must have shape \[S\]"),
        (P2, [[1.0, np.nan], [2.0, -1.0]], 0.9, None, "R contains NaN"),
    ],
)
def test_make_mdp_rejects_bad_input(P, R, gamma, initial, match):
    with pytest.raises(ValueError, match=match):
        mdp_lib.make_mdp(P, R, gamma, initial)


def test_make_mdp_rejects_bad_terminal_shape():
    with pytest.raises(ValueError, match=r"terminal must have shape \[S\]"):
        mdp_lib.make_mdp(P2, R2, 0.9, terminal=[True, False, False])


def test_make_mdp_skips_checks_under_jit():
    # Inside jit the arrays are tracers; the checks are skipped and nothing breaks.
    m = jax.jit(lambda P: mdp_lib.make_mdp(P, R2, 0.9))(jnp.asarray(P2))
    np.testing.assert_array_equal(m.P, np.asarray(P2, np.float32))


@pytest.mark.parametrize(
    "pi, match",
    [
        (np.full((2, 3), 1 / 3), r"policy pi must have shape \[S, A\] = \(2, 2\)"),
        (np.full((2,), 0.5), r"policy pi must have shape"),
        ([[0.5, 0.5], [0.7, 0.7]], r"\(s\) = \(1,\) sums to 1\.4"),
        ([[1.5, -0.5], [0.5, 0.5]], "negative probability"),
    ],
)
def test_check_policy(pi, match):
    m = mdp_lib.make_mdp(P2, R2, 0.9)
    with pytest.raises(ValueError, match=match):
        mdp_lib.check_policy(m, pi)


def test_policy_matrices_by_hand():
    m = mdp_lib.make_mdp(P2, R2, 0.9, terminal=[False, True])
    pi = jnp.array([[0.25, 0.75], [1.0, 0.0]])
    expected_P = [[0.25 * 1.0 + 0.75 * 0.5, 0.25 * 0.0 + 0.75 * 0.5], [0.0, 1.0]]
    np.testing.assert_allclose(mdp_lib.policy_transitions(m, pi), expected_P, rtol=1e-6)
    np.testing.assert_allclose(mdp_lib.policy_rewards(m, pi), [0.25 * 1.0 + 0.75 * 0.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(mdp_lib.continuation(m), [0.9, 0.0], rtol=1e-6)
    np.testing.assert_allclose(mdp_lib.uniform_policy(m), [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(mdp_lib.deterministic_policy(jnp.array([1, 0]), 2), [[0, 1], [1, 0]])


def test_nonterminating_states_by_hand():
    # 0 -> 1 -> 2 (terminal); 3 <-> 4 forever; 5 -> 4 half the time, else -> 2.
    P = np.zeros((6, 1, 6))
    for s, s2 in [(0, 1), (1, 2), (2, 2), (3, 4), (4, 3)]:
        P[s, 0, s2] = 1.0
    P[5, 0, [2, 4]] = 0.5
    m = mdp_lib.make_mdp(P, np.zeros((6, 1)), 1.0, terminal=[False, False, True, False, False, False])
    np.testing.assert_array_equal(mdp_lib.nonterminating_states(m, mdp_lib.uniform_policy(m)), [3, 4])


def test_random_mdp_is_valid_and_pure_in_key():
    m = mdp_lib.random_mdp(jax.random.key(0), 50, 4, 0.9)
    assert m.P.shape == (50, 4, 50) and m.R.shape == (50, 4)
    np.testing.assert_allclose(m.P.sum(-1), 1.0, atol=1e-5)
    again = mdp_lib.random_mdp(jax.random.key(0), 50, 4, 0.9)
    np.testing.assert_array_equal(m.P, again.P)
    keys = jax.random.split(jax.random.key(1), 4)
    batch = jax.jit(jax.vmap(lambda k: mdp_lib.random_mdp(k, 5, 3, 0.9)))(keys)
    assert batch.P.shape == (4, 5, 3, 5)


# --- gymnasium toy-text models ------------------------------------------------

def _read_model(env):
    """Direct reading of env.unwrapped.P into float64 arrays (duplicates added)."""
    model = env.unwrapped.P
    S, A = len(model), len(model[0])
    P, R = np.zeros((S, A, S)), np.zeros((S, A))
    for s in range(S):
        for a in range(A):
            for prob, s2, reward, _ in model[s][a]:
                P[s, a, s2] += prob
                R[s, a] += prob * reward
    return P, R


@pytest.mark.parametrize("map_name", ["4x4", "8x8"])
@pytest.mark.parametrize("slippery", [True, False])
def test_frozen_lake_model_equals_gymnasium(map_name, slippery):
    env = gym.make("FrozenLake-v1", map_name=map_name, is_slippery=slippery)
    m = mdp_lib.from_toy_text(env, 0.95)
    P, R = _read_model(env)
    np.testing.assert_array_equal(m.P, P.astype(np.float32))
    np.testing.assert_array_equal(m.R, R.astype(np.float32))
    desc = np.asarray(env.unwrapped.desc).reshape(-1)
    np.testing.assert_array_equal(m.terminal, np.isin(desc, [b"H", b"G"]))
    np.testing.assert_array_equal(m.initial, (desc == b"S").astype(np.float32))
    if slippery:  # a bump into the edge is listed twice; it must be counted twice
        assert float(m.P[0, 0, 0]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("map_name", ["4x4", "8x8"])
def test_frozen_lake_deterministic_steps_match_env(map_name):
    env = gym.make("FrozenLake-v1", map_name=map_name, is_slippery=False).unwrapped
    env.reset(seed=0)
    m = mdp_lib.from_toy_text(env, 0.95)
    for s in range(m.P.shape[0]):
        for a in range(4):
            env.s = s
            s2, reward, terminated, _, _ = env.step(a)
            assert s2 == int(jnp.argmax(m.P[s, a])) and float(m.P[s, a, s2]) == 1.0
            assert reward == float(m.R[s, a])
            assert terminated == bool(m.terminal[s2])


@pytest.mark.parametrize("map_name, steps", [("4x4", 3000), ("8x8", 600)])
def test_frozen_lake_slippery_frequencies_match_env(map_name, steps):
    env = gym.make("FrozenLake-v1", map_name=map_name, is_slippery=True).unwrapped
    env.reset(seed=1)
    m = mdp_lib.from_toy_text(env, 0.95)
    P = np.asarray(m.P, np.float64)
    for s in np.flatnonzero(~np.asarray(m.terminal)):
        for a in range(4):
            counts = np.zeros(P.shape[0])
            for _ in range(steps):
                env.s = s
                counts[env.step(a)[0]] += 1
            standard_error = np.sqrt(P[s, a] * (1 - P[s, a]) / steps)
            assert np.all(np.abs(counts / steps - P[s, a]) <= 5 * standard_error + 1e-12), (s, a)


def test_cliff_walking_structure():
    env = gym.make("CliffWalking-v1")
    m = mdp_lib.from_toy_text(env, 1.0)
    start, goal = 3 * 12 + 0, 3 * 12 + 11
    up, right, down = 0, 1, 2
    np.testing.assert_array_equal(m.initial, np.eye(48)[start])
    np.testing.assert_array_equal(np.flatnonzero(m.terminal), [goal])
    # Stepping into the cliff from the start or from the row above sends you back to the start.
    assert float(m.P[start, right, start]) == 1.0 and float(m.R[start, right]) == -100.0
    for col in range(1, 11):
        assert float(m.P[2 * 12 + col, down, start]) == 1.0 and float(m.R[2 * 12 + col, down]) == -100.0
    assert float(m.P[start, up, 2 * 12]) == 1.0 and float(m.R[start, up]) == -1.0
    assert float(m.P[2 * 12 + 11, down, goal]) == 1.0 and float(m.R[2 * 12 + 11, down]) == -1.0


def test_from_toy_text_needs_a_model():
    with pytest.raises(ValueError, match="no tabular model"):
        mdp_lib.from_toy_text(gym.make("CartPole-v1"), 0.9)


def test_taxi_model_is_consistent():
    env = gym.make("Taxi-v4", is_rainy=True)
    m = mdp_lib.from_toy_text(env, 0.99)
    P, R = _read_model(env)
    np.testing.assert_array_equal(m.P, P.astype(np.float32))
    np.testing.assert_array_equal(m.R, R.astype(np.float32))
    assert int(m.terminal.sum()) == 4  # passenger delivered, one state per destination
    # Every transition out of a state reachable from the start is flagged exactly
    # as `terminal` says, so reading termination per next state loses nothing.
    # (An episode ends on entering a terminal state, so the search stops there.)
    terminal = np.asarray(m.terminal)
    reachable = np.asarray(m.initial) > 0
    for _ in range(50):
        reachable |= (P[reachable & ~terminal].reshape(-1, P.shape[0]) > 0).any(0)
    for s in np.flatnonzero(reachable & ~terminal):
        for a in range(6):
            for _, s2, _, terminated in env.unwrapped.P[s][a]:
                assert terminated == bool(m.terminal[s2])
