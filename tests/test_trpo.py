"""TRPO: the step after the line search stays inside the KL trust region and improves the surrogate,
it moves only the actor (and the critic's fit only the critic), and it learns CartPole (slow)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from rlbook_lib import actor_critic, trpo
from rlbook_lib.envs import cartpole, pendulum


def batch_for(env, config, key):
    env_params = env.default_params()
    net = trpo.make_network(config, env, env_params)
    state = trpo.init(config, env, env_params, net, key)
    _, transitions = actor_critic.collect(env, env_params, net, state.params, key, state.env_states,
                                          config.num_steps)
    return net, state, actor_critic.make_batch(net, state.params, transitions, config.gamma, config.gae_lambda)


def split(params):
    """Flat (actor, critic) weights: the critic's layers are the odd Dense layers and the last one."""
    inner = params["params"]
    names = sorted(inner, key=lambda n: (n.startswith("Dense"), int(n.split("_")[-1]) if "_" in n else -1))
    dense = [n for n in names if n.startswith("Dense")]
    hidden = len(dense) // 2 - 1
    critic = [dense[2 * i + 1] for i in range(hidden)] + [dense[-1]]
    actor = [n for n in inner if n not in critic]
    return ravel_pytree({n: inner[n] for n in actor})[0], ravel_pytree({n: inner[n] for n in critic})[0]


@pytest.mark.parametrize("env", [cartpole.CartPole(), pendulum.Pendulum()], ids=["discrete", "gaussian"])
def test_step_after_the_line_search_satisfies_the_kl_bound_and_improves(env):
    config = trpo.Config(num_envs=4, num_steps=64)
    net, state, batch = batch_for(env, config, jax.random.key(0))
    batch = batch._replace(advantage=jax.random.normal(jax.random.key(1), batch.advantage.shape))  # informative
    # δ is traced (one compilation for all three): a float Config field may be vmapped or traced.
    step_fn = jax.jit(lambda p, b, d: trpo.policy_step(dataclasses.replace(config, max_kl=d), net, p, b))
    advantage = actor_critic.normalize(batch.advantage)
    surrogate, _ = trpo.surrogate_and_kl(net, batch, advantage)
    for max_kl in (0.001, 0.01, 0.05):
        step = step_fn(state.params, batch, max_kl)
        assert bool(step.search.accepted)
        new_dist = net.apply(step.params, batch.transitions.obs)[0]
        kl = float(jnp.mean(batch.dist.kl(new_dist)))  # recomputed from the parameters returned
        assert 0 < kl <= max_kl
        np.testing.assert_allclose(kl, step.search.kl, rtol=1e-4)
        assert float(surrogate(step.params)) > float(surrogate(state.params))
        assert float(step.search.improvement) >= 0.1 * float(step.search.step_fraction * step.expected_improvement)


def test_policy_step_moves_only_the_actor_and_fit_value_only_the_critic():
    config = trpo.Config(num_envs=4, num_steps=64)
    net, state, batch = batch_for(cartpole.CartPole(), config, jax.random.key(2))
    step = trpo.policy_step(config, net, state.params, batch)
    actor_old, critic_old = split(state.params)
    actor_new, critic_new = split(step.params)
    assert float(jnp.abs(actor_new - actor_old).max()) > 0
    np.testing.assert_array_equal(critic_new, critic_old)
    params, _, _ = trpo.fit_value(config, net, step.params, state.value_opt_state, batch, jax.random.key(3))
    actor_fit, critic_fit = split(params)
    np.testing.assert_array_equal(actor_fit, actor_new)
    assert float(jnp.abs(critic_fit - critic_new).max()) > 0
    assert float(trpo.value_loss(net, params, batch)) < float(trpo.value_loss(net, step.params, batch))


def test_loss_by_hand():
    config = trpo.Config(num_envs=2, num_steps=32)
    net, state, batch = batch_for(cartpole.CartPole(), config, jax.random.key(5))
    moved = jax.tree.map(lambda x: x * 1.2, state.params)
    value, info = trpo.loss(config, net, moved, batch)
    dist, v = net.apply(moved, batch.transitions.obs)
    advantage = (batch.advantage - batch.advantage.mean()) / (batch.advantage.std() + 1e-8)
    surrogate = jnp.mean(jnp.exp(dist.log_prob(batch.transitions.action) - batch.log_prob) * advantage)
    np.testing.assert_allclose(value, -surrogate, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(info.kl, jnp.mean(batch.dist.kl(dist)), rtol=1e-5)
    np.testing.assert_allclose(info.value_loss, jnp.mean(0.5 * (v - batch.target) ** 2), rtol=1e-5)
    assert float(trpo.loss(config, net, state.params, batch)[1].kl) == 0.0


def test_config_is_checked():
    for bad in (dict(max_kl=0.0), dict(value_minibatches=3), dict(accept_ratio=2.0), dict(total_steps=10),
                dict(cg_iterations=0)):
        with pytest.raises(ValueError):
            trpo.Config(**bad)


def test_every_update_of_a_short_run_stays_in_the_trust_region():
    env = cartpole.CartPole()
    config = trpo.Config(num_envs=4, num_steps=32, total_steps=4 * 32 * 6)
    train = jax.jit(jax.vmap(trpo.make_train(config, env, env.default_params())))
    _, metrics = train(jax.random.split(jax.random.key(4), 2))
    assert metrics.kl.shape == (2, 6)
    assert (np.asarray(metrics.kl) <= config.max_kl).all()
    assert (np.asarray(metrics.surrogate_improvement)[np.asarray(metrics.accepted)] > 0).all()


@pytest.mark.slow
def test_trpo_learns_cartpole_over_8_seeds():
    env = cartpole.CartPole()
    train = jax.jit(jax.vmap(trpo.make_train(trpo.Config(), env, env.default_params())))
    _, metrics = train(jax.random.split(jax.random.key(0), 8))
    assert np.median(np.asarray(metrics.episode_return)[:, -1]) >= 475
