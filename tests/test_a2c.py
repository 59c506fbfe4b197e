"""A2C: the loss by hand, λ = 1 advantages as bootstrapped T-step returns, the annealed step size,
and learning CartPole over 8 seeds (slow)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlbook_lib import a2c, actor_critic
from rlbook_lib.envs import cartpole, pendulum


def segment(env, config, key):
    env_params = env.default_params()
    net = a2c.make_network(config, env, env_params)
    state = a2c.init(config, env, env_params, net, key)
    _, transitions = actor_critic.collect(env, env_params, net, state.params, key, state.env_states,
                                          config.num_steps)
    return net, state, transitions


def test_lambda_one_advantage_is_the_bootstrapped_return_minus_the_value():
    """Â_t = r_{t+1} + γ r_{t+2} + … up to the episode's end or the segment's, then γ^k v(o'), minus v(o_t)."""
    config = a2c.Config(num_envs=2, num_steps=40, gamma=0.9)
    net, state, tr = segment(cartpole.CartPole(), config, jax.random.key(0))
    batch = actor_critic.make_batch(net, state.params, tr, config.gamma, 1.0)
    _, next_values = net.apply(state.params, tr.next_obs)
    for n in range(2):
        r, term, ended = (np.asarray(x[n], np.float64) for x in (tr.reward, tr.terminated, tr.episode_ended))
        nv, v = np.asarray(next_values[n], np.float64), np.asarray(batch.value[n], np.float64)
        for t in range(config.num_steps):
            g, weight = 0.0, 1.0
            for k in range(t, config.num_steps):
                g += weight * r[k]
                weight *= config.gamma
                if ended[k] or k == config.num_steps - 1:
                    g += 0.0 if term[k] else weight * nv[k]
                    break
            np.testing.assert_allclose(batch.advantage[n, t], g - v[t], rtol=1e-4, atol=1e-4)
    assert bool(tr.terminated.any())  # the check covered episode ends inside the segment


@pytest.mark.parametrize("env", [cartpole.CartPole(), pendulum.Pendulum()], ids=["discrete", "gaussian"])
def test_loss_by_hand(env):
    config = a2c.Config(num_envs=3, num_steps=8, value_coef=0.7, entropy_coef=0.05)
    net, state, tr = segment(env, config, jax.random.key(1))
    batch = actor_critic.make_batch(net, state.params, tr, config.gamma, config.gae_lambda)
    moved = jax.tree.map(lambda x: x * 1.1, state.params)
    total, info = a2c.loss(config, net, moved, batch)
    dist, value = net.apply(moved, tr.obs)
    policy_loss = -jnp.mean(batch.advantage * dist.log_prob(tr.action))
    value_loss = jnp.mean(0.5 * (value - batch.target) ** 2)
    np.testing.assert_allclose(info.policy_loss, policy_loss, rtol=1e-5)
    np.testing.assert_allclose(info.value_loss, value_loss, rtol=1e-5)
    np.testing.assert_allclose(total, policy_loss + 0.7 * value_loss - 0.05 * jnp.mean(dist.entropy()), rtol=1e-5)
    # No gradient flows into the advantage: the policy gradient is the score-function estimate.
    grads = jax.grad(lambda p: a2c.loss(a2c.Config(value_coef=0.0, entropy_coef=0.0), net, p, batch)[0])(moved)
    expected = jax.grad(lambda p: -jnp.mean(jax.lax.stop_gradient(batch.advantage)
                                            * net.apply(p, tr.obs)[0].log_prob(tr.action)))(moved)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, expected)


def test_step_size_is_annealed_linearly_per_update():
    """With a constant gradient Adam's step is the step size itself, so the k-th step is α (1 − k/U)."""
    config = a2c.Config(total_steps=8 * 5 * 10, learning_rate=0.01, max_grad_norm=100.0)
    tx = a2c.optimizer(config)
    params = jnp.zeros(3)
    opt_state, sizes = tx.init(params), []
    for _ in range(config.num_updates):
        steps, opt_state = tx.update(jnp.ones(3), opt_state, params)
        sizes.append(float(-steps[0]))
    expected = [0.01 * (1 - k / 10) for k in range(10)]
    np.testing.assert_allclose(sizes, expected, rtol=1e-3, atol=1e-7)
    flat = a2c.optimizer(a2c.Config(total_steps=400, anneal_lr=False, learning_rate=0.01))
    steps, _ = flat.update(jnp.ones(3), flat.init(params), params)
    np.testing.assert_allclose(-steps, 0.01, rtol=1e-3)


def test_gradient_norm_is_clipped_before_adam():
    config = a2c.Config(max_grad_norm=0.5)
    clip = optax.clip_by_global_norm(config.max_grad_norm)
    grads = {"a": jnp.array([3.0, 4.0])}
    clipped, _ = clip.update(grads, clip.init(grads))
    np.testing.assert_allclose(clipped["a"], [0.3, 0.4], rtol=1e-6)
    assert isinstance(a2c.optimizer(config).init(grads), tuple)  # the chain (clip, adam)


def test_config_is_checked():
    for bad in (dict(num_envs=0), dict(gae_lambda=1.5), dict(learning_rate=-1.0), dict(total_steps=3)):
        with pytest.raises(ValueError):
            a2c.Config(**bad)


def test_short_training_runs_under_jit_and_vmap():
    env = cartpole.CartPole()
    config = a2c.Config(total_steps=8 * 5 * 20)
    _, metrics = jax.jit(jax.vmap(a2c.make_train(config, env, env.default_params())))(
        jax.random.split(jax.random.key(2), 2))
    assert metrics.policy_loss.shape == (2, 20) and np.isfinite(np.asarray(metrics.value_loss)).all()


@pytest.mark.slow
def test_a2c_solves_cartpole_over_8_seeds():
    """The default Config, 5·10⁵ steps: median over 8 seeds of the last 10 episodes ≥ 475."""
    env = cartpole.CartPole()
    train = jax.jit(jax.vmap(a2c.make_train(a2c.Config(), env, env.default_params())))
    _, metrics = train(jax.random.split(jax.random.key(0), 8))
    assert np.median(np.asarray(metrics.episode_return)[:, -1]) >= 475


@pytest.mark.slow
def test_a2c_learns_acrobot_with_the_same_code():
    """The default Config on Acrobot-v1, 2·10⁵ steps: median of the last 10 episodes above −120
    over 8 seeds (a random policy scores −500, the time limit)."""
    from rlbook_lib.envs import acrobot

    env = acrobot.Acrobot()
    config = a2c.Config(total_steps=200_000)
    _, metrics = jax.jit(jax.vmap(a2c.make_train(config, env, env.default_params())))(
        jax.random.split(jax.random.key(0), 8))
    assert np.median(np.asarray(metrics.episode_return)[:, -1]) > -120
