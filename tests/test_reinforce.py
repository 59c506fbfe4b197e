"""REINFORCE: a hand-computed loss, first-episode masking, the score-function identity,
transformations, and learning on CartPole-v1 and the walk (slow)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import reinforce, rollout, score_function
from rlbook_lib.envs import cartpole, walk

GAMMA = 0.9


def constant_params(params, last_bias):
    """Zero every weight, then set the last layer's bias: a network whose output ignores s."""
    params = jax.tree.map(jnp.zeros_like, params)
    mlp = params["params"]["MLP_0"]
    last = sorted(mlp)[-1]
    mlp[last]["bias"] = jnp.asarray(last_bias, jnp.float32)
    return params


def hand_batch():
    """Two runs of T = 4 steps.

    Run 0 terminates on its second step; steps 2 and 3 belong to a later episode
    (their rewards 5 and 7 must not count). Run 1 is truncated by the time limit
    after its fourth step.
    """
    f, t = False, True
    transitions = rollout.Transition(
        obs=jnp.zeros((2, 4, 4)),
        action=jnp.array([[1, 0, 1, 0], [1, 1, 1, 1]]),
        reward=jnp.array([[1.0, 2.0, 5.0, 7.0], [1.0, 1.0, 1.0, 1.0]]),
        next_obs=jnp.zeros((2, 4, 4)),
        terminated=jnp.array([[f, t, f, f], [f, f, f, f]]),
        truncated=jnp.array([[f, f, f, f], [f, f, f, t]]),
        episode_return=jnp.zeros((2, 4)),
        episode_length=jnp.zeros((2, 4), jnp.int32),
    )
    valid = jax.vmap(rollout.first_episode_mask)(transitions)
    return reinforce.Batch(transitions, valid)


def test_first_episode_mask_by_hand():
    np.testing.assert_array_equal(hand_batch().valid, [[1, 1, 0, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize("baseline", [False, True])
@pytest.mark.parametrize("weight_by_discount", [False, True])
@pytest.mark.parametrize("bootstrap_truncation", [False, True])
def test_loss_by_hand(baseline, weight_by_discount, bootstrap_truncation):
    if bootstrap_truncation and not baseline:
        pytest.skip("bootstrapping needs a baseline")
    config = reinforce.Config(gamma=GAMMA, baseline=baseline, weight_by_discount=weight_by_discount,
                              bootstrap_truncation=bootstrap_truncation, hidden_sizes=(3,))
    env = cartpole.CartPole()
    nets = reinforce.make_networks(config, env, env.default_params())
    state = reinforce.init(config, env, env.default_params(), nets, jax.random.key(0))
    # π(right | s) = 0.75 everywhere; v(s) = 0.5 everywhere.
    policy_params = constant_params(state.policy_params, jnp.log(jnp.array([0.25, 0.75])))
    value_params = constant_params(state.value_params, [0.5]) if baseline else None
    total, info = reinforce.loss(config, nets, policy_params, value_params, hand_batch())

    log_right, log_left, v = np.log(0.75), np.log(0.25), 0.5
    tail = GAMMA * v if bootstrap_truncation else 0.0  # run 1 is truncated after its 4th step
    G0 = [1 + GAMMA * 2, 2]  # run 0: steps 0 and 1, then terminated
    G1 = [1 + GAMMA * (1 + GAMMA * (1 + GAMMA * (1 + tail))), 1 + GAMMA * (1 + GAMMA * (1 + tail)),
          1 + GAMMA * (1 + tail), 1 + tail]
    b = v if baseline else 0.0
    w = [1, GAMMA, GAMMA**2, GAMMA**3] if weight_by_discount else [1, 1, 1, 1]
    episode0 = w[0] * (G0[0] - b) * log_right + w[1] * (G0[1] - b) * log_left
    episode1 = sum(w[t] * (G1[t] - b) * log_right for t in range(4))
    expected_policy_loss = -(episode0 + episode1) / 2  # sum over steps, mean over the N = 2 episodes
    np.testing.assert_allclose(info.policy_loss, expected_policy_loss, rtol=1e-5)
    squares = [(v - g) ** 2 for g in G0 + G1]
    expected_value_loss = sum(squares) / 6 if baseline else 0.0  # mean over the 6 valid steps
    np.testing.assert_allclose(info.value_loss, expected_value_loss, rtol=1e-5)
    np.testing.assert_allclose(info.entropy, -(0.25 * log_left + 0.75 * log_right), rtol=1e-5)
    np.testing.assert_allclose(total, info.policy_loss + info.value_loss, rtol=1e-6)


def test_normalized_advantages_by_hand():
    config = reinforce.Config(gamma=GAMMA, baseline=False, normalize_advantages=True, hidden_sizes=(3,))
    env = cartpole.CartPole()
    nets = reinforce.make_networks(config, env, env.default_params())
    state = reinforce.init(config, env, env.default_params(), nets, jax.random.key(0))
    policy_params = constant_params(state.policy_params, jnp.log(jnp.array([0.25, 0.75])))
    _, info = reinforce.loss(config, nets, policy_params, None, hand_batch())
    G = np.array([1 + GAMMA * 2, 2, 1 + GAMMA + GAMMA**2 + GAMMA**3, 1 + GAMMA + GAMMA**2, 1 + GAMMA, 1])
    A = (G - G.mean()) / G.std()  # over the six valid steps
    log_pi = np.log([0.75, 0.25, 0.75, 0.75, 0.75, 0.75])
    np.testing.assert_allclose(info.policy_loss, -np.sum(A * log_pi) / 2, rtol=1e-4, atol=1e-6)


def collect(config, env, key, params_key=jax.random.key(0)):
    env_params = env.default_params()
    nets = reinforce.make_networks(config, env, env_params)
    state = reinforce.init(config, env, env_params, nets, params_key)
    batch = jax.jit(lambda k: reinforce.collect(config, env, env_params, nets, state.policy_params, k))(key)
    return nets, state, batch


def test_only_the_first_episode_of_each_run_is_used():
    config = reinforce.Config(num_envs=32, gamma=GAMMA)
    env = cartpole.CartPole()
    nets, state, batch = collect(config, env, jax.random.key(1))
    tr, valid = jax.tree.map(np.asarray, batch.transitions), np.asarray(batch.valid)
    assert valid.shape == (32, env.max_episode_steps)
    ended = tr.terminated | tr.truncated
    for i in range(32):
        first_end = np.flatnonzero(ended[i])[0]
        np.testing.assert_array_equal(valid[i], np.arange(500) <= first_end)  # a prefix, end included
        assert tr.terminated[i, first_end]  # a near-uniform policy drops the pole early ...
        assert ended[i, first_end + 1:].any()  # ... and later episodes follow, masked out
        # G_t of the first episode, by a plain loop.
        G, expected = 0.0, np.zeros(first_end + 1)
        for t in reversed(range(first_end + 1)):
            G = tr.reward[i, t] + GAMMA * G
            expected[t] = G
        got = reinforce.episode_returns(GAMMA, jax.tree.map(lambda x: x[i], batch.transitions), batch.valid[i])
        np.testing.assert_allclose(got[: first_end + 1], expected, rtol=1e-5)

    # The loss does not change when everything after the first episodes changes.
    garbage = jax.random.normal(jax.random.key(2), tr.obs.shape) * 10
    mask = valid[..., None]
    scrambled = batch._replace(transitions=batch.transitions._replace(
        obs=jnp.where(mask, tr.obs, garbage),
        reward=jnp.where(valid, tr.reward, 100.0),
        action=jnp.where(valid, tr.action, 1 - tr.action),
    ))
    loss = functools.partial(reinforce.loss, config, nets, state.policy_params, state.value_params)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5), loss(batch), loss(scrambled))


def test_walk_runs_are_one_truncated_episode_each():
    config = reinforce.Config(num_envs=8)
    _, _, batch = collect(config, walk.Walk(), jax.random.key(0))
    assert batch.valid.shape == (8, 20) and np.all(batch.valid)
    np.testing.assert_array_equal(batch.transitions.truncated[:, -1], True)
    assert not np.any(batch.transitions.terminated)


@pytest.mark.parametrize("baseline", [False, True])
def test_gradient_is_minus_the_mean_score_function_estimate(baseline):
    """Tabular case: no hidden layer on the walk's one-hot cells, θ = kernel + bias.

    Then ∂L/∂kernel = −(1/N) Σ_i reinforce_estimate(θ, episode_i, b = v(S^i_t)),
    with the γ^t weighting of the exact gradient.
    """
    config = reinforce.Config(num_envs=6, gamma=GAMMA, hidden_sizes=(), baseline=baseline,
                              weight_by_discount=True)
    env = walk.Walk()
    nets, state, batch = collect(config, env, jax.random.key(3), params_key=jax.random.key(4))
    # Move away from the near-uniform start so the scores are not all alike.
    policy_params = jax.tree.map(lambda x: x + jax.random.normal(jax.random.key(5), x.shape),
                                 state.policy_params)
    grads = jax.grad(lambda p: reinforce.loss(config, nets, p, state.value_params, batch)[0])(policy_params)
    dense = policy_params["params"]["MLP_0"]["Dense_0"]
    theta = dense["kernel"] + dense["bias"]
    tr = batch.transitions
    trajectories = score_function.Trajectory(tr.obs, tr.action, tr.reward, jnp.full(tr.reward.shape, GAMMA))
    baselines = nets.value.apply(state.value_params, tr.obs) if baseline else jnp.zeros(tr.reward.shape)
    estimates = jax.vmap(score_function.reinforce_estimate, (None, 0, 0))(theta, trajectories, baselines)
    np.testing.assert_allclose(grads["params"]["MLP_0"]["Dense_0"]["kernel"], -estimates.mean(0),
                               rtol=1e-4, atol=1e-5)


def test_jit_equals_eager_for_one_update():
    config = reinforce.Config(num_envs=4)
    env = cartpole.CartPole()
    env_params = env.default_params()
    nets = reinforce.make_networks(config, env, env_params)
    state = reinforce.init(config, env, env_params, nets, jax.random.key(0))
    update = functools.partial(reinforce.update, config, env, env_params, nets)
    eager = update(state)
    jitted = jax.jit(update)(state)
    np.testing.assert_array_equal(jax.random.key_data(eager[0].key), jax.random.key_data(jitted[0].key))
    eager, jitted = [(s._replace(key=None), m) for s, m in (eager, jitted)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), eager, jitted)


def test_train_runs_under_jit_and_vmap_over_seeds_and_a_float_field():
    """train runs whole under jit(vmap); a float field of the config can be vmapped as a sweep."""
    config = reinforce.Config(num_envs=4, num_updates=3)
    env = walk.Walk()
    env_params = env.default_params()

    def train(learning_rate, key):
        config_lr = dataclasses.replace(config, policy_learning_rate=learning_rate)
        return reinforce.make_train(config_lr, env, env_params)(key)

    keys = jax.random.split(jax.random.key(0), 2)
    state, metrics = jax.jit(jax.vmap(train))(jnp.array([0.0, 0.01]), keys)
    assert metrics.episode_return.shape == (2, 3)
    np.testing.assert_array_equal(metrics.episode_length, 20)  # the walk only ends at its time limit
    assert np.all(np.isfinite(metrics.episode_return)) and np.all(metrics.value_loss > 0)
    nets = reinforce.make_networks(config, env, env_params)
    start = jax.vmap(lambda k: reinforce.init(config, env, env_params, nets, k))(keys)
    moved = [np.abs(a - b).reshape(2, -1).max(axis=1)
             for a, b in zip(jax.tree.leaves(state.policy_params), jax.tree.leaves(start.policy_params))]
    moved = np.max(moved, axis=0)
    assert moved[0] == 0 and moved[1] > 0  # a step size of 0 leaves θ where it started
    assert np.all(metrics.policy_step_norm[0] == 0) and np.all(metrics.policy_step_norm[1] > 0)


def test_policy_step_norm_is_the_length_of_the_parameter_change():
    config = reinforce.Config(num_envs=4)
    env = cartpole.CartPole()
    env_params = env.default_params()
    nets = reinforce.make_networks(config, env, env_params)
    state = reinforce.init(config, env, env_params, nets, jax.random.key(0))
    new_state, metrics = reinforce.update(config, env, env_params, nets, state)
    change = [np.asarray(a, np.float64) - np.asarray(b, np.float64)
              for a, b in zip(jax.tree.leaves(new_state.policy_params), jax.tree.leaves(state.policy_params))]
    expected = np.sqrt(sum(np.sum(c**2) for c in change))
    np.testing.assert_allclose(metrics.policy_step_norm, expected, rtol=1e-4)
    assert expected > 0


def test_policy_fn_greedy_and_sampled():
    config = reinforce.Config()
    env = cartpole.CartPole()
    nets = reinforce.make_networks(config, env, env.default_params())
    state = reinforce.init(config, env, env.default_params(), nets, jax.random.key(0))
    params = constant_params(state.policy_params, jnp.log(jnp.array([0.2, 0.8])))
    obs = jnp.zeros(4)
    assert reinforce.policy_fn(nets, params, greedy=True)(jax.random.key(0), obs) == 1
    sample = jax.vmap(reinforce.policy_fn(nets, params), (0, None))
    actions = sample(jax.random.split(jax.random.key(1), 4000), obs)
    assert abs(actions.mean() - 0.8) < 0.03
    np.testing.assert_allclose(reinforce.action_probabilities(nets, params, obs), [0.2, 0.8], rtol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        reinforce.Config(num_envs=0)
    with pytest.raises(ValueError, match="hidden_sizes"):
        reinforce.Config(hidden_sizes=[32])
    with pytest.raises(ValueError, match="bootstrap_truncation"):
        reinforce.Config(baseline=False, bootstrap_truncation=True)
    with pytest.raises(ValueError, match="gamma"):
        reinforce.Config(gamma=1.5)

    class Endless(walk.Walk):
        max_episode_steps = None

    with pytest.raises(ValueError, match="max_episode_steps"):
        reinforce.make_train(reinforce.Config(), Endless(), Endless().default_params())


CARTPOLE = reinforce.Config()
"""The defaults: with a baseline, 8 seeds reach a median return ≥ 475 in 50-80 of 150 updates."""


@pytest.mark.slow
def test_reinforce_with_baseline_solves_cartpole():
    env = cartpole.CartPole()
    train = jax.jit(jax.vmap(reinforce.make_train(CARTPOLE, env, env.default_params())))
    _, metrics = train(jax.random.split(jax.random.key(0), 8))
    final = np.asarray(metrics.episode_return[:, -5:]).mean(axis=1)  # 5 · 8 episodes per seed
    assert np.median(final) >= 400, final
    assert np.median(np.asarray(metrics.episode_return[:, :5])) < 100  # it did learn


@pytest.mark.slow
def test_walk_policy_moves_towards_the_centre():
    config = reinforce.Config()  # the defaults: all of 64 seeds tried pass, by a margin of 0.14 or more
    env = walk.Walk()
    env_params = env.default_params()
    train = jax.jit(jax.vmap(reinforce.make_train(config, env, env_params)))
    state, _ = train(jax.random.split(jax.random.key(0), 8))
    nets = reinforce.make_networks(config, env, env_params)
    cells = jnp.arange(env.num_states)
    right = jax.vmap(lambda p: reinforce.action_probabilities(nets, p, cells)[:, walk.RIGHT])(state.policy_params)
    centre = env_params.centre
    assert np.all(right[:, :centre] > 0.5), right
    assert np.all(right[:, centre + 1:] < 0.5), right
