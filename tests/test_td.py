"""Tests for rlbook_lib.td: one-step targets by hand arithmetic, termination
against truncation, JAX transformations, convergence to the linear-solve values
and to value iteration's q_*, S&B's cliff-walking comparison (Fig. 6.4), and
Double Q-learning against Q-learning on the maximisation-bias MDP (Fig. 6.5)."""

import dataclasses

import numpy as np
import pytest

from rlbook_lib import dp, mc, mdp, rollout, td  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import cliff_walking, frozen_lake, max_bias, random_walk  # noqa: E402

GAMMA, ALPHA = 0.9, 0.1
ONE_TABLE = ("sarsa", "expected_sarsa", "q_learning")  # the algorithms with a single Q
Q = jnp.array([[0.5, 0.3],  # Q(s=0, ·): we update Q(0, 0) = 0.5
               [0.2, 0.7],  # Q(s'=1, ·): the greedy next action is 1
               [0.0, 0.0]])


def transition(terminated=False, truncated=False, reward=1.0):
    """(s=0, a=0, r, s'=1)."""
    return rollout.Transition(obs=jnp.int32(0), action=jnp.int32(0), reward=jnp.float32(reward),
                              next_obs=jnp.int32(1), terminated=jnp.bool_(terminated),
                              truncated=jnp.bool_(truncated), episode_return=jnp.float32(0.0),
                              episode_length=jnp.int32(0))


def updated(algorithm, tr=None, next_action=0, epsilon=0.1, q=Q, **config):
    config = td.ControlConfig(algorithm, gamma=GAMMA, epsilon=epsilon, step_size=ALPHA, **config)
    agent = td.AgentState(q, jnp.zeros(q.shape, jnp.int32))
    return td.control_update(config, agent, transition() if tr is None else tr, jnp.int32(next_action))


# ------------------------------------------------------------------------ hand arithmetic


def test_td0_update_by_hand():
    v = jnp.array([0.5, 0.2, 0.7])
    new = td.td0_update(v, 0, 1.0, GAMMA, 2, ALPHA)
    np.testing.assert_allclose(new, [0.5 + 0.1 * (1 + 0.9 * 0.7 - 0.5), 0.2, 0.7], rtol=1e-6)
    terminal = td.td0_update(v, 0, 1.0, 0.0, 2, ALPHA)  # discount 0: S_{t+1} terminal
    np.testing.assert_allclose(terminal[0], 0.5 + 0.1 * (1 - 0.5), rtol=1e-6)


def test_q_learning_update_by_hand():
    new = updated("q_learning")
    np.testing.assert_allclose(new.q[0, 0], 0.5 + 0.1 * (1 + 0.9 * max(0.2, 0.7) - 0.5), rtol=1e-6)
    np.testing.assert_allclose(new.q[1:], Q[1:])  # nothing else moves
    assert int(new.counts[0, 0]) == 1 and int(new.counts.sum()) == 1


def test_sarsa_uses_the_next_action_taken():
    new = updated("sarsa", next_action=0)  # an exploratory, non-greedy A_{t+1}
    np.testing.assert_allclose(new.q[0, 0], 0.5 + 0.1 * (1 + 0.9 * 0.2 - 0.5), rtol=1e-6)


def test_expected_sarsa_averages_over_the_epsilon_greedy_policy():
    new = updated("expected_sarsa", epsilon=0.1)
    pi_next = [0.1 / 2, 0.1 / 2 + 0.9]  # ε-greedy in s' = 1, greedy action 1
    expected_q = pi_next[0] * 0.2 + pi_next[1] * 0.7
    np.testing.assert_allclose(new.q[0, 0], 0.5 + 0.1 * (1 + 0.9 * expected_q - 0.5), rtol=1e-6)


def test_targets_agree_for_a_greedy_next_action_and_epsilon_zero():
    targets = [float(updated(a, next_action=1, epsilon=0.0).q[0, 0]) for a in ONE_TABLE]
    np.testing.assert_allclose(targets, [0.5 + 0.1 * (1 + 0.9 * 0.7 - 0.5)] * 3, rtol=1e-6)


def test_targets_differ_otherwise():
    sarsa, expected, q_learning = (float(updated(a, next_action=0, epsilon=0.1).q[0, 0])
                                   for a in ONE_TABLE)
    # Q(s', 0) = 0.2 < E_π Q(s', ·) = 0.675 < max Q(s', ·) = 0.7.
    assert sarsa < expected < q_learning
    np.testing.assert_allclose(q_learning - expected, 0.1 * 0.9 * (0.7 - (0.05 * 0.2 + 0.95 * 0.7)),
                               atol=1e-6)  # a difference of float32 numbers near 0.5
    np.testing.assert_allclose(q_learning - sarsa, 0.1 * 0.9 * (0.7 - 0.2), atol=1e-6)


@pytest.mark.parametrize("algorithm", ONE_TABLE)
def test_terminated_does_not_bootstrap_truncated_does(algorithm):
    terminated = updated(algorithm, transition(terminated=True), next_action=1, epsilon=0.0)
    np.testing.assert_allclose(terminated.q[0, 0], 0.5 + 0.1 * (1 - 0.5), rtol=1e-6)
    truncated = updated(algorithm, transition(truncated=True), next_action=1, epsilon=0.0)
    np.testing.assert_allclose(truncated.q[0, 0], 0.5 + 0.1 * (1 + 0.9 * 0.7 - 0.5), rtol=1e-6)


def test_visit_count_step_size_averages_the_targets():
    config = td.ControlConfig("q_learning", step_size=1.0, step_size_power=1.0)
    agent = td.AgentState(Q, jnp.zeros((3, 2), jnp.int32))
    for reward in (1.0, 3.0):  # two terminal transitions from (0, 0): targets are the rewards
        agent = td.control_update(config, agent, transition(terminated=True, reward=reward), None)
    np.testing.assert_allclose(agent.q[0, 0], (1.0 + 3.0) / 2, rtol=1e-6)
    assert int(agent.counts[0, 0]) == 2


@pytest.mark.parametrize("algorithm", ONE_TABLE)
def test_jit_equals_eager(algorithm):
    config = td.ControlConfig(algorithm, gamma=GAMMA, epsilon=0.3, step_size=0.4, step_size_power=0.6)
    agent = td.AgentState(Q, jnp.full((3, 2), 2, jnp.int32))
    update = lambda agent, tr: td.control_update(config, agent, tr, jnp.int32(0))  # noqa: E731
    eager, jitted = update(agent, transition()), jax.jit(update)(agent, transition())
    np.testing.assert_allclose(eager.q, jitted.q, rtol=1e-6)
    np.testing.assert_array_equal(eager.counts, jitted.counts)


def test_expected_sarsa_with_a_greedy_target_is_q_learning():
    """S&B §6.6: Expected SARSA with target π ≠ μ is off-policy; π greedy gives Q-learning."""
    behaviour_eps = 0.3  # μ is ε-greedy; it plays no part in the update
    expected = updated("expected_sarsa", epsilon=behaviour_eps, target_epsilon=0.0)
    np.testing.assert_allclose(expected.q, updated("q_learning", epsilon=behaviour_eps).q, rtol=1e-6)
    other = updated("expected_sarsa", epsilon=behaviour_eps, target_epsilon=0.5)
    pi_next = [0.5 / 2, 0.5 / 2 + 0.5]  # π ε-greedy with ε = 0.5 in s' = 1
    np.testing.assert_allclose(other.q[0, 0], 0.5 + 0.1 * (1 + 0.9 * (pi_next[0] * 0.2 + pi_next[1] * 0.7)
                                                           - 0.5), rtol=1e-6)


def test_masked_q_learning_target_ignores_invalid_actions():
    q_next, valid = jnp.array([0.2, 9.0, 0.7]), jnp.array([True, False, True])
    np.testing.assert_allclose(td.q_learning_target(1.0, 0.9, q_next, valid), 1 + 0.9 * 0.7, rtol=1e-6)
    np.testing.assert_allclose(td.q_learning_target(1.0, 0.9, q_next), 1 + 0.9 * 9.0, rtol=1e-6)


def test_double_q_learning_target_selects_with_one_table_and_evaluates_with_the_other():
    q1_next, q2_next = jnp.array([0.2, 0.7]), jnp.array([0.9, 0.1])
    # Q_1 picks action 1 (0.7 > 0.2); Q_2 values it at 0.1, not at its own max 0.9.
    np.testing.assert_allclose(td.double_q_learning_target(1.0, 0.9, q1_next, q2_next), 1 + 0.9 * 0.1,
                               rtol=1e-6)
    np.testing.assert_allclose(td.double_q_learning_target(1.0, 0.9, q2_next, q1_next), 1 + 0.9 * 0.2,
                               rtol=1e-6)
    valid = jnp.array([True, False])  # with action 1 masked out, Q_1 must pick action 0
    np.testing.assert_allclose(td.double_q_learning_target(1.0, 0.9, q1_next, q2_next, valid),
                               1 + 0.9 * 0.9, rtol=1e-6)


Q1 = Q
Q2 = jnp.array([[-0.4, 0.1],
                [0.9, 0.1],  # Q_2(s', ·): its max is at action 0, Q_1's at action 1
                [0.0, 0.0]])


def double_updated(key):
    config = td.ControlConfig("double_q_learning", gamma=GAMMA, step_size=ALPHA)
    agent = td.AgentState(jnp.stack([Q1, Q2]), jnp.zeros((2, 3, 2), jnp.int32))
    return td.control_update(config, agent, transition(), None, key)


def test_double_q_learning_update_by_hand():
    """Each update changes one entry of one table, chosen by a coin, selecting with
    that table and evaluating with the other."""
    seen = set()
    for seed in range(20):
        new = double_updated(jax.random.key(seed))
        changed = np.argwhere(np.asarray(new.q != jnp.stack([Q1, Q2])))
        assert changed.shape == (1, 3) and tuple(changed[0, 1:]) == (0, 0)  # Q_i(s=0, a=0) only
        i = int(changed[0, 0])
        seen.add(i)
        if i == 0:  # Q_1 learns: argmax Q_1(s') = 1, valued by Q_2(s', 1) = 0.1
            expected = 0.5 + 0.1 * (1 + 0.9 * 0.1 - 0.5)
        else:  # Q_2 learns: argmax Q_2(s') = 0, valued by Q_1(s', 0) = 0.2
            expected = -0.4 + 0.1 * (1 + 0.9 * 0.2 - (-0.4))
        np.testing.assert_allclose(new.q[i, 0, 0], expected, rtol=1e-6)
        assert int(new.counts[i, 0, 0]) == 1 and int(new.counts.sum()) == 1
    assert seen == {0, 1}


def test_double_q_learning_updates_each_table_half_the_time():
    keys = jax.random.split(jax.random.key(0), 4000)
    first = jax.jit(jax.vmap(lambda k: double_updated(k).counts[0, 0, 0]))(keys)
    # Binomial(4000, 1/2): standard deviation sqrt(4000 / 4) ≈ 32.
    assert abs(int(first.sum()) - 2000) < 4 * 32


def test_behaviour_epsilon_decays_like_one_over_k():
    config = td.ControlConfig(epsilon=0.2, epsilon_decay=0.5)
    agent = td.AgentState(Q, jnp.zeros((3, 2), jnp.int32), jnp.int32(4))
    np.testing.assert_allclose(td.behaviour_epsilon(config, agent), 0.2 / (1 + 0.5 * 4), rtol=1e-6)
    np.testing.assert_allclose(td.behaviour_epsilon(td.ControlConfig(epsilon=0.2), agent), 0.2)


# -------------------------------------------------------------------------------- drivers


def cliff():
    env = cliff_walking.CliffWalking()
    return env, env.default_params()


def test_run_control_is_reproducible_under_a_fixed_key():
    env, params = cliff()
    config = td.ControlConfig("sarsa", epsilon=0.1, step_size=0.5)
    run = jax.jit(lambda k: td.run_control(config, env, params, k, 20))
    a, b, c = run(jax.random.key(0)), run(jax.random.key(0)), run(jax.random.key(1))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.episode_returns, c.episode_returns)
    # Every step pays −1 or −100, so an episode of T steps returns between −100 T and −T.
    lengths, returns = np.asarray(a.episode_lengths), np.asarray(a.episode_returns)
    assert np.all(lengths >= 13) and np.all((returns <= -lengths) & (returns >= -100 * lengths))


def test_episodes_are_cut_by_the_time_limit():
    env = frozen_lake.FrozenLake("4x4", is_slippery=True)
    config = td.ControlConfig(epsilon=1.0)
    result = jax.jit(lambda k: td.run_control(config, env, env.default_params(), k, 300))(jax.random.key(0))
    assert 1 <= int(result.episode_lengths.min()) and int(result.episode_lengths.max()) <= 100


def test_unfinished_episodes_are_nan_not_zero():
    env, params = cliff()
    config = td.ControlConfig(epsilon=1.0, max_steps=50)  # a random walk needs far more
    result = td.run_control(config, env, params, jax.random.key(0), 5)
    assert np.all(np.isnan(result.episode_returns)) and np.all(result.episode_lengths == 0)


def test_run_control_vmaps_over_the_step_size():
    env, params = cliff()
    config = td.ControlConfig("expected_sarsa")
    one = lambda a: td.run_control(dataclasses.replace(config, step_size=a),  # noqa: E731
                                   env, params, jax.random.key(0), 5).episode_returns
    swept = jax.jit(jax.vmap(one))(jnp.array([0.1, 0.5]))
    np.testing.assert_allclose(swept[1], jax.jit(lambda: one(0.5))())


def test_a_longer_run_begins_with_the_shorter_one():
    """Randomness is drawn per step, so the first 60 episodes of a 120-episode run
    are those of a 60-episode run, across the driver's chunks of 50 episodes."""
    env = random_walk.RandomWalk()
    config = td.ControlConfig("sarsa", epsilon=0.2, step_size=0.3)
    run = lambda n: td.run_control(config, env, env.default_params(), jax.random.key(4), n)  # noqa: E731
    short, long = run(60), run(120)
    np.testing.assert_array_equal(long.episode_returns[:60], short.episode_returns)
    np.testing.assert_array_equal(long.episode_lengths[:60], short.episode_lengths)
    assert np.all(np.asarray(long.episode_lengths) > 0)


def test_a_decayed_epsilon_makes_the_behaviour_greedy():
    """With ε_k = 0.1 / (1 + 100 k), episode 400 explores with probability below 3e-6
    per step: Q-learning's late episodes walk its greedy path, the 13 steps along the edge."""
    env, params = cliff()
    config = td.ControlConfig("q_learning", epsilon=0.1, epsilon_decay=100.0, step_size=0.5)
    result = jax.jit(lambda k: td.run_control(config, env, params, k, 500))(jax.random.key(0))
    np.testing.assert_array_equal(result.episode_returns[-100:], -13.0)


def test_greedy_path_by_hand():
    env, params = cliff()
    actions = np.full(48, cliff_walking.RIGHT)
    actions[36], actions[35] = cliff_walking.UP, cliff_walking.DOWN
    q = jax.nn.one_hot(actions, 4)
    path, length = td.greedy_path(env, params, q, jax.random.key(0), 20)
    # Up from S (36) to 24, right along the cliff's edge to 35, down into G (47).
    expected = [36, *range(24, 36), 47]
    assert int(length) == 13
    np.testing.assert_array_equal(path[:14], expected)
    np.testing.assert_array_equal(path[14:], [47] * 7)


def walk():
    env = random_walk.RandomWalk()
    params = env.default_params()
    return env, params, mdp.uniform_policy(env.to_mdp(params, 1.0))


@pytest.mark.slow
def test_td0_converges_to_one_sixth_to_five_sixths():
    env, params, pi = walk()
    config = td.PredictionConfig(step_size=1.0, step_size_power=0.8)
    runs = jax.jit(jax.vmap(lambda k: td.run_prediction(config, env, params, pi, k, 2000)))
    values = np.asarray(runs(jax.random.split(jax.random.key(0), 8)))
    assert values.shape == (8, 2001, 7)
    error = np.abs(values[:, -1, 1:6] - np.array([1, 2, 3, 4, 5]) / 6).max(axis=1)
    assert np.median(error) < 0.05


@pytest.mark.slow
def test_discounted_td0_converges_to_the_linear_solve():
    env, params, pi = walk()
    exact = np.asarray(dp.policy_evaluation_exact(env.to_mdp(params, GAMMA), pi))
    config = td.PredictionConfig(gamma=GAMMA, step_size=1.0, step_size_power=0.8)
    runs = jax.jit(jax.vmap(lambda k: td.run_prediction(config, env, params, pi, k, 2000)[-1]))
    v = np.asarray(runs(jax.random.split(jax.random.key(1), 8)))
    assert np.median(np.abs(v - exact)[:, 1:6].max(axis=1)) < 0.05


@pytest.mark.slow
def test_q_learning_converges_to_value_iterations_q_star():
    """Slippery 4x4 lake, γ = 0.9, uniformly random behaviour (Q-learning is
    off-policy), α_n = n(s, a)^−0.8. Q* lies in [0.02, 0.64] on the non-terminal
    states; after 20,000 episodes (~150,000 steps) the median over 8 runs of
    max |Q − Q*| is about 0.05. Tolerance: 0.08."""
    env = frozen_lake.FrozenLake("4x4", is_slippery=True)
    params = env.default_params()
    model = env.to_mdp(params, GAMMA)
    q_star = np.asarray(dp.value_iteration(model, tol=1e-7).q)
    config = td.ControlConfig("q_learning", gamma=GAMMA, epsilon=1.0, step_size=1.0, step_size_power=0.8)
    runs = jax.jit(jax.vmap(lambda k: td.run_control(config, env, params, k, 20_000).q))
    q = np.asarray(runs(jax.random.split(jax.random.key(0), 8)))
    nonterminal = ~np.asarray(model.terminal)
    error = np.abs(q - q_star)[:, nonterminal].max(axis=(1, 2))
    assert np.median(error) < 0.08


@pytest.mark.slow
def test_cliff_walking_sarsa_is_safer_than_q_learning():
    """S&B Fig. 6.4: ε = 0.1, α = 0.5, 500 episodes; online return over the last
    100 episodes ≈ −25 for SARSA, ≈ −50 for Q-learning, which walks the edge."""
    env, params = cliff()
    keys = jax.random.split(jax.random.key(0), 8)

    def train(algorithm):
        config = td.ControlConfig(algorithm, epsilon=0.1, step_size=0.5)
        run = jax.jit(jax.vmap(lambda k: td.run_control(config, env, params, k, 500)))
        result = run(keys)
        paths = jax.vmap(lambda q: td.greedy_path(env, params, q, jax.random.key(0), 100))(result.q)
        return np.median(np.asarray(result.episode_returns)[:, -100:].mean(axis=1)), paths

    sarsa, (_, sarsa_lengths) = train("sarsa")
    q_learning, (q_paths, q_lengths) = train("q_learning")
    expected_sarsa, _ = train("expected_sarsa")
    assert -35 < sarsa and q_learning < -40 and sarsa > q_learning
    assert expected_sarsa > q_learning
    np.testing.assert_array_equal(q_lengths, 13)  # the optimal path, along the edge
    np.testing.assert_array_equal(q_paths[0, :14], [36, *range(24, 36), 47])
    assert np.median(sarsa_lengths) > 13  # a detour away from the cliff


def test_invalid_arguments_are_rejected():
    env, params = cliff()
    with pytest.raises(ValueError, match="algorithm"):
        td.ControlConfig("sarsa_lambda")
    with pytest.raises(ValueError, match="epsilon"):
        td.ControlConfig("expected_sarsa", target_epsilon=-0.1)
    with pytest.raises(ValueError, match="epsilon_decay"):
        td.ControlConfig(epsilon_decay=-1.0)
    with pytest.raises(ValueError, match="action_mask"):
        td.run_control(td.ControlConfig(), env, params, jax.random.key(0), 5,
                       action_mask=np.ones((48, 3), bool))
    with pytest.raises(ValueError, match="epsilon"):
        td.ControlConfig(epsilon=1.5)
    with pytest.raises(ValueError, match="step_size_power"):
        td.PredictionConfig(step_size_power=-1.0)
    with pytest.raises(ValueError, match="max_steps"):
        td.ControlConfig(max_steps=0)
    with pytest.raises(ValueError, match="num_episodes"):
        td.run_control(td.ControlConfig(), env, params, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="pi must have shape"):
        td.run_prediction(td.PredictionConfig(), env, params, jnp.ones((3, 4)) / 4, jax.random.key(0), 5)


def maximisation_bias_runs(algorithm, num_runs=1000, num_episodes=300, **config):
    env = max_bias.MaxBias()
    config = td.ControlConfig(algorithm, **{"epsilon": 0.1, "step_size": 0.1, **config})
    run = jax.jit(jax.vmap(lambda k: td.run_control(config, env, env.default_params(), k, num_episodes,
                                                    action_mask=env.action_mask())))
    return run(jax.random.split(jax.random.key(0), num_runs))


@pytest.mark.slow
def test_double_q_learning_avoids_the_maximisation_bias():
    """S&B Fig. 6.5 (ε = 0.1, α = 0.1, 10 actions in B): Q-learning goes left from A
    in most early episodes; Double Q-learning never in more than about half, and
    ends near the ε/2 = 5% of the optimal ε-greedy policy. Fractions over 1000
    runs (standard error ≤ 0.016)."""
    left = {a: (np.asarray(maximisation_bias_runs(a).episode_lengths) == 2).mean(axis=0)
            for a in ("q_learning", "double_q_learning")}
    assert left["q_learning"][:50].max() > 0.8
    assert left["double_q_learning"].max() < 0.6
    assert np.all(left["q_learning"][10:100] > left["double_q_learning"][10:100])
    assert left["double_q_learning"][-50:].mean() < 0.1


@pytest.mark.slow
def test_double_q_learning_converges_to_q_star():
    """Uniform behaviour (ε = 1, every pair keeps being tried) and α_n = 1/n, so
    each Q_i(B, b) is a sample average: (Q_1 + Q_2) / 2 approaches q_* of the
    expected model, −0.1 for left and every action of B, 0 for right. After
    20,000 episodes each Q_i(B, b) averages about 500 rewards of sd 1, so the
    mean of the two tables has sd ≈ 1 / sqrt(1000) ≈ 0.03, and the largest of
    the 12 errors is typically ≈ 0.06."""
    env = max_bias.MaxBias()
    q_star = np.asarray(dp.value_iteration(env.to_mdp(env.default_params(), 1.0), tol=1e-9).q)
    q = np.asarray(maximisation_bias_runs("double_q_learning", num_runs=8, num_episodes=20_000,
                                          epsilon=1.0, step_size=1.0, step_size_power=1.0).q)
    mask = env.action_mask()
    mask[max_bias.END] = False
    error = np.abs(q - q_star)[:, mask].max(axis=1)
    assert np.median(error) < 0.12
