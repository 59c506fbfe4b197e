"""The maximisation-bias MDP of S&B Example 6.7: steps by hand, the reward
distribution in B, the expected model against sampled steps, q_* by value
iteration, and gymnasium's environment checker."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlbook_lib import dp  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import max_bias  # noqa: E402
from rlbook_lib.envs.gym_adapter import GymnasiumEnv  # noqa: E402
from rlbook_lib.envs.max_bias import A, B, END, LEFT, RIGHT  # noqa: E402


def step(env, position, action, key=jax.random.key(0), params=None):
    params = env.default_params() if params is None else params
    state = max_bias.MaxBiasState(jnp.int32(position), jnp.float32(0.0))
    result = env.step(key, state, jnp.int32(action), params)
    return int(result.next_state.position), float(result.reward), bool(result.terminated)


def test_steps_by_hand():
    env = max_bias.MaxBias()
    assert int(env.initial(jax.random.key(3), env.default_params()).position) == A
    assert step(env, A, LEFT) == (B, 0.0, False)
    assert step(env, A, RIGHT) == (END, 0.0, True)
    assert step(env, A, 7) == (END, 0.0, True)  # an invalid action in A acts as right
    next_b, _, terminated = step(env, B, 4)
    assert (next_b, terminated) == (END, True)
    assert step(env, END, 3) == (END, 0.0, True)  # absorbing, pays nothing


def test_rewards_in_b_are_normal_with_the_given_mean_and_sd():
    env = max_bias.MaxBias()
    params = max_bias.MaxBiasParams(mean=0.3, std=2.0)
    state = max_bias.MaxBiasState(jnp.int32(B), jnp.float32(0.0))
    keys = jax.random.split(jax.random.key(1), 20_000)
    rewards = np.asarray(jax.vmap(lambda k: env.step(k, state, jnp.int32(5), params).reward)(keys))
    # Standard errors: 2 / sqrt(20000) = 0.014 for the mean; about 0.01 for the sd.
    assert rewards.mean() == pytest.approx(0.3, abs=4 * 0.014)
    assert rewards.std() == pytest.approx(2.0, abs=4 * 0.01)


def test_model_matches_the_steps_and_q_star_by_hand():
    env = max_bias.MaxBias(num_b_actions=4)
    model = env.to_mdp(env.default_params(), gamma=1.0)
    for s in (A, B, END):
        for a in range(4):
            next_s, _, _ = step(env, s, a)
            np.testing.assert_array_equal(model.P[s, a], np.eye(3)[next_s])
    np.testing.assert_allclose(model.R, [[0, 0, 0, 0], [-0.1] * 4, [0, 0, 0, 0]], rtol=1e-6)
    q = np.asarray(dp.value_iteration(model, tol=1e-9).q)
    # Left: 0 + (−0.1); right: 0. Every action in B: −0.1.
    np.testing.assert_allclose(q[A, :2], [0 + -0.1, 0.0], atol=1e-6)
    np.testing.assert_allclose(q[B], [-0.1] * 4, atol=1e-6)


def test_action_mask():
    mask = max_bias.MaxBias(num_b_actions=5).action_mask()
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0, 0], [1] * 5, [1] * 5])


def test_gymnasium_checker_accepts_the_adapter():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(GymnasiumEnv(max_bias.MaxBias(), max_episode_steps=10), skip_render_check=True)


def test_invalid_size_is_rejected():
    with pytest.raises(ValueError, match="num_b_actions"):
        max_bias.MaxBias(1)
