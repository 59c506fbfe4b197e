"""Tests for rlbook_lib.envs.dialogue: the episode ends on booking or abandonment, the user's
answers follow the agenda rules, the noise rates, the reward arithmetic, the handcrafted rule
policy, and gymnasium's check_env on the adapter."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlbook_lib import evaluation  # sets the XLA flags  # isort: skip
from rlbook_lib.envs import dialogue  # noqa: E402
from rlbook_lib.envs.gym_adapter import GymnasiumEnv  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

ENV = dialogue.Dialogue()
PARAMS = ENV.default_params()
REQUEST_DAY, REQUEST_TIME, CONFIRM_DAY = 0, 1, dialogue.NUM_SLOTS
STEP = jax.jit(ENV.step)


def play(actions, params=PARAMS, seed=0):
    state = ENV.initial(jax.random.key(seed), params)
    steps = []
    for i, action in enumerate(actions):
        steps.append(STEP(jax.random.key(100 + i), state, jnp.int32(action), params))
        state = steps[-1].next_state
    return steps


def test_booking_ends_the_episode():
    steps = play([REQUEST_DAY, dialogue.BOOK])
    assert not bool(steps[0].terminated) and bool(steps[1].terminated)
    # Booking with two slots empty fails: the reward is the turn cost alone.
    assert float(steps[1].reward) == -PARAMS.turn_cost


def test_abandonment_after_patience_turns():
    params = PARAMS.replace(patience=4)
    steps = play([REQUEST_DAY] * 4, params)
    assert [bool(s.terminated) for s in steps] == [False, False, False, True]
    assert [float(s.reward) for s in steps] == [-1.0, -1.0, -1.0, -1.0]


def test_noiseless_user_books_with_success():
    params = PARAMS.replace(error_high=0.0, error_low=0.0, p_volunteer=0.0)
    steps = play([0, 1, 2, dialogue.BOOK], params)
    assert np.all(np.asarray(steps[2].next_state.heard) == np.asarray(steps[2].next_state.goal))
    assert float(steps[3].reward) == PARAMS.success_reward - PARAMS.turn_cost
    assert bool(steps[3].terminated)
    assert dialogue.success(jnp.float32(20 - 4), jnp.float32(4), params)


def test_confirm_confirms_a_right_value_and_corrects_a_wrong_one():
    right = PARAMS.replace(error_high=0.0, error_low=0.0, p_volunteer=0.0)
    steps = play([REQUEST_DAY, CONFIRM_DAY], right)
    assert int(steps[1].next_state.status[0]) == dialogue.CONFIRMED
    wrong = PARAMS.replace(error_high=1.0, error_low=1.0, p_volunteer=0.0)
    steps = play([REQUEST_DAY, CONFIRM_DAY], wrong)
    first, second = steps[0].next_state, steps[1].next_state
    assert int(first.heard[0]) != int(first.goal[0])
    assert int(second.status[0]) in (dialogue.LOW, dialogue.HIGH)  # "no, it's ...": heard again
    # Confirming an empty slot changes nothing but the turn.
    steps = play([CONFIRM_DAY])
    assert np.all(np.asarray(steps[0].next_state.status) == dialogue.EMPTY)


def test_noise_rates_match_the_parameters():
    state = ENV.initial(jax.random.key(0), PARAMS)
    keys = jax.random.split(jax.random.key(1), 20_000)
    after = jax.jit(jax.vmap(lambda k: ENV.transition(state, jnp.int32(REQUEST_DAY), k, PARAMS)))(keys)
    status, heard = np.asarray(after.status[:, 0]), np.asarray(after.heard[:, 0])
    high = status == dialogue.HIGH
    wrong = heard != int(state.goal[0])
    assert high.mean() == pytest.approx(PARAMS.p_high, abs=0.015)
    assert wrong[high].mean() == pytest.approx(PARAMS.error_high, abs=0.01)
    assert wrong[~high].mean() == pytest.approx(PARAMS.error_low, abs=0.02)
    volunteered = np.asarray(after.status[:, 1]) != dialogue.EMPTY  # the next slot on the agenda
    assert volunteered.mean() == pytest.approx(PARAMS.p_volunteer, abs=0.015)


def test_rule_policy_books_almost_always_and_random_rarely():
    ep = evaluation.evaluate(ENV, PARAMS, dialogue.rule_policy, jax.random.key(0), 500, 1.0)
    assert np.mean(dialogue.success(ep.episode_return, ep.episode_length, PARAMS)) > 0.9
    randomly = lambda key, obs: jax.random.randint(key, (), 0, dialogue.NUM_ACTIONS)  # noqa: E731
    ep = evaluation.evaluate(ENV, PARAMS, randomly, jax.random.key(0), 500, 1.0)
    assert np.mean(dialogue.success(ep.episode_return, ep.episode_length, PARAMS)) < 0.25  # about 0.12


def test_transcript_of_a_dialogue():
    states, actions = dialogue.play(ENV, PARAMS, dialogue.rule_policy, jax.random.key(3))
    lines = dialogue.transcript(states, actions, PARAMS)
    assert len(lines) == 2 * len(actions) and lines[0] == "system: request(day)"
    assert actions[-1] == dialogue.BOOK or len(actions) == PARAMS.patience


def test_gymnasium_check_env_passes():
    env = GymnasiumEnv(ENV)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (13,) and env.observation_space.contains(obs)
