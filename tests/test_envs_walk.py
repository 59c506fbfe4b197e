"""The 1-D walk against its definition, written out independently here:

    s' = min(max(s + (+1 if a == right else -1), 0), 10),   r = -|s' - 5|
"""

import itertools

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.envs import walk

ENV = walk.Walk()
PARAMS = ENV.default_params()
N = 11
PAIRS = list(itertools.product(range(N), (walk.LEFT, walk.RIGHT)))


def definition_next(s, a, n=N):
    return min(max(s + (1 if a == walk.RIGHT else -1), 0), n - 1)


def definition_reward(s, a, n=N, centre=5):
    return -abs(definition_next(s, a, n) - centre)


def step(s, a, env=ENV, params=PARAMS):
    state = walk.WalkState(jnp.int32(s))
    return env.step(jax.random.key(0), state, jnp.int32(a), params)


@pytest.mark.parametrize(
    "s, a, next_s, reward",
    [
        (3, walk.RIGHT, 4, -abs(4 - 5)),
        (3, walk.LEFT, 2, -abs(2 - 5)),
        (0, walk.LEFT, 0, -abs(0 - 5)),  # into the left wall: stays
        (10, walk.RIGHT, 10, -abs(10 - 5)),  # into the right wall: stays
        (4, walk.RIGHT, 5, -abs(5 - 5)),
    ],
)
def test_hand_steps(s, a, next_s, reward):
    result = step(s, a)
    assert int(result.next_state.position) == next_s
    assert int(result.observation) == next_s
    assert float(result.reward) == reward
    assert not bool(result.terminated)


def test_every_step_matches_the_definition_and_never_terminates():
    for s, a in PAIRS:
        result = step(s, a)
        assert int(result.next_state.position) == definition_next(s, a)
        assert float(result.reward) == definition_reward(s, a)
        assert result.reward.dtype == jnp.float32
        assert not bool(result.terminated)
    for s in range(N):
        assert not bool(ENV.terminal(walk.WalkState(jnp.int32(s)), PARAMS))


def test_centre_reward_is_positive_zero():
    # -0.0 would print as "-0." in the book's tables.
    assert not np.signbit(float(step(4, walk.RIGHT).reward))


def test_initial_distribution_is_uniform():
    num_keys = 22_000
    keys = jax.random.split(jax.random.key(0), num_keys)
    positions = jax.vmap(lambda k: ENV.initial(k, PARAMS).position)(keys)
    counts = np.bincount(np.asarray(positions), minlength=N)
    assert counts.shape == (N,)  # nothing outside 0..10
    p = 1 / N
    # Each count is Binomial(num_keys, 1/11): allow five standard deviations.
    tolerance = 5 * np.sqrt(num_keys * p * (1 - p))
    np.testing.assert_array_less(np.abs(counts - num_keys * p), tolerance)


def test_jit_equals_eager():
    jitted_step = jax.jit(ENV.step)
    for s, a in PAIRS:
        state = walk.WalkState(jnp.int32(s))
        key = jax.random.key(s)
        eager = ENV.step(key, state, jnp.int32(a), PARAMS)
        jitted = jitted_step(key, state, jnp.int32(a), PARAMS)
        jax.tree.map(np.testing.assert_array_equal, eager, jitted)
    jitted_initial = jax.jit(ENV.initial)
    for key in jax.random.split(jax.random.key(1), 20):
        eager, jitted = ENV.initial(key, PARAMS), jitted_initial(key, PARAMS)
        jax.tree.map(np.testing.assert_array_equal, eager, jitted)


def test_vmap_over_states_and_actions_equals_a_loop():
    s = jnp.array([s for s, _ in PAIRS], dtype=jnp.int32)
    a = jnp.array([a for _, a in PAIRS], dtype=jnp.int32)
    keys = jax.random.split(jax.random.key(2), len(PAIRS))
    batched = jax.vmap(ENV.step, in_axes=(0, 0, 0, None))(keys, walk.WalkState(s), a, PARAMS)
    for i in range(len(PAIRS)):
        single = ENV.step(keys[i], walk.WalkState(s[i]), a[i], PARAMS)
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(x[i], y), batched, single)


def test_vmap_over_params_moves_the_centre():
    centres = jnp.array([0, 5, 10])
    params = walk.WalkParams(centre=centres)
    state = walk.WalkState(jnp.int32(3))
    rewards = jax.vmap(ENV.step, in_axes=(None, None, None, 0))(
        jax.random.key(0), state, jnp.int32(walk.RIGHT), params
    ).reward
    np.testing.assert_array_equal(rewards, [-abs(4 - 0), -abs(4 - 5), -abs(4 - 10)])


def test_spaces_and_time_limit():
    assert ENV.observation_space(PARAMS) == gymnasium.spaces.Discrete(11)
    assert ENV.action_space(PARAMS) == gymnasium.spaces.Discrete(2)
    assert walk.Walk.max_episode_steps == 20
    assert PARAMS.centre == 5


def test_environment_is_static_and_hashable():
    assert walk.Walk() == walk.Walk() and hash(walk.Walk()) == hash(walk.Walk())
    with pytest.raises(AttributeError):
        ENV.num_states = 3


@pytest.mark.parametrize("num_states", [1, 0, 2.5, "11"])
def test_bad_num_states_is_rejected(num_states):
    with pytest.raises(ValueError, match="num_states"):
        walk.Walk(num_states=num_states)


@pytest.mark.parametrize("num_states, centre", [(11, 5), (7, 1)])
def test_to_mdp_matches_the_definition(num_states, centre):
    env = walk.Walk(num_states=num_states)
    params = walk.WalkParams(centre=centre)
    mdp = env.to_mdp(params, gamma=0.9)
    S = num_states
    assert mdp.P.shape == (S, 2, S) and mdp.R.shape == (S, 2)
    np.testing.assert_allclose(mdp.P.sum(axis=-1), np.ones((S, 2)), atol=1e-6)
    for s, a in itertools.product(range(S), range(2)):
        expected = np.zeros(S)
        expected[definition_next(s, a, S)] = 1.0
        np.testing.assert_array_equal(mdp.P[s, a], expected)
        assert float(mdp.R[s, a]) == definition_reward(s, a, S, centre)
    np.testing.assert_allclose(mdp.initial, np.full(S, 1 / S), rtol=1e-6)
    assert not np.any(mdp.terminal)
    assert float(mdp.gamma) == pytest.approx(0.9)


def test_to_mdp_agrees_with_stepping_the_environment():
    mdp = ENV.to_mdp(PARAMS, gamma=0.9)
    for s, a in PAIRS:
        result = step(s, a)
        assert float(mdp.P[s, a, int(result.next_state.position)]) == 1.0
        assert float(mdp.R[s, a]) == float(result.reward)
        assert bool(mdp.terminal[int(result.next_state.position)]) == bool(result.terminated)
