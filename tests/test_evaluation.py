"""Evaluation episodes: first episodes only, complete, against a plain Python loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import evaluation, rollout
from rlbook_lib.envs import cartpole, walk

GAMMA = 0.9


def python_loop_episode(env, params, action, key):
    """The first episode of a constant action from the reset that ``evaluation.evaluate`` draws for ``key``."""
    key_reset, _ = jax.random.split(key)
    state = rollout.reset(env, params, key_reset).env_state
    start = env.observation(state, params)
    rewards, env_step = [], jax.jit(env.step)
    for _ in range(env.max_episode_steps):
        step = env_step(jax.random.key(0), state, jnp.int32(action), params)
        rewards.append(float(step.reward))
        state = step.next_state
        if bool(step.terminated):
            break
    return start, np.array(rewards)


@pytest.mark.parametrize("env, action", [(cartpole.CartPole(), cartpole.LEFT), (walk.Walk(), walk.RIGHT)])
def test_evaluate_equals_a_python_loop(env, action):
    params = env.default_params()
    key = jax.random.key(3)
    act = lambda k, obs: jnp.int32(action)  # noqa: E731
    episodes = jax.jit(lambda key: evaluation.evaluate(env, params, act, key, 4, GAMMA))(key)
    assert episodes.episode_return.shape == (4,)
    for i, k in enumerate(jax.random.split(key, 4)):
        start, rewards = python_loop_episode(env, params, action, k)
        np.testing.assert_allclose(episodes.initial_obs[i], start)
        assert episodes.episode_length[i] == len(rewards)
        np.testing.assert_allclose(episodes.episode_return[i], rewards.sum(), rtol=1e-5)
        np.testing.assert_allclose(episodes.discounted_return[i],
                                   sum(GAMMA**t * r for t, r in enumerate(rewards)), rtol=1e-5)
    if isinstance(env, cartpole.CartPole):  # pushing left always topples the pole within 500 steps
        assert np.all(episodes.episode_length < 500)
        T = np.asarray(episodes.episode_length)
        np.testing.assert_allclose(episodes.discounted_return, (1 - GAMMA**T) / (1 - GAMMA), rtol=1e-5)
    else:  # the walk has no terminal state: every episode is cut at 20 steps
        np.testing.assert_array_equal(episodes.episode_length, 20)


def test_invalid_arguments():
    class Endless(walk.Walk):
        max_episode_steps = None

    act = lambda k, obs: jnp.int32(0)  # noqa: E731
    with pytest.raises(ValueError, match="max_episode_steps"):
        evaluation.evaluate(Endless(), Endless().default_params(), act, jax.random.key(0), 2, GAMMA)
    with pytest.raises(ValueError, match="num_episodes"):
        evaluation.evaluate(walk.Walk(), walk.Walk().default_params(), act, jax.random.key(0), 0, GAMMA)


def test_bootstrap_interval_matches_the_normal_approximation_and_its_level():
    values = np.random.default_rng(1).normal(3.0, 2.0, size=400)
    low, high = evaluation.bootstrap_interval(values, num_resamples=4000)
    half = 1.96 * values.std() / np.sqrt(len(values))  # the mean's normal 95% half-width
    np.testing.assert_allclose([low, high], [values.mean() - half, values.mean() + half], atol=0.15 * half)
    low50, high50 = evaluation.bootstrap_interval(values, num_resamples=4000, level=0.5)
    assert low < low50 < high50 < high
    np.testing.assert_array_equal(evaluation.bootstrap_interval(np.full(5, 7.0)), [7.0, 7.0])  # no spread
    with pytest.raises(ValueError, match="values"):
        evaluation.bootstrap_interval(np.ones((2, 3)))
    with pytest.raises(ValueError, match="level"):
        evaluation.bootstrap_interval(values, level=1.0)
