"""actor_critic: GAE with time-limit cuts inside a segment against a plain-Python loop and
against returns.gae, minibatches and the network for both action spaces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import actor_critic, distributions, returns, rollout
from rlbook_lib.envs import cartpole, pendulum

GAMMA, LAMBDA = 0.9, 0.8


def transitions_of(rewards, terminated, truncated, returns_=None):
    t = len(rewards)
    zeros = jnp.zeros(t)
    return rollout.Transition(obs=zeros, action=zeros, reward=jnp.float32(rewards), next_obs=zeros,
                              terminated=jnp.array(terminated), truncated=jnp.array(truncated),
                              episode_return=zeros if returns_ is None else jnp.float32(returns_),
                              episode_length=jnp.zeros(t, jnp.int32))


def python_gae(rewards, terminated, truncated, values, next_values):
    """Â_t = Σ_l (γλ)^l δ_{t+l}, summed until the episode of step t ends, one step at a time."""
    t_max, out = len(rewards), []
    for t in range(t_max):
        total, weight = 0.0, 1.0
        for k in range(t, t_max):
            delta = rewards[k] + GAMMA * (0.0 if terminated[k] else next_values[k]) - values[k]
            total += weight * delta
            if terminated[k] or truncated[k]:
                break
            weight *= GAMMA * LAMBDA
        out.append(total)
    return np.array(out)


def test_gae_bootstraps_at_a_cut_inside_the_segment_and_stops_at_every_end():
    rewards = [1.0, 0.5, -1.0, 2.0, 0.0, 1.0, 3.0]
    terminated = [False, True, False, False, False, False, False]
    truncated = [False, False, False, True, False, False, False]  # a time limit at step 3
    values = [0.3, -0.2, 1.0, 0.7, 0.1, -0.4, 0.9]
    next_values = [-0.2, 5.0, 0.7, 2.5, -0.4, 0.9, 1.5]  # v(o'_3) = 2.5 is the cut episode's last state
    ours = actor_critic.gae(transitions_of(rewards, terminated, truncated), jnp.float32(values),
                            jnp.float32(next_values), GAMMA, LAMBDA)
    np.testing.assert_allclose(ours, python_gae(rewards, terminated, truncated, values, next_values), rtol=1e-5)
    # Step 3 by hand: δ_3 = 2 + 0.9 · 2.5 − 0.7, and nothing flows in from step 4.
    np.testing.assert_allclose(ours[3], 2.0 + 0.9 * 2.5 - 0.7, rtol=1e-6)


def test_gae_equals_returns_gae_without_cuts_inside_the_segment():
    key_r, key_v = jax.random.split(jax.random.key(0))
    rewards, values = jax.random.normal(key_r, (12,)), jax.random.normal(key_v, (13,))
    terminated = jnp.zeros(12, bool).at[4].set(True)
    tr = transitions_of(rewards, terminated, jnp.zeros(12, bool))
    next_values = values[1:]  # the next observation is the next step's (a reset after the termination)
    ours = actor_critic.gae(tr, values[:-1], next_values, GAMMA, LAMBDA)
    theirs = returns.gae(rewards, GAMMA * tr.discount, values[:-1], values[-1], LAMBDA)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_minibatches_are_a_permutation_split_evenly():
    batch = {"x": jnp.arange(24).reshape(4, 6), "y": jnp.arange(48).reshape(4, 6, 2)}
    mb = actor_critic.minibatches(jax.random.key(2), batch, 3)
    assert mb["x"].shape == (3, 8) and mb["y"].shape == (3, 8, 2)
    np.testing.assert_array_equal(np.sort(mb["x"].reshape(-1)), np.arange(24))
    np.testing.assert_array_equal(mb["y"][..., 0], 2 * mb["x"])  # rows stay together


@pytest.mark.parametrize("orthogonal", [False, True])
def test_network_gives_the_right_distribution_for_each_action_space(orthogonal):
    for env, kind in ((cartpole.CartPole(), distributions.Categorical), (pendulum.Pendulum(), distributions.DiagGaussian)):
        params_env = env.default_params()
        net = actor_critic.make_network(env, params_env, (8, 8), orthogonal, log_std_init=-0.5)
        obs = jnp.zeros((5,) + env.observation_space(params_env).shape)
        params = net.init(jax.random.key(3), obs[0])
        dist, value = net.apply(params, obs)
        assert isinstance(dist, kind) and value.shape == (5,)
        if kind is distributions.DiagGaussian:
            np.testing.assert_allclose(dist.log_std, -0.5)
            assert dist.mean.shape == (5, 1)
        else:
            assert dist.logits.shape == (5, 2) and float(jnp.abs(dist.logits).max()) < 0.5


def test_explained_variance_by_hand():
    targets = jnp.array([1.0, 2.0, 3.0, 4.0])
    assert float(actor_critic.explained_variance(targets, targets)) == 1.0
    assert abs(float(actor_critic.explained_variance(jnp.full(4, 2.5), targets))) < 1e-6
    values = jnp.array([1.5, 1.5, 3.5, 3.5])  # residuals ±0.5: Var = 0.25 against Var[G] = 1.25
    np.testing.assert_allclose(actor_critic.explained_variance(values, targets), 1 - 0.25 / 1.25, rtol=1e-6)


def test_shared_trunk_has_one_set_of_hidden_layers_that_both_losses_train():
    env = cartpole.CartPole()
    separate, shared = (actor_critic.make_network(env, env.default_params(), (8, 8), shared_trunk=s)
                        for s in (False, True))
    obs = jnp.zeros((4,))
    count = lambda p: sum(x.size for x in jax.tree_util.tree_leaves(p))  # noqa: E731
    p_sep, p_sh = separate.init(jax.random.key(0), obs), shared.init(jax.random.key(0), obs)
    assert count(p_sep) - count(p_sh) == (4 * 8 + 8) + (8 * 8 + 8)  # the critic's own hidden layers
    value_grads = jax.grad(lambda p: shared.apply(p, obs + 1.0)[1])(p_sh)
    hidden = [k for k in p_sh["params"] if k.startswith("Dense")][:2]
    assert all(float(jnp.abs(value_grads["params"][k]["kernel"]).max()) > 0 for k in hidden)


def test_policy_fn_samples_or_takes_the_mode_and_plugs_into_evaluation():
    from rlbook_lib import evaluation

    env = pendulum.Pendulum()
    net = actor_critic.make_network(env, env.default_params(), (8,), log_std_init=-1.0)
    obs = jnp.array([1.0, 0.0, 0.5])
    params = net.init(jax.random.key(4), obs)
    dist = net.apply(params, obs)[0]
    np.testing.assert_array_equal(actor_critic.policy_fn(net, params, greedy=True)(jax.random.key(5), obs),
                                  dist.mean)
    np.testing.assert_array_equal(actor_critic.policy_fn(net, params)(jax.random.key(5), obs),
                                  dist.sample(jax.random.key(5)))
    result = evaluation.evaluate(env, env.default_params(), actor_critic.policy_fn(net, params, True),
                                 jax.random.key(6), num_episodes=2, gamma=0.99)
    assert np.isfinite(np.asarray(jax.tree_util.tree_leaves(result)[0])).all()
