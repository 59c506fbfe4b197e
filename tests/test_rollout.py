"""Auto-reset stepping: time limits, true final observations, episode statistics.

References: hand-planned episodes, gymnasium's own TimeLimit wrapper replaying
the same actions, and plain Python loops over the rewards.
"""

import functools

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import rollout
from rlbook_lib.envs import cliff_walking, frozen_lake, walk
from rlbook_lib.envs.frozen_lake import DOWN, LEFT, RIGHT, UP


def uniform_policy(num_actions):
    return lambda key, obs: jax.random.randint(key, (), 0, num_actions)


@functools.partial(jax.jit, static_argnames=("env", "policy", "num_steps"))
def _run(env, params, policy, key, num_steps):
    key_reset, key_run = jax.random.split(key)
    state = rollout.reset(env, params, key_reset)
    return rollout.rollout(env, params, policy, key_run, state, num_steps)


def run(env, policy, key, num_steps):
    """Reset, then ``num_steps`` steps of ``policy``, jitted (cached per policy)."""
    return _run(env, env.default_params(), policy, key, num_steps)


def test_walk_is_truncated_every_20_steps_with_the_true_final_observation():
    env = walk.Walk()
    always_right = lambda key, obs: jnp.int32(walk.RIGHT)
    keys = jax.random.split(jax.random.key(0), 64)
    final, tr = jax.vmap(lambda k: run(env, always_right, k, 65))(keys)  # fields [64, 65]
    ends = np.flatnonzero(tr.truncated[0])
    np.testing.assert_array_equal(ends, [19, 39, 59])
    assert np.all(tr.truncated[:, ends]) and tr.truncated.sum() == 64 * 3
    assert not np.any(tr.terminated)
    np.testing.assert_array_equal(tr.episode_length[:, ends], 20)
    np.testing.assert_array_equal(final.t, 65 - 60)
    # next_obs is always the state reached, clip(s + 1, 0, 10), also at a truncation,
    # where 20 steps right have surely reached the right end ...
    np.testing.assert_array_equal(tr.next_obs, np.minimum(tr.obs + 1, 10))
    np.testing.assert_array_equal(tr.next_obs[:, ends], 10)
    # ... while the next observation acted on is a fresh uniform start.
    fresh = np.asarray(tr.obs[:, ends + 1])
    assert len(np.unique(fresh)) > 5
    inside = np.setdiff1d(np.arange(64), ends)
    np.testing.assert_array_equal(tr.obs[:, inside + 1], tr.next_obs[:, inside])


def step_through(env, actions):
    """rollout.step over a planned action list, starting from a reset."""
    params = env.default_params()
    step = jax.jit(lambda k, s, a: rollout.step(env, params, k, s, a))
    key_reset, key_steps = jax.random.split(jax.random.key(0))
    state = rollout.reset(env, params, key_reset)
    transitions = []
    for i, a in enumerate(actions):
        state, transition = step(jax.random.fold_in(key_steps, i), state, jnp.int32(a))
        transitions.append(transition)
    return state, jax.tree.map(lambda *xs: np.stack(xs), *transitions)


def test_frozen_lake_planned_episodes_end_with_the_right_rewards_and_reset():
    env = frozen_lake.FrozenLake("4x4", is_slippery=False)
    to_goal = [DOWN, DOWN, RIGHT, DOWN, RIGHT, RIGHT]  # 0 4 8 9 13 14 15
    to_hole = [RIGHT, DOWN]  # 0 1 5
    state, tr = step_through(env, to_goal + to_hole)
    np.testing.assert_array_equal(tr.obs, [0, 4, 8, 9, 13, 14] + [0, 1])
    np.testing.assert_array_equal(tr.next_obs, [4, 8, 9, 13, 14, 15] + [1, 5])
    np.testing.assert_array_equal(tr.reward, [0, 0, 0, 0, 0, 1] + [0, 0])
    np.testing.assert_array_equal(tr.terminated, [0, 0, 0, 0, 0, 1] + [0, 1])
    assert not np.any(tr.truncated)
    np.testing.assert_array_equal(tr.discount, [1, 1, 1, 1, 1, 0] + [1, 0])
    np.testing.assert_array_equal(tr.episode_return, [0, 0, 0, 0, 0, 0 + 0 + 0 + 0 + 0 + 1] + [0, 0])
    np.testing.assert_array_equal(tr.episode_length, [0, 0, 0, 0, 0, 6] + [0, 2])
    assert int(rollout.observe(env, env.default_params(), state)) == 0 and int(state.t) == 0


def test_frozen_lake_time_limit_and_termination_on_the_last_step():
    env = frozen_lake.FrozenLake("4x4", is_slippery=False)
    assert env.max_episode_steps == 100
    # 100 bumps into the left edge: truncated on the 100th step, at state 0.
    _, tr = step_through(env, [LEFT] * 100)
    assert np.flatnonzero(tr.truncated).tolist() == [99] and not np.any(tr.terminated)
    assert tr.next_obs[99] == 0 and tr.episode_length[99] == 100
    # Reaching the goal on exactly the 100th step: terminated, not truncated.
    _, tr = step_through(env, [LEFT] * 94 + [DOWN, DOWN, RIGHT, DOWN, RIGHT, RIGHT])
    assert np.flatnonzero(tr.terminated).tolist() == [99] and not np.any(tr.truncated)
    assert tr.episode_return[99] == 1.0 and tr.episode_length[99] == 100


def cautious_policy(key, obs):
    """Mostly left or up (staying near the start, so the time limit bites), sometimes any."""
    key_explore, key_action = jax.random.split(key)
    careful = jax.random.choice(key_action, jnp.array([LEFT, UP]))
    return jnp.where(jax.random.uniform(key_explore) < 0.1, jax.random.randint(key, (), 0, 4), careful)


def test_rollout_matches_gymnasium_time_limit_replaying_the_same_actions():
    _, tr = run(frozen_lake.FrozenLake("4x4", is_slippery=False), cautious_policy, jax.random.key(1), 3000)
    gym_env = gymnasium.make("FrozenLake-v1", is_slippery=False)  # TimeLimit(100)
    obs, _ = gym_env.reset(seed=0)
    for t, action in enumerate(np.asarray(tr.action)):
        assert tr.obs[t] == obs, t
        obs, reward, terminated, truncated, _ = gym_env.step(int(action))
        assert (tr.next_obs[t], tr.reward[t], tr.terminated[t]) == (obs, reward, terminated), t
        assert tr.truncated[t] == (truncated and not terminated), t
        if terminated or truncated:
            obs, _ = gym_env.reset()
    assert tr.truncated.sum() > 3 and tr.terminated.sum() > 3  # both kinds of end occurred


def python_loop_episodes(rewards, ended):
    """(return, length) of every finished episode, by a plain loop."""
    episodes, total, length = [], 0.0, 0
    for r, e in zip(rewards.tolist(), ended.tolist()):
        total, length = total + r, length + 1
        if e:
            episodes.append((total, length))
            total, length = 0.0, 0
    return episodes


@pytest.mark.parametrize(
    "env, num_steps",
    [
        (frozen_lake.FrozenLake("4x4", is_slippery=True), 2000),
        (cliff_walking.CliffWalking(is_slippery=True), 5000),
        (walk.Walk(), 300),
    ],
)
def test_episode_returns_equal_a_python_loop_over_rewards(env, num_steps):
    num_envs = 4
    keys = jax.random.split(jax.random.key(2), num_envs)
    _, tr = jax.vmap(lambda k: run(env, uniform_policy(env.action_space(None).n), k, num_steps))(keys)
    finished = 0
    for i in range(num_envs):
        ended = np.asarray(tr.episode_ended[i])
        expected = python_loop_episodes(np.asarray(tr.reward[i], np.float64), ended)
        got = list(zip(np.asarray(tr.episode_return[i])[ended].tolist(), tr.episode_length[i][ended].tolist()))
        assert [length for _, length in got] == [length for _, length in expected]
        np.testing.assert_allclose([g for g, _ in got], [g for g, _ in expected], rtol=1e-6)
        finished += len(expected)
    stats = rollout.episode_statistics(tr)
    assert int(stats.count) == finished > 0
    all_returns = np.asarray(tr.episode_return)[np.asarray(tr.episode_ended)]
    np.testing.assert_allclose(stats.mean_return, all_returns.mean(), rtol=1e-5)


def test_statistics_before_any_episode_finishes_are_nan_not_zero():
    _, tr = run(walk.Walk(), uniform_policy(2), jax.random.key(3), 19)  # limit is 20
    stats = rollout.episode_statistics(tr)
    assert int(stats.count) == 0
    assert np.isnan(stats.mean_return) and np.isnan(stats.mean_length)
    assert np.isnan(rollout.mean_finished_return(tr))


def test_mean_finished_return_ignores_the_placeholders():
    ended = jnp.array([False, False, True, False, True])
    tr = rollout.Transition(
        obs=jnp.zeros(5), action=jnp.zeros(5), reward=jnp.zeros(5), next_obs=jnp.zeros(5),
        terminated=ended, truncated=jnp.zeros(5, bool),
        episode_return=jnp.array([0.0, 0.0, -3.0, 0.0, -5.0]),
        episode_length=jnp.array([0, 0, 3, 0, 2]),
    )
    assert float(rollout.mean_finished_return(tr)) == (-3.0 + -5.0) / 2  # not (-3 - 5) / 5
    stats = rollout.episode_statistics(tr)
    assert int(stats.count) == 2 and float(stats.mean_length) == (3 + 2) / 2


def test_no_time_limit_never_truncates():
    env = cliff_walking.CliffWalking()
    assert env.max_episode_steps is None
    always_up = lambda key, obs: jnp.int32(cliff_walking.UP)
    final, tr = run(env, always_up, jax.random.key(4), 500)
    assert not np.any(tr.truncated) and not np.any(tr.terminated)
    assert int(final.t) == 500 and float(final.episode_return) == 500 * -1.0


def test_vmap_over_environments_equals_one_at_a_time():
    env = frozen_lake.FrozenLake("8x8", is_slippery=True)
    keys = jax.random.split(jax.random.key(5), 6)
    policy = uniform_policy(4)
    batched = jax.vmap(lambda k: run(env, policy, k, 300))(keys)
    for i, key in enumerate(keys):
        single = run(env, policy, key, 300)
        jax.tree.map(lambda b, s: np.testing.assert_array_equal(b[i], s), batched, single)


def test_jit_equals_eager():
    env = cliff_walking.CliffWalking(is_slippery=True)
    params = env.default_params()
    state = rollout.reset(env, params, jax.random.key(6))
    args = (env, params, uniform_policy(4), jax.random.key(7), state, 50)
    eager = rollout.rollout(*args)
    jitted = jax.jit(rollout.rollout, static_argnums=(0, 2, 5))(*args)
    jax.tree.map(np.testing.assert_array_equal, eager, jitted)


def test_bad_arguments_are_rejected():
    env = walk.Walk()
    params = env.default_params()
    state = rollout.reset(env, params, jax.random.key(0))
    with pytest.raises(ValueError, match="num_steps"):
        rollout.rollout(env, params, uniform_policy(2), jax.random.key(0), state, 0)
    with pytest.raises(ValueError, match="env"):
        rollout.reset(object(), params, jax.random.key(0))
