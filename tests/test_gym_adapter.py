"""The gymnasium adapter: gymnasium's own checker, TimeLimit semantics, seeding."""

import dataclasses
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlbook_lib.envs import walk
from rlbook_lib.envs.gym_adapter import GymnasiumEnv


def rollout(env, seed, actions):
    observation, _ = env.reset(seed=seed)
    trajectory = [observation]
    for action in actions:
        trajectory.append(env.step(action))
    return trajectory


def test_check_env_passes_without_warnings():
    env = GymnasiumEnv(walk.Walk())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_spec_makes_an_equivalent_env():
    params = walk.WalkParams(centre=0)
    env = GymnasiumEnv(walk.Walk(), params, max_episode_steps=4)
    made = gymnasium.make(env.spec)
    assert made.unwrapped.params == params and made.unwrapped.max_episode_steps == 4
    actions = [1, 0, 1, 1]
    assert rollout(made, 5, actions) == rollout(env, 5, actions)


def test_observations_are_numpy_in_the_space():
    env = GymnasiumEnv(walk.Walk())
    observation, info = env.reset(seed=0)
    assert isinstance(observation, np.int64) and observation in env.observation_space
    assert info == {}
    observation, reward, terminated, truncated, info = env.step(1)
    assert isinstance(observation, np.int64) and observation in env.observation_space
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool


def test_truncated_exactly_at_the_time_limit_and_never_terminated():
    env = GymnasiumEnv(walk.Walk())
    for seed in (0, None):  # the counter restarts at every reset
        env.reset(seed=seed)
        flags = [env.step(t % 2)[2:4] for t in range(walk.Walk.max_episode_steps)]
        terminated, truncated = zip(*flags)
        assert not any(terminated)
        assert truncated == (False,) * 19 + (True,)


def test_max_episode_steps_can_be_overridden():
    env = GymnasiumEnv(walk.Walk(), max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(1)[3] for _ in range(3)] == [False, False, True]


def test_same_seed_same_trajectory():
    actions = [1, 1, 0, 1, 0, 0, 0, 1]
    env = GymnasiumEnv(walk.Walk())
    assert rollout(env, 42, actions) == rollout(env, 42, actions)
    assert rollout(env, 42, actions) == rollout(GymnasiumEnv(walk.Walk()), 42, actions)
    initial_states = {int(env.reset(seed=seed)[0]) for seed in range(20)}
    assert len(initial_states) > 1


def test_unseeded_reset_continues_the_key_chain():
    first, second = GymnasiumEnv(walk.Walk()), GymnasiumEnv(walk.Walk())
    first.reset(seed=3)
    second.reset(seed=3)
    for _ in range(5):
        assert first.reset()[0] == second.reset()[0]


def test_step_matches_the_pure_functions():
    """Each reset and step uses ``chain, key = jax.random.split(chain)``."""
    env, params = walk.Walk(), walk.WalkParams(centre=2)
    adapter = GymnasiumEnv(env, params)
    observation, _ = adapter.reset(seed=7)
    chain, key = jax.random.split(jax.random.key(7))
    state = env.initial(key, params)
    assert observation == int(env.observation(state, params))
    for action in [1, 0, 0, 1, 1]:
        observation, reward, terminated, _, _ = adapter.step(action)
        chain, key = jax.random.split(chain)
        expected = env.step(key, state, jnp.int32(action), params)
        assert observation == int(expected.observation)
        assert reward == float(expected.reward) == -abs(observation - 2)
        assert terminated == bool(expected.terminated)
        state = expected.next_state


def test_step_is_traced_once():
    traces = []

    @dataclasses.dataclass(frozen=True)
    class CountingWalk(walk.Walk):
        def transition(self, state, action, key, params):
            traces.append(1)  # runs only while jax traces the step
            return super().transition(state, action, key, params)

    env = GymnasiumEnv(CountingWalk())
    env.reset(seed=0)
    for action in [1, np.int64(0), np.int32(1), np.array(0), env.action_space.sample()]:
        env.step(action)
    env.reset(seed=1)
    env.step(1)
    assert len(traces) == 1


def test_errors():
    env = GymnasiumEnv(walk.Walk())
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(2)
    with pytest.raises(ValueError, match="env"):
        GymnasiumEnv(gymnasium.make("CartPole-v1"))
    with pytest.raises(ValueError, match="max_episode_steps"):
        GymnasiumEnv(walk.Walk(), max_episode_steps=0)
    with pytest.raises(ValueError, match="render_mode"):
        GymnasiumEnv(walk.Walk(), render_mode="human")


def test_no_time_limit_never_truncates():
    from rlbook_lib.envs import cliff_walking

    classic = GymnasiumEnv(cliff_walking.CliffWalking())
    assert classic.max_episode_steps is None
    classic.reset(seed=0)
    for _ in range(300):  # always up: bumps the top edge forever, never reaches the goal
        _, _, terminated, truncated, _ = classic.step(cliff_walking.UP)
        assert not terminated and not truncated
