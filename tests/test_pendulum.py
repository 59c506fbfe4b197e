"""Pendulum-v1 against gymnasium's numpy original, one step at a time from identical states.

Before every step the JAX state is set to gymnasium's current state (float64 ->
float32), then both take the same action; truncation is counted on the JAX side
(t >= max_episode_steps) and compared with gymnasium's TimeLimit.
"""

import dataclasses
import math
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.utils.env_checker import check_env
from scipy import stats

from rlbook_lib.envs import pendulum
from rlbook_lib.envs.gym_adapter import GymnasiumEnv

ENV = pendulum.Pendulum()
PARAMS = ENV.default_params()
RTOL = ATOL = 1e-5


def step_fn():
    key = jax.random.key(0)  # unused: the dynamics are deterministic
    return jax.jit(lambda s, a: ENV.step(key, pendulum.PendulumState(*s), a, PARAMS))


def test_step_parity_over_episodes_with_random_and_out_of_range_torques():
    """Three episodes (600 steps) of torques in [−3, 3]: those beyond ±2 are clipped by both."""
    step, gym_env = step_fn(), gymnasium.make("Pendulum-v1")
    actions = np.asarray(jax.random.uniform(jax.random.key(1), (600, 1), minval=-3.0, maxval=3.0))
    observation, _ = gym_env.reset(seed=0)
    t, truncations = 0, 0
    for action in actions:
        ours = step(np.asarray(gym_env.unwrapped.state, np.float32), action)
        observation, reward, terminated, truncated, _ = gym_env.step(action)
        t += 1
        np.testing.assert_allclose(ours.observation, observation, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ours.reward, reward, rtol=RTOL, atol=ATOL)
        assert bool(ours.terminated) == terminated == False  # noqa: E712
        assert (t >= ENV.max_episode_steps) == truncated
        if truncated:
            truncations += 1
            observation, _ = gym_env.reset()
            t = 0
    assert truncations == 3


def test_one_step_parity_over_the_state_space():
    """2,000 states with θ over several turns and θ̇ up to the clip, including its edge."""
    n = 2000
    k1, k2 = jax.random.split(jax.random.key(2))
    states = jax.random.uniform(k1, (n, 2), minval=jnp.array([-10.0, -8.0]), maxval=jnp.array([10.0, 8.0]))
    actions = jax.random.uniform(k2, (n, 1), minval=-2.5, maxval=2.5)
    ours = jax.jit(jax.vmap(step_fn()))(states, actions)
    gym_env = gymnasium.make("Pendulum-v1").unwrapped
    gym_env.reset(seed=0)
    for i, (s, a) in enumerate(zip(np.asarray(states), np.asarray(actions))):
        gym_env.state = s.astype(np.float64)
        observation, reward, *_ = gym_env.step(a)
        np.testing.assert_allclose(ours.observation[i], observation, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ours.reward[i], reward, rtol=RTOL, atol=ATOL)


def test_hand_step_from_horizontal():
    """θ = π/2 (rod horizontal), at rest, full torque: θ̇' = (15 sin(π/2) + 3 · 2) · 0.05."""
    state = pendulum.PendulumState(jnp.float32(math.pi / 2), jnp.float32(0.0))
    step = ENV.step(jax.random.key(0), state, jnp.array([2.0]), PARAMS)
    theta_dot = (3 * 10 / (2 * 1) * 1.0 + 3.0 / (1 * 1**2) * 2.0) * 0.05
    theta = math.pi / 2 + theta_dot * 0.05
    np.testing.assert_allclose(step.observation, [math.cos(theta), math.sin(theta), theta_dot], rtol=1e-5)
    np.testing.assert_allclose(step.reward, -((math.pi / 2) ** 2 + 0.1 * 0 + 0.001 * 2.0**2), rtol=1e-6)


def test_reward_uses_the_normalised_angle_and_the_clipped_torque():
    upright_after_a_turn = pendulum.PendulumState(jnp.float32(2 * math.pi), jnp.float32(0.0))
    step = ENV.step(jax.random.key(0), upright_after_a_turn, jnp.array([5.0]), PARAMS)
    np.testing.assert_allclose(step.reward, -0.001 * 2.0**2, atol=1e-6)  # |u| clipped to 2


def test_initial_states_follow_gymnasiums_distribution():
    keys = jax.random.split(jax.random.key(3), 4000)
    ours = np.stack(jax.vmap(ENV.initial, in_axes=(0, None))(keys, PARAMS), axis=1)
    gym_env = gymnasium.make("Pendulum-v1").unwrapped
    gym_env.reset(seed=3)
    theirs = np.stack([np.array(gym_env.state) for _ in range(2000) if gym_env.reset()])
    high = np.array(pendulum.INITIAL_HIGH)
    assert ours.dtype == np.float32 and (np.abs(ours) <= high).all()
    for j in range(2):
        assert stats.ks_2samp(ours[:, j], theirs[:, j]).pvalue > 1e-3


def test_spaces_params_and_time_limit_are_gymnasiums():
    gym_env = gymnasium.make("Pendulum-v1").unwrapped
    assert ENV.max_episode_steps == gymnasium.spec("Pendulum-v1").max_episode_steps == 200
    assert ENV.observation_space(PARAMS) == gym_env.observation_space
    assert ENV.action_space(PARAMS) == gym_env.action_space
    for field in (f.name for f in dataclasses.fields(PARAMS)):
        assert getattr(PARAMS, field) == getattr(gym_env, field), field


def test_jit_equals_eager_and_vmap_equals_a_loop():
    keys = jax.random.split(jax.random.key(4), 8)
    states = jax.vmap(ENV.initial, in_axes=(0, None))(keys, PARAMS)
    actions = jax.random.normal(jax.random.key(5), (8, 1))
    batched = jax.vmap(ENV.step, in_axes=(0, 0, 0, None))(keys, states, actions, PARAMS)
    for i in range(8):
        state = jax.tree.map(lambda x: x[i], states)
        single = ENV.step(keys[i], state, actions[i], PARAMS)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-6, atol=1e-6), batched, single)


def test_gymnasium_adapter_passes_check_env():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # gymnasium's own Pendulum-v1 triggers the same warning (its torque range is ±2, not ±1)
        warnings.filterwarnings("ignore", message=".*action space.*symmetric.*normali")
        check_env(GymnasiumEnv(ENV).unwrapped)
