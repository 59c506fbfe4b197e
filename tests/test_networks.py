"""Policy and value networks: shapes, one-hot inputs, initialisation, log-probabilities."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import networks
from rlbook_lib.envs import cartpole, walk


def test_shapes_for_vector_observations_unbatched_and_batched():
    policy = networks.Policy(num_actions=3, hidden_sizes=(8, 8))
    value = networks.Value(hidden_sizes=(8,))
    obs = jnp.ones(4)
    policy_params = policy.init(jax.random.key(0), obs)
    value_params = value.init(jax.random.key(1), obs)
    assert policy.apply(policy_params, obs).shape == (3,)
    assert value.apply(value_params, obs).shape == ()
    batch = jnp.ones((5, 7, 4))
    assert policy.apply(policy_params, batch).shape == (5, 7, 3)
    assert value.apply(value_params, batch).shape == (5, 7)
    # The batched call is the unbatched one, vmapped.
    x = jax.random.normal(jax.random.key(2), (6, 4))
    np.testing.assert_allclose(policy.apply(policy_params, x),
                               jax.vmap(lambda o: policy.apply(policy_params, o))(x), rtol=1e-6)


def test_discrete_observations_are_one_hot_encoded():
    np.testing.assert_array_equal(networks.encode(jnp.array([0, 2]), 3), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(networks.encode(jnp.array([0.5, -1.0]), None), [0.5, -1.0])
    # With no hidden layer a one-hot input picks one row: logits[s] = kernel[s] + bias,
    # the tabular softmax policy with preferences θ = kernel + bias.
    policy = networks.Policy(num_actions=2, hidden_sizes=(), num_categories=11)
    params = policy.init(jax.random.key(0), jnp.int32(0))
    dense = params["params"]["MLP_0"]["Dense_0"]
    assert dense["kernel"].shape == (11, 2)
    theta = dense["kernel"] + dense["bias"]
    states = jnp.arange(11)
    np.testing.assert_allclose(policy.apply(params, states), theta, rtol=1e-6)
    np.testing.assert_allclose(policy.apply(params, jnp.int32(4)), theta[4], rtol=1e-6)


def test_num_categories_reads_the_observation_space():
    assert networks.num_categories(walk.Walk().observation_space(walk.Walk().default_params())) == 11
    env = cartpole.CartPole()
    assert networks.num_categories(env.observation_space(env.default_params())) is None
    with pytest.raises(ValueError, match="observation space"):
        networks.num_categories(gymnasium.spaces.Box(0, 1, (2, 2)))
    with pytest.raises(ValueError, match="observation space"):
        networks.num_categories(gymnasium.spaces.MultiDiscrete([2, 3]))


def test_initialisation_is_a_function_of_the_key():
    policy = networks.Policy(num_actions=2, hidden_sizes=(16,))
    obs = jnp.zeros(4)
    first, again = policy.init(jax.random.key(3), obs), policy.init(jax.random.key(3), obs)
    other = policy.init(jax.random.key(4), obs)
    jax.tree.map(np.testing.assert_array_equal, first, again)
    assert not np.allclose(first["params"]["MLP_0"]["Dense_0"]["kernel"],
                           other["params"]["MLP_0"]["Dense_0"]["kernel"])


def test_initial_policy_is_close_to_uniform():
    policy = networks.Policy(num_actions=2, hidden_sizes=(32,))
    params = policy.init(jax.random.key(0), jnp.zeros(4))
    obs = jax.random.uniform(jax.random.key(1), (100, 4), minval=-0.05, maxval=0.05)
    probs = jax.nn.softmax(policy.apply(params, obs))
    np.testing.assert_allclose(probs, 0.5, atol=0.02)


def test_log_policy_and_entropy_by_hand():
    logits = jnp.log(jnp.array([[0.25, 0.75], [0.5, 0.5]]))
    np.testing.assert_allclose(networks.log_policy(logits, jnp.array([1, 0])),
                               [np.log(0.75), np.log(0.5)], rtol=1e-6)
    np.testing.assert_allclose(networks.entropy(logits),
                               [-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)), np.log(2)], rtol=1e-6)


def test_global_norm_of_a_pytree_by_hand():
    tree = {"kernel": jnp.array([[1.0, 2.0], [2.0, 0.0]]), "bias": [jnp.array([4.0]), jnp.zeros(3)]}
    np.testing.assert_allclose(networks.global_norm(tree), 5.0)  # √(1 + 4 + 4 + 16)
    np.testing.assert_allclose(networks.global_norm(tree), np.linalg.norm([1.0, 2.0, 2.0, 4.0]), rtol=1e-6)
