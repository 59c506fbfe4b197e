"""The random walk of S&B Example 6.2: dynamics by hand, model against steps,
and the true values 1/6, ..., 5/6 from the linear solve."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlbook_lib import dp, mdp  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import random_walk  # noqa: E402
from rlbook_lib.envs.gym_adapter import GymnasiumEnv  # noqa: E402
from rlbook_lib.envs.random_walk import LEFT, RIGHT  # noqa: E402

A, B, C, D, E = 1, 2, 3, 4, 5


def step(env, position, action, params=None):
    params = env.default_params() if params is None else params
    state = random_walk.RandomWalkState(jnp.int32(position))
    result = env.step(jax.random.key(0), state, jnp.int32(action), params)
    return int(result.next_state.position), float(result.reward), bool(result.terminated)


def test_every_episode_starts_in_the_centre():
    env = random_walk.RandomWalk()
    for seed in range(5):
        assert int(env.initial(jax.random.key(seed), env.default_params()).position) == C
    assert random_walk.RandomWalk(19).start == 10


def test_steps_by_hand():
    env = random_walk.RandomWalk()
    assert step(env, C, RIGHT) == (D, 0.0, False)
    assert step(env, C, LEFT) == (B, 0.0, False)
    assert step(env, E, RIGHT) == (6, 1.0, True)  # off the right end: +1, terminal
    assert step(env, A, LEFT) == (0, 0.0, True)  # off the left end: 0, terminal
    assert step(env, 0, RIGHT) == (0, 0.0, True)  # the ends are absorbing and pay nothing
    params = random_walk.RandomWalkParams(left_reward=-1.0)
    assert step(env, A, LEFT, params) == (0, -1.0, True)


def test_model_matches_the_steps():
    env = random_walk.RandomWalk()
    params = random_walk.RandomWalkParams(left_reward=-0.5, right_reward=2.0)
    model = env.to_mdp(params, gamma=1.0)
    for s in range(env.num_states):
        for a in (LEFT, RIGHT):
            next_s, reward, _ = step(env, s, a, params)
            np.testing.assert_array_equal(model.P[s, a], np.eye(env.num_states)[next_s])
            assert float(model.R[s, a]) == reward
    np.testing.assert_array_equal(model.terminal, [True, False, False, False, False, False, True])
    np.testing.assert_array_equal(model.initial, np.eye(7)[C])


def test_true_values_are_one_sixth_to_five_sixths():
    env = random_walk.RandomWalk()
    model = env.to_mdp(env.default_params(), gamma=1.0)
    v = dp.policy_evaluation_exact(model, mdp.uniform_policy(model))
    # v(s) = Pr(leave on the right from s) = s / 6 (gambler's ruin with a fair coin).
    np.testing.assert_allclose(v, [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 0], atol=1e-6)


def test_nineteen_state_walk_of_example_7_1():
    env = random_walk.RandomWalk(19)
    model = env.to_mdp(random_walk.RandomWalkParams(left_reward=-1.0), gamma=1.0)
    v = dp.policy_evaluation_exact(model, mdp.uniform_policy(model))
    k = np.arange(1, 20)
    # +1 with probability k / 20, −1 otherwise.
    np.testing.assert_allclose(v[1:20], k / 20 * 1 + (1 - k / 20) * -1, atol=1e-5)


def test_episode_frequencies_match_the_model():
    """Half of the episodes from C leave on the right (v(C) = 1/2), and the mean
    length is 3 · 3 = 9 steps (a fair walk from 3 to {0, 6})."""
    env, params = random_walk.RandomWalk(), random_walk.RandomWalkParams()

    def episode(key):
        def body(carry):
            state, key, t, _ = carry
            key, key_action = jax.random.split(key)
            action = jax.random.randint(key_action, (), 0, 2)
            result = env.step(key, state, action, params)
            return result.next_state, key, t + 1, result.reward

        init = (env.initial(key, params), key, 0, jnp.float32(0))
        state, _, t, reward = jax.lax.while_loop(lambda c: ~env.terminal(c[0], params), body, init)
        return reward, t

    rewards, lengths = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(0), 4000))
    # Standard errors: sqrt(0.25 / 4000) = 0.008; the length's sd is sqrt(3·3·(3·3+3·3−2)/3) ≈ 6.9.
    assert float(rewards.mean()) == pytest.approx(0.5, abs=4 * 0.008)
    assert float(lengths.mean()) == pytest.approx(9.0, abs=4 * 6.9 / np.sqrt(4000))


def test_gymnasium_checker_accepts_the_adapter():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(GymnasiumEnv(random_walk.RandomWalk(), max_episode_steps=1000), skip_render_check=True)


def test_invalid_length_is_rejected():
    with pytest.raises(ValueError, match="num_nonterminal"):
        random_walk.RandomWalk(0)
