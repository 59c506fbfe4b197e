"""Dynamic programming: hand calculations, identities, transformations, errors."""

import itertools

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import dp
from rlbook_lib import mdp as mdp_lib


def chain_mdp(gamma):
    """State 0 --(stay: +1 | go: 0)--> ..., state 1 pays +2 forever.

    Action 0 ("stay") keeps you where you are; action 1 ("go") moves you to state 1.
    r(0, stay) = 1, r(0, go) = 0, r(1, ·) = 2.
    """
    P = [[[1.0, 0.0], [0.0, 1.0]],
         [[0.0, 1.0], [0.0, 1.0]]]
    R = [[1.0, 0.0],
         [2.0, 2.0]]
    return mdp_lib.make_mdp(P, R, gamma)


def random_policy(key, num_states, num_actions):
    logits = jax.random.normal(key, (num_states, num_actions))
    return jax.nn.softmax(2.0 * logits, axis=-1)


S, A, COUNT = 20, 4, 6  # one shape for all random problems, so each function compiles once


@pytest.fixture(scope="module")
def batch():
    """COUNT random MDPs (γ = 0.9) and policies, stacked along a leading axis."""
    def draw(key):
        return mdp_lib.random_mdp(key, S, A, 0.9), random_policy(jax.random.fold_in(key, 1), S, A)

    return jax.jit(jax.vmap(draw))(jax.random.split(jax.random.key(0), COUNT))


def problems(batch, gamma, count=3):
    """The first ``count`` problems of the batch, re-checked by make_mdp, with discount γ."""
    mdps, pis = jax.tree_util.tree_map(np.asarray, batch)
    return [(mdp_lib.make_mdp(mdps.P[i], mdps.R[i], gamma), pis[i]) for i in range(count)]


def test_exact_evaluation_by_hand():
    gamma = 0.9
    m = chain_mdp(gamma)
    go = mdp_lib.deterministic_policy(jnp.array([1, 1]), 2)
    v1 = 2 / (1 - gamma)
    np.testing.assert_allclose(dp.policy_evaluation_exact(m, go), [0 + gamma * v1, v1], rtol=1e-5)
    # Half stay, half go in state 0: v0 = 0.5 (1 + γ v0) + 0.5 (0 + γ v1).
    half = jnp.array([[0.5, 0.5], [1.0, 0.0]])
    v0 = (0.5 * 1 + 0.5 * gamma * v1) / (1 - 0.5 * gamma)
    np.testing.assert_allclose(dp.policy_evaluation_exact(m, half), [v0, v1], rtol=1e-5)


def test_terminal_state_stops_the_return_by_hand():
    # 0 -> 1 (reward -1), 1 -> 2 (reward +10), 2 is terminal and absorbing.
    P = [[[0, 1, 0]], [[0, 0, 1]], [[0, 0, 1]]]
    R = [[-1.0], [10.0], [0.0]]
    for gamma in [1.0, 0.5]:
        m = mdp_lib.make_mdp(P, R, gamma, terminal=[False, False, True])
        pi = mdp_lib.uniform_policy(m)
        expected = [-1 + gamma * 10, 10, 0]
        np.testing.assert_allclose(dp.policy_evaluation_exact(m, pi), expected, rtol=1e-6)
        np.testing.assert_allclose(dp.policy_evaluation(m, pi).v, expected, rtol=1e-6)


def test_value_iteration_by_hand_depends_on_gamma():
    # Stay forever: 1 / (1 − γ); go: 0 + γ · 2 / (1 − γ). Going wins iff γ > 1/2.
    for gamma, best in [(0.9, 1), (0.4, 0)]:
        solution = dp.value_iteration(chain_mdp(gamma), tol=1e-7)
        v0 = max(1 / (1 - gamma), gamma * 2 / (1 - gamma))
        np.testing.assert_allclose(solution.v, [v0, 2 / (1 - gamma)], rtol=1e-5)
        assert int(jnp.argmax(solution.policy[0])) == best


def test_backups_and_finite_horizon_by_hand():
    gamma = 0.9
    m = chain_mdp(gamma)
    v = jnp.array([3.0, 5.0])
    np.testing.assert_allclose(dp.q_from_v(m, v), [[1 + gamma * 3, 0 + gamma * 5], [2 + gamma * 5] * 2], rtol=1e-6)
    np.testing.assert_allclose(dp.bellman_optimality_backup(m, v), [gamma * 5, 2 + gamma * 5], rtol=1e-6)
    half = jnp.array([[0.5, 0.5], [1.0, 0.0]])
    expected = [0.5 * (1 + gamma * 3) + 0.5 * (gamma * 5), 2 + gamma * 5]
    np.testing.assert_allclose(dp.bellman_expectation_backup(m, half, v), expected, rtol=1e-6)
    np.testing.assert_array_equal(dp.finite_horizon_evaluation(m, half, 0), [0.0, 0.0])
    np.testing.assert_allclose(dp.finite_horizon_evaluation(m, half, 2),
                               [0.5 * (1 + gamma * 0.5) + 0.5 * (gamma * 2), 2 + gamma * 2], rtol=1e-6)


def _evaluate_nonstationary(P, R, discount, rules):
    """NumPy backward recursion v_t = r_{π_t} + P_{π_t} (discount * v_{t+1}), v_H = 0."""
    v = np.zeros(len(R))
    for actions in reversed(rules):
        idx = np.arange(len(R))
        v = R[idx, actions] + P[idx, actions] @ (discount * v)
    return v


def _brute_force_finite_horizon(m, terminal, gamma, H):
    """Values of all (A^S)^H deterministic non-stationary policies, in NumPy."""
    P, R = np.asarray(m.P, np.float64), np.asarray(m.R, np.float64)  # the float32 model
    discount = gamma * (1.0 - terminal)
    num_states, num_actions = R.shape
    decision_rules = list(itertools.product(range(num_actions), repeat=num_states))
    values = np.array([_evaluate_nonstationary(P, R, discount, [np.array(d) for d in rules])
                       for rules in itertools.product(decision_rules, repeat=H)])
    return P, R, discount, values


def test_finite_horizon_value_iteration_equals_brute_force():
    # All (A^S)^H = 512 deterministic non-stationary policies of a 3-state MDP
    # with a terminal state, evaluated independently in NumPy. Any draw of the
    # model must pass, so the test does not depend on JAX's random stream.
    key_p, key_r = jax.random.split(jax.random.key(0))
    P = np.asarray(jax.random.dirichlet(key_p, jnp.ones(3), (3, 2)), np.float64)
    R = np.asarray(jax.random.normal(key_r, (3, 2)), np.float64)
    terminal = np.array([False, False, True])
    gamma, H = 0.9, 3
    m = mdp_lib.make_mdp(P, R, gamma, terminal=terminal)
    P, R, discount, values = _brute_force_finite_horizon(m, terminal, gamma, H)
    solution = dp.finite_horizon_value_iteration(m, H)
    assert solution.v.shape == (H + 1, 3) and solution.policy.shape == (H, 3, 2)
    np.testing.assert_allclose(solution.v[H], values.max(axis=0), rtol=1e-5, atol=1e-6)
    # The returned decision rules achieve it, and the shorter horizons are right too.
    rules = [np.argmax(np.asarray(rule), axis=1) for rule in solution.policy]
    np.testing.assert_allclose(_evaluate_nonstationary(P, R, discount, rules), solution.v[H], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(solution.v[1], R.max(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(solution.v[0], np.zeros(3))


def test_finite_horizon_optimal_policy_can_be_non_stationary():
    # State 0: "stay" earns 1 and stays, "go" earns 0 and moves to state 1, which
    # earns 3 and returns to 0 (action 0) or ends (action 1). With one step left,
    # staying is best (1 > 0); with two, going is (0 + 0.9 * 3 > 1 + 0.9 * 1).
    P = np.zeros((3, 2, 3))
    P[0, 0, 0] = P[0, 1, 1] = P[1, 0, 0] = P[1, 1, 2] = P[2, :, 2] = 1.0
    R = np.array([[1.0, 0.0], [3.0, 3.0], [0.0, 0.0]])
    terminal = np.array([False, False, True])
    gamma, H = 0.9, 3
    m = mdp_lib.make_mdp(P, R, gamma, terminal=terminal)
    solution = dp.finite_horizon_value_iteration(m, H)
    _, _, _, values = _brute_force_finite_horizon(m, terminal, gamma, H)
    np.testing.assert_allclose(solution.v[H], values.max(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(solution.v[2, 0], 0 + 0.9 * 3, rtol=1e-6)
    rules = [np.argmax(np.asarray(rule), axis=1) for rule in solution.policy]
    assert rules[-1][0] == 0 and rules[-2][0] == 1  # stay at the end, go before it


def test_finite_horizon_value_iteration_tends_to_value_iteration(batch):
    gamma = 0.9
    for m, _ in problems(batch, gamma, count=2):
        vi = dp.value_iteration(m, tol=1e-7)
        long = dp.finite_horizon_value_iteration(m, 300)
        # |v_H − v_*| ≤ γ^H |v_*|, below float32 rounding for H = 300.
        np.testing.assert_allclose(long.v[-1], vi.v, atol=2e-5 / (1 - gamma))
        # Far from the deadline the decision rule is the stationary optimal policy.
        np.testing.assert_array_equal(long.policy[0], vi.policy)
        # The values of the first k steps do not depend on the horizon H.
        short = dp.finite_horizon_value_iteration(m, 5)
        np.testing.assert_allclose(short.v, long.v[:6], rtol=1e-6, atol=1e-6)


def test_finite_horizon_evaluation_trace_by_hand(batch):
    gamma = 0.9
    m = chain_mdp(gamma)
    half = jnp.array([[0.5, 0.5], [1.0, 0.0]])
    trace = dp.finite_horizon_evaluation_trace(m, half, 2)
    expected = [[0, 0], [0.5 * 1 + 0.5 * 0, 2], [0.5 * (1 + gamma * 0.5) + 0.5 * (gamma * 2), 2 + gamma * 2]]
    np.testing.assert_allclose(trace, expected, rtol=1e-6)
    (m, pi), = problems(batch, gamma, count=1)
    trace = dp.finite_horizon_evaluation_trace(m, pi, 7)
    for k in [0, 3, 7]:
        np.testing.assert_allclose(trace[k], dp.finite_horizon_evaluation(m, pi, k), rtol=1e-6, atol=1e-6)


def test_policy_iteration_keeps_an_equally_good_action():
    # State 1 has two identical actions. Greedy argmax picks action 0 there, but
    # policy iteration started from action 1 keeps it and stops at once.
    m = mdp_lib.make_mdp([[[1, 0], [0, 1]], [[0.5, 0.5], [0.5, 0.5]]], [[1.0, 0.0], [2.0, 2.0]], 0.9)
    go = mdp_lib.deterministic_policy(jnp.array([1, 1]), 2)
    solution = dp.policy_iteration(m, initial_policy=go)
    assert int(solution.num_iterations) == 1
    np.testing.assert_array_equal(solution.policy, go)
    assert int(jnp.argmax(dp.greedy_policy(solution.q)[1])) == 0


def test_greedy_policy_breaks_ties_to_lowest_action():
    q = jnp.array([[1.0, 3.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(dp.greedy_policy(q), [[0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.95])
def test_iterative_evaluation_equals_linear_solve(batch, gamma):
    for m, pi in problems(batch, gamma):
        evaluation = dp.policy_evaluation(m, pi, tol=1e-6)
        assert float(evaluation.residual) < 1e-6
        scale = 1 / (1 - gamma)  # |v| ≲ max|r| / (1 − γ); float32 rounding grows with it
        np.testing.assert_allclose(evaluation.v, dp.policy_evaluation_exact(m, pi), atol=2e-5 * scale)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.95])
def test_optimality_identities_on_random_mdps(batch, gamma):
    for m, _ in problems(batch, gamma):
        vi = dp.value_iteration(m, tol=1e-6)
        atol = 2e-5 / (1 - gamma)
        # v* = T_* v*: the Bellman optimality equation holds at the fixed point.
        np.testing.assert_allclose(dp.bellman_optimality_backup(m, vi.v), vi.v, atol=atol)
        # The greedy policy is worth v*, and policy iteration started there is stable.
        np.testing.assert_allclose(dp.policy_evaluation_exact(m, vi.policy), vi.v, atol=atol)
        stable = dp.policy_iteration(m, initial_policy=vi.policy)
        assert int(stable.num_iterations) == 1
        np.testing.assert_array_equal(stable.policy, vi.policy)
        # Policy iteration from the uniform policy reaches the same values and policy
        # (random q-values have no ties).
        pi = dp.policy_iteration(m)
        np.testing.assert_allclose(pi.v, vi.v, atol=atol)
        np.testing.assert_array_equal(pi.policy, vi.policy)


def test_value_iteration_trace_contracts_at_rate_gamma(batch):
    gamma = 0.9
    (m, _), = problems(batch, gamma, count=1)
    v_star = dp.policy_iteration(m).v
    v0 = 5.0 * jnp.sin(jnp.arange(S, dtype=jnp.float32))  # any start will do
    trace = dp.value_iteration_trace(m, 60, v0)
    assert trace.shape == (61, S)
    np.testing.assert_array_equal(trace[0], v0)
    errors = np.max(np.abs(np.asarray(trace) - np.asarray(v_star)), axis=1)
    bound = gamma ** np.arange(61) * errors[0]
    assert np.all(errors <= bound + 1e-4)
    np.testing.assert_allclose(trace[1], dp.bellman_optimality_backup(m, v0), rtol=1e-6)


def test_jit_equals_eager(batch):
    (m, pi), = problems(batch, 0.9, count=1)
    for fn in [dp.policy_evaluation_exact, lambda m, pi: dp.policy_evaluation(m, pi).v,
               lambda m, pi: dp.finite_horizon_evaluation(m, pi, 7)]:
        np.testing.assert_allclose(jax.jit(fn)(m, pi), fn(m, pi), rtol=1e-6, atol=1e-6)
    for fn in [dp.value_iteration, dp.policy_iteration]:
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                               jax.jit(fn)(m), fn(m))


def test_vmap_over_mdps_equals_loop(batch):
    mdps, pis = batch
    values = jax.jit(jax.vmap(dp.policy_evaluation_exact))(mdps, pis)
    solutions = jax.jit(jax.vmap(dp.policy_iteration))(mdps)  # batched solves in a loop
    vi = jax.jit(jax.vmap(dp.value_iteration))(mdps)
    for i, (m, pi) in enumerate(problems(batch, 0.9, count=COUNT)):
        np.testing.assert_allclose(values[i], dp.policy_evaluation_exact(m, pi), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(solutions.v[i], dp.policy_iteration(m).v, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(vi.v[i], dp.value_iteration(m).v, rtol=1e-5, atol=1e-5)


def test_frozen_lake_optimal_success_probability():
    env = gym.make("FrozenLake-v1")
    m = mdp_lib.from_toy_text(env, 1.0)
    solution = dp.value_iteration(m, tol=1e-7)
    start = 0
    # Published values for slippery 4x4: about 0.82 without a time limit and
    # about 0.74 within gymnasium's 100-step limit.
    assert 0.81 < float(solution.v[start]) < 0.83
    assert 0.73 < float(dp.finite_horizon_evaluation(m, solution.policy, 100)[start]) < 0.75
    np.testing.assert_allclose(dp.policy_iteration(m).v, solution.v, atol=1e-4)


def test_frozen_lake_finite_horizon_matches_rollouts():
    """Success within gymnasium's 100-step limit, computed vs sampled in the real env."""
    env = gym.make("FrozenLake-v1")  # TimeLimit(max_episode_steps=100)
    m = mdp_lib.from_toy_text(env, 1.0)
    policy = np.asarray(jnp.argmax(dp.value_iteration(m).policy, axis=1))
    episodes, successes = 2000, 0
    for episode in range(episodes):
        s, _ = env.reset(seed=episode)
        while True:
            s, reward, terminated, truncated, _ = env.step(int(policy[s]))
            if terminated or truncated:
                successes += reward
                break
    p = float(dp.finite_horizon_evaluation(m, jax.nn.one_hot(policy, 4), 100)[0])
    assert abs(successes / episodes - p) < 4 * np.sqrt(p * (1 - p) / episodes)


def test_cliff_walking_shortest_path():
    m = mdp_lib.from_toy_text(gym.make("CliffWalking-v1"), 1.0)
    solution = dp.value_iteration(m)
    start = 36
    assert float(solution.v[start]) == -(1 + 11 + 1)  # up, 11 times right, down
    np.testing.assert_allclose(dp.policy_iteration(m).v, solution.v, atol=1e-4)


def test_errors():
    m = chain_mdp(0.9)
    with pytest.raises(ValueError, match=r"policy pi must have shape \[S, A\]"):
        dp.policy_evaluation(m, jnp.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="sums to"):
        dp.policy_evaluation_exact(m, jnp.array([[0.5, 0.6], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"v must have shape \[S\]"):
        dp.q_from_v(m, jnp.zeros(3))
    with pytest.raises(ValueError, match="horizon must be a non-negative"):
        dp.finite_horizon_evaluation(m, mdp_lib.uniform_policy(m), -1)
    with pytest.raises(ValueError, match="horizon must be a non-negative"):
        dp.finite_horizon_value_iteration(m, -1)
    with pytest.raises(ValueError, match="horizon must be a non-negative"):
        dp.finite_horizon_evaluation_trace(m, mdp_lib.uniform_policy(m), -2)
    with pytest.raises(ValueError, match="tol must be a non-negative"):
        dp.value_iteration(m, tol=-1.0)
    with pytest.raises(ValueError, match="max_sweeps must be a non-negative"):
        dp.policy_evaluation(m, mdp_lib.uniform_policy(m), max_sweeps=-5)
    with pytest.raises(ValueError, match="mdp must be an MDP"):
        dp.value_iteration((m.P, m.R, m.gamma))


def test_gamma_one_with_a_policy_that_never_terminates():
    m = mdp_lib.from_toy_text(gym.make("FrozenLake-v1", is_slippery=False), 1.0)
    left = mdp_lib.deterministic_policy(jnp.zeros(16, int), 4)  # walks into the left edge forever
    # Moving left, the top row and states 9, 10 drift to the left edge and stay there.
    with pytest.raises(ValueError, match=r"gamma = 1 .* singular: from states \[0, 1, 2, 3, 4, 8, 9, 10\]"):
        dp.policy_evaluation_exact(m, left)
    with pytest.raises(ValueError, match="initial policy"):
        dp.policy_iteration(m, initial_policy=left)
    # The uniform policy ends every episode, so gamma = 1 is fine for it.
    v = dp.policy_evaluation_exact(m, mdp_lib.uniform_policy(m))
    np.testing.assert_allclose(v, dp.policy_evaluation(m, mdp_lib.uniform_policy(m), tol=1e-7).v, atol=1e-4)
