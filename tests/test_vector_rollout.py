"""vector_rollout: the batched reset path gives the same transitions and states, bit for bit, as
the per-environment path (``jax.vmap`` of rollout.step / rollout.rollout) with the same keys,
for every block size, with terminations, truncations and a stochastic environment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import rollout, vector_rollout
from rlbook_lib.envs import cartpole, frozen_lake, walk

N, T = 13, 50
ENVS = [cartpole.CartPole(), walk.Walk(), frozen_lake.FrozenLake("4x4", is_slippery=True)]
IDS = ["cartpole-terminates", "walk-truncates", "frozen-lake-stochastic"]


def random_policy(key, obs):
    return jax.random.randint(key, (), 0, 2)


def starts(env, key, num_envs=N):
    params = env.default_params()
    return jax.vmap(lambda k: rollout.reset(env, params, k))(jax.random.split(key, num_envs))


def assert_identical(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("env", ENVS, ids=IDS)
def test_rollout_batch_equals_vmapped_rollout_bit_for_bit(env):
    params = env.default_params()
    keys, states = jax.random.split(jax.random.key(0), N), starts(env, jax.random.key(1))
    per_env = jax.jit(jax.vmap(lambda k, s: rollout.rollout(env, params, random_policy, k, s, T)))(keys, states)
    for block in (1, 5):  # 1: more ends in a step than one block holds (default: ⌈13 / 16⌉ = 1)
        batched = jax.jit(lambda k, s: vector_rollout.rollout_batch(env, params, random_policy, k, s, T, block))(
            keys, states)
        assert_identical(batched, per_env)
    ended = per_env[1].episode_ended
    assert int(ended.sum()) > N and int(ended.sum(axis=0).max()) > 1  # resets happened, several in one step


@pytest.mark.parametrize("env", ENVS, ids=IDS)
def test_one_key_stands_for_fold_in_of_the_environment_index(env):
    params = env.default_params()
    states = jax.jit(lambda k, s: vector_rollout.rollout_batch(env, params, random_policy, k, s, 30))(
        jax.random.split(jax.random.key(2), N), starts(env, jax.random.key(3)))[0]
    actions = jax.random.randint(jax.random.key(4), (N,), 0, 2)
    step = jax.vmap(lambda k, s, a: rollout.step(env, params, k, s, a))
    per_env_step = jax.jit(lambda k, s, a: step(vector_rollout.env_keys(k, N), s, a))
    batched_step = jax.jit(lambda k, s, a: vector_rollout.step_batch(env, params, k, s, a, 2))
    key, ends = jax.random.key(5), 0
    for _ in range(20):  # a few steps, so that some episodes end
        batched = batched_step(key, states, actions)
        assert_identical(batched, per_env_step(key, states, actions))
        states, key, ends = batched[0], jax.random.fold_in(key, 7), ends + int(batched[1].episode_ended.sum())
    assert ends > 0
    np.testing.assert_array_equal(jax.random.key_data(vector_rollout.env_keys(key, 3)[2]),
                                  jax.random.key_data(jax.random.fold_in(key, 2)))


def test_only_environments_that_ended_are_reset():
    env = walk.Walk()  # truncated after 20 steps; the walk's state is its position
    params = env.default_params()
    states = starts(env, jax.random.key(6), 4)
    states = states._replace(t=jnp.array([0, 19, 5, 19]))  # environments 1 and 3 hit the time limit now
    actions = jnp.full(4, walk.RIGHT)
    next_states, tr = vector_rollout.step_batch(env, params, jax.random.key(7), states, actions)
    np.testing.assert_array_equal(tr.truncated, [False, True, False, True])
    np.testing.assert_array_equal(next_states.t, [1, 0, 6, 0])
    observed = np.asarray(env.observation(next_states.env_state, params))
    np.testing.assert_array_equal(observed[[0, 2]], np.asarray(tr.next_obs)[[0, 2]])  # the state reached
    for i in (1, 3):  # s_0 from environment i's reset key fold_in(fold_in(key, i), 1)
        reset_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(7), i), 1)
        assert observed[i] == int(env.observation(env.initial(reset_key, params), params))


def test_vmap_over_seeds_equals_one_seed_at_a_time():
    """The while loop over reset blocks under an outer vmap (as in jit(vmap(train)))."""
    env = cartpole.CartPole()
    params = env.default_params()

    def run(key):
        k1, k2 = jax.random.split(key)
        return vector_rollout.rollout_batch(env, params, random_policy, jax.random.split(k1, N), starts(env, k2), 40, 2)

    seeds = jax.random.split(jax.random.key(8), 2)
    together = jax.jit(jax.vmap(run))(seeds)
    for i, seed in enumerate(seeds):
        assert_identical(jax.tree.map(lambda x: x[i], together), jax.jit(run)(seed))


def test_bad_arguments_are_rejected():
    env = cartpole.CartPole()
    params, states = env.default_params(), starts(env, jax.random.key(9), 4)
    actions = jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match="typed keys"):
        vector_rollout.step_batch(env, params, jax.random.PRNGKey(0), states, actions)
    with pytest.raises(ValueError, match="one per environment"):
        vector_rollout.step_batch(env, params, jax.random.split(jax.random.key(0), 3), states, actions)
    with pytest.raises(ValueError, match="reset_block"):
        vector_rollout.step_batch(env, params, jax.random.key(0), states, actions, 0)
    with pytest.raises(ValueError, match="one key per environment"):
        vector_rollout.rollout_batch(env, params, random_policy, jax.random.key(0), states, 5)
