"""PPO: the clipped surrogate, value clipping, the adaptive-KL rule and the diagnostics by hand;
the gradient at ratio 1 against the vanilla policy gradient; learning on CartPole (slow)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import actor_critic, distributions, ppo, ppo_loss
from rlbook_lib.envs import cartpole, pendulum

EPS = 0.2


@pytest.mark.parametrize("ratio, advantage, expected", [
    (1.1, 2.0, 1.1 * 2.0),  # inside the range: ρÂ
    (1.1, -2.0, 1.1 * -2.0),
    (0.9, 2.0, 0.9 * 2.0),
    (0.9, -2.0, 0.9 * -2.0),
    (1.5, 2.0, (1 + EPS) * 2.0),  # A > 0, ρ above 1 + ε: no more reward than (1 + ε)Â
    (1.5, -2.0, 1.5 * -2.0),  # A < 0, ρ above 1 + ε: the full (worse) loss is kept
    (0.5, 2.0, 0.5 * 2.0),  # A > 0, ρ below 1 − ε: the full (worse) value is kept
    (0.5, -2.0, (1 - EPS) * -2.0),  # A < 0, ρ below 1 − ε: no more reward than (1 − ε)Â
])
def test_clipped_surrogate_by_hand(ratio, advantage, expected):
    value = ppo_loss.clipped_surrogate(jnp.float32(ratio), jnp.float32(advantage), EPS)
    assert math.isclose(float(value), expected, rel_tol=1e-6)


def test_clipped_surrogate_is_a_lower_bound_and_its_gradient_vanishes_where_clipped():
    ratios = jnp.linspace(0.2, 2.0, 91) + 0.005  # off the kinks at 1 ± ε
    for a in (1.5, -1.5):
        clipped = ppo_loss.clipped_surrogate(ratios, a, EPS)
        assert (clipped <= ratios * a + 1e-6).all()
        grads = jax.vmap(jax.grad(lambda r: ppo_loss.clipped_surrogate(r, a, EPS)))(ratios)
        flat = (ratios > 1 + EPS) if a > 0 else (ratios < 1 - EPS)
        np.testing.assert_array_equal(grads[flat], 0.0)
        np.testing.assert_allclose(grads[~flat], a)


def test_value_loss_by_hand():
    v, v_old, g = jnp.float32(2.0), jnp.float32(1.0), jnp.float32(3.0)
    assert math.isclose(float(ppo_loss.value_loss(v, v_old, g, None)), 0.5 * (2.0 - 3.0) ** 2)
    # v moved by 1 > ε from v_old: the clipped value 1.2 is farther from G, so it counts.
    assert math.isclose(float(ppo_loss.value_loss(v, v_old, g, EPS)), 0.5 * (1.2 - 3.0) ** 2, rel_tol=1e-6)
    # Moving past the target: the unclipped error is the larger one.
    assert math.isclose(float(ppo_loss.value_loss(jnp.float32(4.0), v_old, g, EPS)),
                        0.5 * max((4.0 - 3.0) ** 2, (1.2 - 3.0) ** 2), rel_tol=1e-6)


@pytest.mark.parametrize("kl", [0.0, 0.001, 0.0066, 0.0067, 0.01, 0.0149, 0.0151, 0.5])
def test_adaptive_kl_rule_follows_its_definition(kl):
    beta, target = 1.0, 0.01
    if kl < target / 1.5:
        expected = beta / 2
    elif kl > target * 1.5:
        expected = beta * 2
    else:
        expected = beta
    assert float(ppo_loss.adaptive_kl_beta(jnp.float32(beta), jnp.float32(kl), target)) == expected


def test_k3_is_an_unbiased_nonnegative_kl_estimate_and_clip_fraction_counts():
    old = distributions.Categorical(jnp.array([0.5, -0.3, 1.2]))
    new = distributions.Categorical(jnp.array([0.2, 0.1, 1.0]))
    actions = jax.vmap(old.sample)(jax.random.split(jax.random.key(0), 200_000))
    log_ratio = new.log_prob(actions) - old.log_prob(actions)
    k3 = jnp.expm1(log_ratio) - log_ratio
    assert (k3 >= 0).all()
    se = float(jnp.std(k3)) / math.sqrt(k3.size)
    assert abs(float(ppo_loss.approx_kl_k3(log_ratio)) - float(old.kl(new))) < 4 * se
    ratios = jnp.array([0.7, 0.85, 1.0, 1.19, 1.25, 3.0])
    assert float(ppo_loss.clip_fraction(ratios, EPS)) == 3 / 6


def small_batch(env, key, num_envs=4, num_steps=16, config=ppo.Config()):
    params_env = env.default_params()
    net = ppo.make_network(config, env, params_env)
    state = ppo.init(config, env, params_env, net, key)
    _, transitions = actor_critic.collect(env, params_env, net, state.params, key, state.env_states, num_steps)
    batch = actor_critic.make_batch(net, state.params, transitions, 0.99, 0.95)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    return net, state.params, flat


@pytest.mark.parametrize("env", [cartpole.CartPole(), pendulum.Pendulum()], ids=["discrete", "gaussian"])
def test_gradient_at_ratio_one_is_the_vanilla_policy_gradient(env):
    config = ppo.Config(value_coef=0.0, entropy_coef=0.0, normalize_advantages=False)
    net, params, batch = small_batch(env, jax.random.key(1), config=config)
    batch = batch._replace(advantage=jax.random.normal(jax.random.key(2), batch.advantage.shape))
    grads = jax.grad(lambda p: ppo.loss(config, net, p, batch, 0.0)[0])(params)

    def vanilla(p):  # −(1/B) Σ Â log π(a|s)
        return -jnp.mean(batch.advantage * net.apply(p, batch.transitions.obs)[0].log_prob(batch.transitions.action))

    expected = jax.grad(vanilla)(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), grads, expected)
    for objective in ("kl",):  # the KL penalty's gradient is 0 at θ = θ_old too
        kl_config = ppo.Config(objective=objective, value_coef=0.0, entropy_coef=0.0, normalize_advantages=False)
        kl_grads = jax.grad(lambda p: ppo.loss(kl_config, net, p, batch, 3.0)[0])(params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), kl_grads, expected)


def test_loss_terms_by_hand_on_a_perturbed_policy():
    env = cartpole.CartPole()
    config = ppo.Config(objective="kl", normalize_advantages=False, clip_value_loss=False)
    net, params, batch = small_batch(env, jax.random.key(3), config=config)
    moved = jax.tree.map(lambda x: x + 0.05 * jnp.sign(x), params)
    total, info = ppo.loss(config, net, moved, batch, 2.0)
    dist, value = net.apply(moved, batch.transitions.obs)
    ratio = jnp.exp(dist.log_prob(batch.transitions.action) - batch.log_prob)
    policy_loss = -jnp.mean(ratio * batch.advantage - 2.0 * batch.dist.kl(dist))
    value_loss = jnp.mean(0.5 * jnp.square(value - batch.target))
    entropy = jnp.mean(dist.entropy())
    np.testing.assert_allclose(info.policy_loss, policy_loss, rtol=1e-5)
    np.testing.assert_allclose(info.value_loss, value_loss, rtol=1e-5)
    np.testing.assert_allclose(total, policy_loss + 0.5 * value_loss - 0.01 * entropy, rtol=1e-5)
    np.testing.assert_allclose(info.clip_fraction, jnp.mean(jnp.abs(ratio - 1) > 0.2), rtol=1e-6)


def test_config_is_checked():
    for bad in (dict(num_minibatches=3), dict(objective="adaptive"), dict(objective=2), dict(objective=True),
                dict(objective=jnp.float32(1.0)), dict(clip_eps=0.0), dict(gamma=1.5),
                dict(total_steps=100), dict(hidden_sizes=[64])):
        with pytest.raises(ValueError):
            ppo.Config(**bad)
    assert ppo.Config().num_updates == 500_000 // 512 and ppo.Config().minibatch_size == 128


def test_short_training_runs_under_jit_and_vmap_for_both_objectives_also_in_one_program():
    """Each objective by name; then objective = 0 or 1 traced, both in one program: row i equals OBJECTIVES[i]."""
    import dataclasses

    env = cartpole.CartPole()
    config = ppo.Config(num_envs=2, num_steps=16, total_steps=2 * 16 * 5)

    def run(objective, key):
        return ppo.make_train(dataclasses.replace(config, objective=objective), env, env.default_params())(key)

    keys = jax.random.split(jax.random.key(0), 2)
    _, both = jax.jit(jax.vmap(jax.vmap(run, (None, 0)), (0, None)))(jnp.arange(2), keys)  # [objective, seed]
    for i, objective in enumerate(ppo.OBJECTIVES):
        state, metrics = jax.jit(jax.vmap(lambda key: run(objective, key)))(keys)
        assert metrics.kl.shape == (2, 5) and np.isfinite(np.asarray(metrics.policy_loss)).all()
        if objective == "clip":
            np.testing.assert_array_equal(metrics.kl_beta, 1.0)
        else:  # β follows the rule from the measured KL of each update
            expected = ppo_loss.adaptive_kl_beta(metrics.kl_beta[:, :-1], metrics.kl[:, :-1], config.kl_target)
            np.testing.assert_allclose(metrics.kl_beta[:, 1:], expected)
            assert not np.allclose(metrics.kl_beta, 1.0)
        for field in ("policy_loss", "value_loss", "kl", "kl_beta", "entropy"):
            np.testing.assert_allclose(getattr(both, field)[i], getattr(metrics, field), rtol=1e-4, atol=1e-6,
                                       err_msg=f"{objective}: {field}")
    assert not np.allclose(both.policy_loss[0], both.policy_loss[1])


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["clip", "kl"])
def test_ppo_solves_cartpole_over_8_seeds(objective):
    """PureJaxRL's configuration, 5·10⁵ steps: median over 8 seeds of the last 10 episodes ≥ 475."""
    env = cartpole.CartPole()
    config = ppo.Config(objective=objective)
    train = jax.jit(jax.vmap(ppo.make_train(config, env, env.default_params())))
    _, metrics = train(jax.random.split(jax.random.key(0), 8))
    assert np.median(np.asarray(metrics.episode_return)[:, -1]) >= 475


@pytest.mark.slow
def test_ppo_swings_up_pendulum_over_8_seeds():
    """A Gaussian policy with ppo.PENDULUM, 2·10⁵ steps: median of the last 10 episodes above −400."""
    env = pendulum.Pendulum()
    train = jax.jit(jax.vmap(ppo.make_train(ppo.PENDULUM, env, env.default_params())))
    _, metrics = train(jax.random.split(jax.random.key(0), 8))
    assert np.median(np.asarray(metrics.episode_return)[:, -1]) > -400


ORTHOGONAL_INIT_PROGRAM = """
import rlbook_lib  # must come first: it configures XLA (shared TRAPS, item 1)
import jax
from rlbook_lib import ppo
from rlbook_lib.envs import cartpole

env = cartpole.CartPole(); params = env.default_params(); config = ppo.Config(orthogonal_init=True)
net = ppo.make_network(config, env, params)
init = jax.jit(jax.vmap(lambda key: ppo.init(config, env, params, net, key).params))
for i in range(20):
    jax.block_until_ready(init(jax.random.split(jax.random.key(i), 8)))
print("finished")
"""


@pytest.mark.slow
def test_vmapped_orthogonal_initialisation_does_not_deadlock():
    """Several QR-based orthogonal kernels per seed under jit(vmap): hung without the XLA flag."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    try:
        result = subprocess.run([sys.executable, "-c", ORTHOGONAL_INIT_PROGRAM], env=env, capture_output=True,
                                text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("orthogonal initialisation under jit(vmap) hung: the XLA deadlock is back")
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout


def test_learning_rate_can_be_vmapped_for_a_sweep_and_acrobot_runs_with_the_same_code():
    """A float Config field is only used in arithmetic, so a sweep is one vmap; row i equals a run at lr_i."""
    import dataclasses

    from rlbook_lib.envs import acrobot

    env = acrobot.Acrobot()
    config = ppo.Config(num_envs=2, num_steps=16, total_steps=2 * 16 * 3)

    def run(learning_rate, key):
        return ppo.make_train(dataclasses.replace(config, learning_rate=learning_rate), env, env.default_params())(key)

    rates = jnp.array([1e-4, 1e-2])
    _, swept = jax.jit(jax.vmap(run, (0, None)))(rates, jax.random.key(0))
    _, single = jax.jit(run)(1e-2, jax.random.key(0))
    np.testing.assert_allclose(swept.value_loss[1], single.value_loss, rtol=1e-4, atol=1e-6)
    assert not np.allclose(swept.value_loss[0], swept.value_loss[1])

