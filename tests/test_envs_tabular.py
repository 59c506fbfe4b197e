"""FrozenLake and CliffWalking against gymnasium's own toy-text environments.

gymnasium's table ``env.unwrapped.P[s][a]`` lists (prob, next state, reward,
terminated) for every outcome; it is the independent reference for the models,
for single steps and for the frequencies of the JAX sampler.
"""

import itertools
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlbook_lib import mdp
from rlbook_lib.envs import cliff_walking, frozen_lake
from rlbook_lib.envs.gym_adapter import GymnasiumEnv

CONFIGS = {
    "lake4-slippery": ("FrozenLake-v1", {"is_slippery": True}, frozen_lake.FrozenLake("4x4", True)),
    "lake4": ("FrozenLake-v1", {"is_slippery": False}, frozen_lake.FrozenLake("4x4", False)),
    "lake8-slippery": ("FrozenLake8x8-v1", {"is_slippery": True}, frozen_lake.FrozenLake("8x8", True)),
    "lake8": ("FrozenLake8x8-v1", {"is_slippery": False}, frozen_lake.FrozenLake("8x8", False)),
    "cliff": ("CliffWalking-v1", {}, cliff_walking.CliffWalking()),
    "cliff-slippery": ("CliffWalkingSlippery-v1", {}, cliff_walking.CliffWalking(is_slippery=True)),
}
ALL = list(CONFIGS)
DETERMINISTIC = ["lake4", "lake8", "cliff"]
SLIPPERY = ["lake4-slippery", "lake8-slippery", "cliff-slippery"]


def make(name):
    gym_id, kwargs, env = CONFIGS[name]
    return gymnasium.make(gym_id, **kwargs), env, env.default_params()


def state_at(env, params, s):
    """The JAX state standing on cell s (CliffWalking: not just fallen)."""
    return env.initial(jax.random.key(0), params)._replace(position=jnp.int32(s))


def step_all(env, params, keys):
    """Step every (s, a) with every key: arrays [S, A, K] of s', r, terminated."""
    S, A = env.num_states, 4

    def one(s, a, key):
        result = env.step(key, state_at(env, params, s), a, params)
        return result.observation, result.reward, result.terminated

    over_keys = jax.vmap(one, in_axes=(None, None, 0))
    over_actions = jax.vmap(over_keys, in_axes=(None, 0, None))
    over_states = jax.vmap(over_actions, in_axes=(0, None, None))
    outs = jax.jit(over_states)(jnp.arange(S), jnp.arange(A), keys)
    return tuple(np.asarray(x) for x in outs)


@pytest.mark.parametrize("name", ALL)
def test_time_limit_is_gymnasiums(name):
    gym_id, _, env = CONFIGS[name]
    assert env.max_episode_steps == gymnasium.spec(gym_id).max_episode_steps


def test_registered_time_limits_by_hand():
    assert frozen_lake.FrozenLake("4x4").max_episode_steps == 100
    assert frozen_lake.FrozenLake("8x8").max_episode_steps == 200
    assert cliff_walking.CliffWalking().max_episode_steps is None


@pytest.mark.parametrize("name", ALL)
def test_model_equals_from_toy_text_exactly(name):
    gym_env, env, params = make(name)
    ours, theirs = env.to_mdp(params, gamma=0.95), mdp.from_toy_text(gym_env, 0.95)
    for field, x, y in zip(mdp.MDP._fields, ours, theirs):
        assert x.dtype == y.dtype, field
        np.testing.assert_array_equal(x, y, err_msg=field)


@pytest.mark.parametrize("name", ALL)
def test_model_equals_a_direct_read_of_the_gymnasium_table(name):
    gym_env, env, params = make(name)
    model = env.to_mdp(params, gamma=1.0)
    table = gym_env.unwrapped.P
    for s, a in itertools.product(range(env.num_states), range(4)):
        probs, expected_reward = {}, 0.0
        for prob, next_s, reward, _ in table[s][a]:
            probs[next_s] = probs.get(next_s, 0.0) + prob
            expected_reward += prob * reward
        row = np.zeros(env.num_states, np.float32)
        row[list(probs)] = list(probs.values())
        np.testing.assert_array_equal(model.P[s, a], row, err_msg=f"P[{s}, {a}]")
        assert model.R[s, a] == np.float32(expected_reward), (s, a)
    terminal = {n for s in table for a in table[s] for _, n, _, t in table[s][a] if t}
    assert set(np.flatnonzero(model.terminal)) == terminal


@pytest.mark.parametrize("name", ALL)
def test_every_sampled_step_is_an_outcome_gymnasium_lists(name):
    gym_env, env, params = make(name)
    keys = jax.random.split(jax.random.key(1), 48)
    next_s, reward, terminated = step_all(env, params, keys)
    table = gym_env.unwrapped.P
    for s, a in itertools.product(range(env.num_states), range(4)):
        listed = {(n, float(r), bool(t)) for p, n, r, t in table[s][a] if p > 0}
        sampled = set(zip(next_s[s, a].tolist(), reward[s, a].tolist(), terminated[s, a].tolist()))
        assert sampled <= listed, (s, a, sampled - listed)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_step_from_every_state_and_action_matches_gymnasium(name):
    gym_env, env, params = make(name)
    gym_env.reset(seed=0)
    step = jax.jit(env.step)
    for s, a in itertools.product(range(env.num_states), range(4)):
        gym_env.unwrapped.s = s
        obs, reward, terminated, _, _ = gym_env.unwrapped.step(a)
        result = step(jax.random.key(s), state_at(env, params, s), jnp.int32(a), params)
        assert (int(result.observation), float(result.reward), bool(result.terminated)) == (
            obs, reward, terminated), (s, a)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_random_action_sequences_match_gymnasium(name):
    gym_env, env, params = make(name)
    step, initial = jax.jit(env.step), jax.jit(env.initial)
    actions = np.asarray(jax.random.randint(jax.random.key(2), (600,), 0, 4))
    obs, _ = gym_env.reset(seed=0)
    state = initial(jax.random.key(3), params)
    ends = 0
    for i, a in enumerate(actions):
        assert int(env.observation(state, params)) == obs, i
        obs, reward, terminated, truncated, _ = gym_env.step(int(a))
        result = step(jax.random.key(i), state, jnp.int32(a), params)
        assert (int(result.observation), float(result.reward), bool(result.terminated)) == (
            obs, reward, terminated), i
        state = result.next_state
        if terminated or truncated:
            ends += 1
            obs, _ = gym_env.reset()
            state = initial(jax.random.key(10_000 + i), params)
    assert ends > 0 or name == "cliff"


@pytest.mark.parametrize("name", SLIPPERY)
def test_slippery_next_state_frequencies_match_the_model(name):
    gym_env, env, params = make(name)
    num_keys = 4000
    next_s, _, _ = step_all(env, params, jax.random.split(jax.random.key(4), num_keys))
    S = env.num_states
    # counts[s, a, s'] from the flat index (s * 4 + a) * S + s'.
    flat = (np.arange(S)[:, None, None] * 4 + np.arange(4)[None, :, None]) * S + next_s
    counts = np.bincount(flat.ravel(), minlength=S * 4 * S).reshape(S, 4, S)
    P = np.asarray(mdp.from_toy_text(gym_env, 1.0).P, np.float64)
    # Each count is Binomial(num_keys, P): allow five standard deviations.
    tolerance = 5 * np.sqrt(num_keys * P * (1 - P))
    assert np.all(np.abs(counts - num_keys * P) <= tolerance + 1e-9)
    assert np.all(counts[P == 0] == 0)


@pytest.mark.parametrize("name", ALL)
def test_initial_state_distribution_matches_gymnasium(name):
    gym_env, env, params = make(name)
    keys = jax.random.split(jax.random.key(5), 500)
    starts = np.asarray(jax.vmap(lambda k: env.observation(env.initial(k, params), params))(keys))
    initial = gym_env.unwrapped.initial_state_distrib
    assert np.array_equal(np.bincount(starts, minlength=env.num_states) / len(keys), initial)
    assert {gym_env.reset(seed=seed)[0] for seed in range(5)} == set(np.flatnonzero(initial))


@pytest.mark.parametrize("name", ALL)
def test_adapter_passes_check_env(name):
    _, env, params = make(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(GymnasiumEnv(env, params))  # CliffWalking: no time limit


@pytest.mark.parametrize(
    "env, s, a, next_s, reward, terminated",
    [
        (frozen_lake.FrozenLake("4x4", False), 14, frozen_lake.RIGHT, 15, 1.0, True),  # into G
        (frozen_lake.FrozenLake("4x4", False), 1, frozen_lake.DOWN, 5, 0.0, True),  # into H
        (frozen_lake.FrozenLake("4x4", False), 0, frozen_lake.LEFT, 0, 0.0, False),  # edge
        (frozen_lake.FrozenLake("4x4", False), 5, frozen_lake.UP, 5, 0.0, True),  # H absorbs
        (cliff_walking.CliffWalking(), 36, cliff_walking.RIGHT, 36, -100.0, False),  # cliff
        (cliff_walking.CliffWalking(), 36, cliff_walking.UP, 24, -1.0, False),
        (cliff_walking.CliffWalking(), 35, cliff_walking.DOWN, 47, -1.0, True),  # into G
        (cliff_walking.CliffWalking(), 25, cliff_walking.DOWN, 36, -100.0, False),  # cliff
    ],
)
def test_hand_steps(env, s, a, next_s, reward, terminated):
    params = env.default_params()
    result = env.step(jax.random.key(0), state_at(env, params, s), jnp.int32(a), params)
    assert int(result.observation) == next_s
    assert float(result.reward) == reward
    assert bool(result.terminated) == terminated


def test_slippery_cliff_reward_tells_a_fall_from_a_bump():
    # From S, "up" slips left into the edge (stay, -1) or right into the cliff
    # (back to S, -100): the same positions, different rewards.
    env = cliff_walking.CliffWalking(is_slippery=True)
    params = env.default_params()
    keys = jax.random.split(jax.random.key(6), 200)
    start = state_at(env, params, 36)
    results = jax.jit(jax.vmap(lambda k: env.step(k, start, jnp.int32(cliff_walking.UP), params)))(keys)
    at_start = np.asarray(results.observation) == 36
    assert set(np.asarray(results.reward)[at_start].tolist()) == {-1.0, -100.0}
    R = env.to_mdp(params, 1.0).R[36, cliff_walking.UP]
    assert R == np.float32((-1.0 + -1.0 + -100.0) / 3)


def test_params_can_be_vmapped_over_success_rate():
    env = frozen_lake.FrozenLake("4x4")
    params = frozen_lake.FrozenLakeParams(success_rate=jnp.array([1.0, 0.0]))
    keys = jax.random.split(jax.random.key(7), 300)
    axes = frozen_lake.FrozenLakeParams(0, None, None, None)  # map success_rate only
    step = lambda p, k: env.step(k, state_at(env, p, 6), jnp.int32(frozen_lake.DOWN), p)
    next_s = np.asarray(jax.jit(jax.vmap(jax.vmap(step, (None, 0)), (axes, None)))(params, keys).observation)
    assert set(next_s[0]) == {10}  # always down from 6
    assert set(next_s[1]) == {5, 7}  # always sideways: right or left


def test_jit_equals_eager():
    for env in (frozen_lake.FrozenLake("8x8"), cliff_walking.CliffWalking(is_slippery=True)):
        params, jitted_step = env.default_params(), jax.jit(env.step)
        for i, (s, a) in enumerate(itertools.product([0, 10, 36], range(4))):
            key, state = jax.random.key(i), state_at(env, params, s)
            eager = env.step(key, state, jnp.int32(a), params)
            jitted = jitted_step(key, state, jnp.int32(a), params)
            jax.tree.map(np.testing.assert_array_equal, eager, jitted)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="map_name"):
        frozen_lake.FrozenLake("5x5")
    with pytest.raises(ValueError, match="is_slippery"):
        cliff_walking.CliffWalking(is_slippery="yes")
    env = frozen_lake.FrozenLake()
    with pytest.raises(ValueError, match="params"):
        jax.jit(lambda p: env.to_mdp(p, 0.9).P)(env.default_params())
