"""Tests for rlbook_lib.mc: hand arithmetic on one episode, JAX transformations,
and convergence to the linear-solve values (ε-greedy: tests/test_action_selection.py)."""

import dataclasses

import numpy as np
import pytest

from rlbook_lib import dp, mc, mdp, returns, tabular  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import cartpole, frozen_lake, random_walk  # noqa: E402

GAMMA = 0.9


def episode(states, rewards, actions=None, terminated=True, padding=2):
    """An Episode from lists, with ``padding`` junk steps after its end."""
    T = len(states)
    discounts = [GAMMA] * T
    if terminated:
        discounts[-1] = 0.0
    actions = [0] * T if actions is None else actions
    junk = [3] * padding
    return mc.Episode(
        observations=jnp.array(states + junk, jnp.int32),
        actions=jnp.array(actions + junk, jnp.int32),
        rewards=jnp.array(rewards + [7.0] * padding, jnp.float32),
        discounts=jnp.array(discounts + [0.5] * padding, jnp.float32),
        mask=jnp.array([True] * T + [False] * padding),
    )


# Visits state 1 twice (t = 0 and t = 2); G_t by hand with γ = 0.9.
STATES, REWARDS = [1, 2, 1, 0], [1.0, 0.0, 2.0, -1.0]
G3 = -1.0
G2 = 2.0 + GAMMA * G3
G1 = 0.0 + GAMMA * G2
G0 = 1.0 + GAMMA * G1


def test_returns_are_the_discounted_returns():
    ep = episode(STATES, REWARDS)
    g = returns.discounted_returns(jnp.where(ep.mask, ep.rewards, 0.0), ep.discounts)
    np.testing.assert_allclose(g[:4], [G0, G1, G2, G3], rtol=1e-6)


def test_first_visits_by_hand():
    ep = episode(STATES, REWARDS)
    np.testing.assert_array_equal(mc.first_visits(ep.observations, ep.mask, 4),
                                  [True, True, False, True, False, False])


def test_first_visit_sample_average_by_hand():
    v, counts = mc.prediction_update(jnp.zeros(4), jnp.zeros(4, jnp.int32), episode(STATES, REWARDS))
    np.testing.assert_allclose(v, [G3, G0, G1, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(counts, [1, 1, 1, 0])


def test_every_visit_sample_average_by_hand():
    v, counts = mc.prediction_update(jnp.zeros(4), jnp.zeros(4, jnp.int32), episode(STATES, REWARDS),
                                     first_visit=False)
    np.testing.assert_allclose(v, [G3, (G0 + G2) / 2, G1, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(counts, [1, 2, 1, 0])


def test_constant_step_size_updates_backwards_by_hand():
    alpha, v0 = 0.1, 0.5
    v, _ = mc.prediction_update(jnp.full(4, v0), jnp.zeros(4, jnp.int32), episode(STATES, REWARDS),
                                alpha=alpha, power=0.0, first_visit=False)
    after_t2 = v0 + alpha * (G2 - v0)  # t = 2 comes first: S&B's loop runs t = T−1, ..., 0
    np.testing.assert_allclose(v[1], after_t2 + alpha * (G0 - after_t2), rtol=1e-6)
    np.testing.assert_allclose(v[2], v0 + alpha * (G1 - v0), rtol=1e-6)


def test_second_episode_continues_the_average():
    first, second = episode(STATES, REWARDS), episode([1, 0], [5.0, 1.0])
    v, counts = mc.prediction_update(jnp.zeros(4), jnp.zeros(4, jnp.int32), first)
    v, counts = mc.prediction_update(v, counts, second)
    np.testing.assert_allclose(v[1], (G0 + (5.0 + GAMMA * 1.0)) / 2, rtol=1e-6)
    np.testing.assert_allclose(v[0], (G3 + 1.0) / 2, rtol=1e-6)


def test_control_update_averages_state_action_pairs():
    # (1, 0) at t = 0 and (1, 1) at t = 2 are different pairs: both are first visits.
    ep = episode(STATES, REWARDS, actions=[0, 1, 1, 0])
    q, counts = mc.control_update(jnp.zeros((4, 2)), jnp.zeros((4, 2), jnp.int32), ep)
    expected = np.zeros((4, 2))
    expected[1, 0], expected[2, 1], expected[1, 1], expected[0, 0] = G0, G1, G2, G3
    np.testing.assert_allclose(q, expected, rtol=1e-6)
    assert int(counts.sum()) == 4


def test_jit_equals_eager():
    ep = episode(STATES, REWARDS)
    update = lambda v, c, e: mc.prediction_update(v, c, e, alpha=0.3, power=0.5)  # noqa: E731
    eager = update(jnp.ones(4), jnp.ones(4, jnp.int32), ep)
    jitted = jax.jit(update)(jnp.ones(4), jnp.ones(4, jnp.int32), ep)
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_step_size_schedules():
    n = jnp.array([1, 2, 4])
    np.testing.assert_allclose(tabular.step_size(0.1, 0.0, n), [0.1, 0.1, 0.1])
    np.testing.assert_allclose(tabular.step_size(1.0, 1.0, n), [1 / 1, 1 / 2, 1 / 4])
    np.testing.assert_allclose(tabular.step_size(0.5, 0.5, n), [0.5 / 1, 0.5 / 2**0.5, 0.5 / 4**0.5], rtol=1e-6)


# ------------------------------------------------------------------------ drivers


def walk():
    env = random_walk.RandomWalk()
    params = env.default_params()
    model = env.to_mdp(params, 1.0)
    return env, params, mdp.uniform_policy(model)


def test_collect_episode_on_the_random_walk():
    env, params, pi = walk()
    policy = lambda k, obs: jax.random.categorical(k, jnp.log(pi[obs]))  # noqa: E731
    ep = jax.jit(lambda k: mc.collect_episode(env, params, policy, k, GAMMA, 200))(jax.random.key(3))
    T = int(ep.length)
    assert bool(ep.mask[:T].all()) and not bool(ep.mask[T:].any())
    assert int(ep.observations[0]) == 3  # starts in C
    steps = np.diff(np.append(ep.observations[:T], 0))  # ±1 each step, into an end at T
    assert set(np.abs(steps[:-1]).tolist()) <= {1}
    np.testing.assert_allclose(ep.discounts[:T], [GAMMA] * (T - 1) + [0.0])
    assert float(ep.rewards[:T].sum()) in (0.0, 1.0)


def test_collect_episode_cut_at_max_steps_is_a_truncation():
    env, params, pi = walk()
    stay_left_right = lambda k, obs: jnp.where(obs == 3, 0, 1)  # noqa: E731  C -> B -> C -> B ...
    ep = mc.collect_episode(env, params, stay_left_right, jax.random.key(0), GAMMA, 5)
    assert int(ep.length) == 5
    np.testing.assert_allclose(ep.discounts, [GAMMA] * 5)  # never terminated: still discounted
    np.testing.assert_array_equal(ep.observations, [3, 2, 3, 2, 3])


def test_collect_episode_from_an_exploring_start():
    env, params, _ = walk()
    start = lambda k: (random_walk.RandomWalkState(jnp.int32(5)), jnp.int32(1))  # noqa: E731  E, right
    always_left = lambda k, obs: jnp.int32(0)  # noqa: E731
    ep = mc.collect_episode(env, params, always_left, jax.random.key(0), GAMMA, 10, start)
    # The forced first action leaves E on the right at once: one step, reward 1.
    assert int(ep.length) == 1 and int(ep.observations[0]) == 5 and int(ep.actions[0]) == 1
    assert float(ep.rewards[0]) == 1.0
    start_d = lambda k: (random_walk.RandomWalkState(jnp.int32(4)), jnp.int32(1))  # noqa: E731  D, right
    ep = mc.collect_episode(env, params, always_left, jax.random.key(0), GAMMA, 10, start_d)
    # D, right to E, then the policy's lefts: E, D, C, B, A and off the left end.
    np.testing.assert_array_equal(ep.observations[:int(ep.length)], [4, 5, 4, 3, 2, 1])
    np.testing.assert_array_equal(ep.actions[:int(ep.length)], [1, 0, 0, 0, 0, 0])


def test_updates_per_batch_change_nothing_when_the_policy_ignores_q():
    """With ε = 1 the behaviour does not depend on Q, so playing 10 episodes per
    policy update must give exactly the Q of updating after every episode."""
    env, params, _ = walk()
    one = mc.ControlConfig(epsilon=1.0, step_size=0.2, step_size_power=0.5)
    ten = dataclasses.replace(one, episodes_per_update=10)
    a = mc.run_control(one, env, params, jax.random.key(3), 30)
    b = mc.run_control(ten, env, params, jax.random.key(3), 30)
    np.testing.assert_allclose(a.q, b.q, rtol=1e-6)
    np.testing.assert_array_equal(a.episode_lengths, b.episode_lengths)
    np.testing.assert_array_equal(a.episode_returns, b.episode_returns)


def test_run_prediction_is_reproducible_under_a_fixed_key():
    env, params, pi = walk()
    config = mc.PredictionConfig(step_size=0.1, step_size_power=0.0, initial_value=0.5)
    run = jax.jit(lambda k: mc.run_prediction(config, env, params, pi, k, 20))
    a, b, c = run(jax.random.key(0)), run(jax.random.key(0)), run(jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (21, 7)
    np.testing.assert_allclose(a[0], np.full(7, 0.5))


@pytest.mark.slow
@pytest.mark.parametrize("first_visit", [True, False])
def test_prediction_converges_to_one_sixth_to_five_sixths(first_visit):
    env, params, pi = walk()
    config = mc.PredictionConfig(first_visit=first_visit)  # sample averages
    runs = jax.jit(jax.vmap(lambda k: mc.run_prediction(config, env, params, pi, k, 2000)[-1]))
    v = runs(jax.random.split(jax.random.key(0), 8))
    # ~1000+ returns per state, each in {0, 1}: standard error <= sqrt(0.25 / 1000) = 0.016.
    error = np.abs(np.asarray(v)[:, 1:6] - np.array([1, 2, 3, 4, 5]) / 6).max(axis=1)
    assert np.median(error) < 0.05


@pytest.mark.slow
def test_discounted_prediction_converges_to_the_linear_solve():
    env, params, pi = walk()
    exact = dp.policy_evaluation_exact(env.to_mdp(params, GAMMA), pi)
    config = mc.PredictionConfig(gamma=GAMMA, first_visit=False)
    runs = jax.jit(jax.vmap(lambda k: mc.run_prediction(config, env, params, pi, k, 2000)[-1]))
    v = runs(jax.random.split(jax.random.key(1), 8))
    assert np.median(np.abs(np.asarray(v) - np.asarray(exact))[:, 1:6].max(axis=1)) < 0.05


def test_prediction_vmaps_over_the_step_size():
    env, params, pi = walk()
    config = mc.PredictionConfig(step_size_power=0.0, initial_value=0.5)
    one = lambda a: mc.run_prediction(dataclasses.replace(config, step_size=a),  # noqa: E731
                                      env, params, pi, jax.random.key(0), 10)
    swept = jax.jit(jax.vmap(one))(jnp.array([0.01, 0.04]))
    np.testing.assert_allclose(swept[1], jax.jit(lambda: one(0.04))(), rtol=1e-6)


@pytest.mark.slow
def test_control_finds_the_shortest_path_on_the_frozen_lake():
    env = frozen_lake.FrozenLake("4x4", is_slippery=False)
    params = env.default_params()
    model = env.to_mdp(params, GAMMA)
    config = mc.ControlConfig(gamma=GAMMA, epsilon=0.1, max_episode_steps=100)
    runs = jax.jit(jax.vmap(lambda k: mc.run_control(config, env, params, k, 500)))
    result = runs(jax.random.split(jax.random.key(0), 8))
    assert result.episode_returns.shape == (8, 500)
    start = [float(dp.policy_evaluation_exact(model, dp.greedy_policy(q))[0]) for q in result.q]
    # The shortest path to the goal has 6 steps; only the last one pays 1.
    assert np.median(start) == pytest.approx(GAMMA**5, rel=1e-5)


def test_invalid_arguments_are_rejected():
    env, params, pi = walk()
    with pytest.raises(ValueError, match="gamma"):
        mc.PredictionConfig(gamma=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        mc.ControlConfig(epsilon=-0.1)
    with pytest.raises(ValueError, match="step_size"):
        mc.PredictionConfig(step_size=0.0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        mc.ControlConfig(max_episode_steps=0)
    with pytest.raises(ValueError, match="episodes_per_update"):
        mc.ControlConfig(episodes_per_update=0)
    with pytest.raises(ValueError, match="multiple"):
        mc.run_control(mc.ControlConfig(episodes_per_update=4), env, params, jax.random.key(0), 10)
    with pytest.raises(ValueError, match="pi must have shape"):
        mc.run_prediction(mc.PredictionConfig(), env, params, pi[:, :1], jax.random.key(0), 5)
    with pytest.raises(ValueError, match="distribution"):
        mc.run_prediction(mc.PredictionConfig(), env, params, pi * 2, jax.random.key(0), 5)
    with pytest.raises(ValueError, match="num_episodes"):
        mc.run_prediction(mc.PredictionConfig(), env, params, pi, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="Discrete"):
        pole = cartpole.CartPole()
        mc.run_control(mc.ControlConfig(), pole, pole.default_params(), jax.random.key(0), 5)
