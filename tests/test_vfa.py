"""Tests for rlbook_lib.vfa and rlbook_lib.vfa_train: updates by hand arithmetic; one-hot
semi-gradient TD against tabular TD(0) step for step; LSTD against the TD fixed point of
the exact model; the bound VE(w_TD) <= VE_min / (1 - gamma); gradient MC's online
accumulation against the episode's sum; learning on the 1000-state walk and on MountainCar."""

import dataclasses
from functools import partial

import numpy as np
import pytest

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts (TRAPS.md #1)  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib import dp, features, mdp, rollout, td, vfa, vfa_train  # noqa: E402
from rlbook_lib.envs import mountain_car, random_walk, random_walk_1000  # noqa: E402

GAMMA, ALPHA = 0.9, 0.1
W = jnp.array([0.5, -1.0, 2.0, 0.25])


# ------------------------------------------------------------------------ hand arithmetic


def test_dense_and_index_features_agree():
    x_dense, x_index = jnp.array([1.0, 0.0, 1.0, 0.0]), jnp.array([0, 2])
    assert float(vfa.linear_value(W, x_dense)) == float(vfa.linear_value(W, x_index)) == 0.5 + 2.0
    np.testing.assert_allclose(vfa.add_gradient(W, x_index, 0.1), vfa.add_gradient(W, x_dense, 0.1))
    np.testing.assert_allclose(vfa.action_values(jnp.stack([W, 2 * W]), x_index), [2.5, 5.0])


def test_semi_gradient_td_update_by_hand():
    x, x_next = jnp.array([1.0, 0.0, 0.0, 1.0]), jnp.array([0.0, 1.0, 1.0, 0.0])
    v, v_next = 0.5 + 0.25, -1.0 + 2.0
    delta = 1.0 + GAMMA * v_next - v
    np.testing.assert_allclose(vfa.semi_gradient_td_update(W, x, 1.0, GAMMA, x_next, ALPHA),
                               W + ALPHA * delta * x, rtol=1e-6)
    terminal = vfa.semi_gradient_td_update(W, x, 1.0, 0.0, x_next, ALPHA)  # discount 0: no bootstrap
    np.testing.assert_allclose(terminal, W + ALPHA * (1.0 - v) * x, rtol=1e-6)
    np.testing.assert_allclose(vfa.gradient_mc_update(W, x, 3.0, ALPHA), W + ALPHA * (3.0 - v) * x)


def test_semi_gradient_sarsa_update_by_hand():
    w = jnp.stack([W, -W, 2 * W])  # [A = 3, d = 4]
    x, x_next = jnp.array([0, 3]), jnp.array([1, 2])  # active tiles
    q, q_next = float(-W[0] - W[3]), float(2 * W[1] + 2 * W[2])  # q(s, a=1), q(s', a'=2)
    new = vfa.semi_gradient_sarsa_update(w, x, 1, -1.0, GAMMA, x_next, 2, ALPHA)
    delta = -1.0 + GAMMA * q_next - q
    np.testing.assert_allclose(new[1], -W + ALPHA * delta * jnp.array([1.0, 0.0, 0.0, 1.0]), rtol=1e-6)
    np.testing.assert_array_equal(new[jnp.array([0, 2])], w[jnp.array([0, 2])])  # other actions do not move


# ---------------------------------------------------------------- one-hot = tabular TD(0)


def test_one_hot_semi_gradient_td_is_tabular_td0_step_for_step():
    env = random_walk.RandomWalk()
    params = env.default_params()
    state = rollout.reset(env, params, jax.random.key(0))
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731
    _, tr = rollout.rollout(env, params, policy, jax.random.key(1), state, 300)
    one_hot = jnp.eye(env.num_states)

    def step(carry, t):
        v, w = carry
        discount = GAMMA * tr.discount[t]
        v = td.td0_update(v, tr.obs[t], tr.reward[t], discount, tr.next_obs[t], ALPHA)
        w = vfa.semi_gradient_td_update(w, one_hot[tr.obs[t]], tr.reward[t], discount,
                                        one_hot[tr.next_obs[t]], ALPHA)
        return (v, w), (v, w)

    start = jnp.full(env.num_states, 0.5)
    _, (vs, ws) = jax.lax.scan(step, (start, start), jnp.arange(300))
    np.testing.assert_allclose(ws, vs, atol=1e-6)
    assert float(jnp.abs(vs[-1] - vs[0]).max()) > 0.1  # something was learned


def test_one_hot_run_prediction_equals_td_run_prediction():
    env = random_walk.RandomWalk()
    params = env.default_params()
    pi = mdp.uniform_policy(env.to_mdp(params, gamma=1.0))
    config = vfa_train.PredictionConfig("semi_gradient_td", gamma=1.0, step_size=ALPHA)
    policy = lambda key, obs: jax.random.categorical(key, jnp.log(pi[obs]))  # noqa: E731
    features_fn = lambda obs: jax.nn.one_hot(obs, env.num_states)  # noqa: E731
    ours = vfa_train.run_prediction(config, env, params, policy, features_fn, env.num_states,
                                    jax.random.key(3), 40)
    tabular = td.run_prediction(td.PredictionConfig(gamma=1.0, step_size=ALPHA), env, params, pi,
                                jax.random.key(3), 40)
    np.testing.assert_allclose(ours.weights, tabular, atol=1e-6)


# --------------------------------------------------------------------- LSTD and the fixed point


def walk_model():
    env = random_walk_1000.RandomWalk1000(num_nonterminal=100, max_jump=10)
    model = env.to_mdp(env.default_params(), gamma=1.0)
    pi = mdp.uniform_policy(model)
    phi = jax.vmap(lambda s: features.state_aggregation(s, 1, 101, 5))(jnp.arange(102))
    return env, model, pi, phi


def test_lstd_on_every_weighted_transition_is_the_td_fixed_point():
    _, model, pi, phi = walk_model()
    nu = vfa.on_policy_distribution(model, pi)
    P = mdp.policy_transitions(model, pi)
    s, s_next = np.nonzero(np.asarray(P) > 0)  # every transition, weighted by nu(s) P_pi(s, s')
    reward = jnp.where(s_next == 0, -1.0, jnp.where(s_next == 101, 1.0, 0.0))
    discount = 1.0 - model.terminal[s_next]
    w_lstd = vfa.lstd(phi[s], reward, discount, phi[s_next], weights=nu[s] * P[s, s_next])
    w_td = vfa.td_fixed_point(model, pi, phi, nu)
    np.testing.assert_allclose(w_lstd, w_td, atol=1e-4)
    A, b = vfa.td_matrices(model, pi, phi, nu)
    np.testing.assert_allclose(A @ w_td, b, atol=1e-6)  # the expected update is zero there
    # ... and expected semi-gradient TD, iterated, converges to it.
    np.testing.assert_allclose(vfa.expected_td_sweeps((A, b), jnp.zeros(5), 1.0, 20_000)[-1], w_td, atol=1e-3)


def test_lstd_from_sampled_episodes_approaches_the_fixed_point():
    env, model, pi, phi = walk_model()
    params = env.default_params()
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731
    state = rollout.reset(env, params, jax.random.key(0))
    # About 5,400 episodes of ±1 outcomes: the weights' sampling error is about 0.02
    # (measured over 8 other seeds: at most 0.033), so 0.08 holds for any random
    # stream; with 50,000 steps it was 0.1 on some streams.
    _, tr = rollout.rollout(env, params, policy, jax.random.key(1), state, 400_000)
    w_lstd = vfa.lstd(phi[tr.obs], tr.reward, tr.discount, phi[tr.next_obs])
    w_td = vfa.td_fixed_point(model, pi, phi, vfa.on_policy_distribution(model, pi))
    np.testing.assert_allclose(w_lstd, w_td, atol=0.08)


def test_on_policy_distribution_matches_sampled_visits():
    env, model, pi, _ = walk_model()
    params = env.default_params()
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731
    state = rollout.reset(env, params, jax.random.key(0))
    _, tr = rollout.rollout(env, params, policy, jax.random.key(2), state, 50_000)
    visits = np.bincount(np.asarray(tr.obs), minlength=102) / 50_000
    nu = np.asarray(vfa.on_policy_distribution(model, pi))
    groups = lambda x: x[1:101].reshape(10, 10).sum(1)  # noqa: E731  (noise per state is large)
    np.testing.assert_allclose(groups(visits), groups(nu), atol=0.01)


def test_lstd_under_jit_vmap_equals_one_at_a_time():
    """Batched linear solves under jit(vmap) (TRAPS.md #1: needs rlbook_lib's XLA flags)."""
    keys = jax.random.split(jax.random.key(0), 8)
    x = jax.vmap(lambda k: jax.random.normal(k, (200, 16)))(keys)
    x_next = jnp.roll(x, -1, axis=1)
    rewards = jax.vmap(lambda k: jax.random.normal(k, (200,)))(keys)
    discounts = jnp.full((8, 200), 0.9)
    batched = jax.jit(jax.vmap(vfa.lstd))(x, rewards, discounts, x_next)
    for i in range(8):
        np.testing.assert_allclose(batched[i], vfa.lstd(x[i], rewards[i], discounts[i], x_next[i]),
                                   rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_td_fixed_point_satisfies_the_error_bound(seed):
    gamma = 0.9
    key_mdp, key_pi, key_phi = jax.random.split(jax.random.key(seed), 3)
    model = mdp.random_mdp(key_mdp, 12, 3, gamma)  # continuing: nothing terminal
    pi = jax.nn.softmax(jax.random.normal(key_pi, (12, 3)), axis=-1)
    phi = jax.random.normal(key_phi, (12, 3))  # 3 features for 12 states
    v = dp.policy_evaluation_exact(model, pi)
    nu = vfa.on_policy_distribution(model, pi)
    np.testing.assert_allclose(nu @ mdp.policy_transitions(model, pi), nu, atol=1e-5)  # stationary
    best = vfa.value_error(phi @ vfa.best_approximation(v, phi, nu), v, nu)
    at_td = vfa.value_error(phi @ vfa.td_fixed_point(model, pi, phi, nu), v, nu)
    assert best <= at_td * (1 + 1e-4)
    assert at_td <= best / (1 - gamma)


# ------------------------------------------------------------------------------ gradient MC


def test_online_gradient_mc_sums_the_episode_updates():
    config = vfa_train.PredictionConfig("gradient_mc", gamma=GAMMA, step_size=ALPHA)
    xs = jax.random.normal(jax.random.key(0), (5, 4))  # x_0 .. x_4 = x(S_T)
    rewards = jnp.array([1.0, -2.0, 0.5, 3.0])
    for terminated in (True, False):  # terminated, or cut by a time limit at S_4
        learner = vfa_train.MonteCarloLearner(W, jnp.zeros(4), jnp.zeros(4))
        for t in range(4):
            learner = vfa_train.gradient_mc_learn(config, learner, xs[t], rewards[t], jnp.bool_(terminated and t == 3),
                                                  jnp.bool_(t == 3), xs[t + 1])
        tail = 0.0 if terminated else float(W @ xs[4])
        G = [sum(GAMMA**(k - t) * float(rewards[k]) for k in range(t, 4)) + GAMMA**(4 - t) * tail
             for t in range(4)]
        expected = W + ALPHA * sum((G[t] - float(W @ xs[t])) * xs[t] for t in range(4))
        np.testing.assert_allclose(learner.w, expected, rtol=1e-5, atol=1e-6)
        assert float(jnp.abs(learner.pending).max()) == float(jnp.abs(learner.trace).max()) == 0.0


def n_step_reference(transitions, phi, n, gamma, alpha, w):
    """S&B's n-step semi-gradient TD box, episode by episode, in NumPy (float64)."""
    w = np.array(w, np.float64)
    obs, rewards, next_obs = (np.asarray(a) for a in (transitions.obs, transitions.reward, transitions.next_obs))
    terminated, ended = np.asarray(transitions.terminated), np.asarray(transitions.episode_ended)
    start = 0
    for end in np.flatnonzero(ended):
        S = list(obs[start:end + 1]) + [next_obs[end]]
        R = [None] + list(rewards[start:end + 1])  # R[i] = R_i
        T = len(S) - 1
        for tau in range(T):  # every update happens at time min(tau + n, T); order is tau's
            m = min(tau + n, T)
            G = sum(gamma ** (i - tau - 1) * R[i] for i in range(tau + 1, m + 1))
            if m < T or not terminated[end]:
                G += gamma ** (m - tau) * phi[S[m]] @ w
            w = w + alpha * (G - phi[S[tau]] @ w) * phi[S[tau]]
        start = end + 1
    return w, start


@pytest.mark.parametrize("n", [1, 3, 8])
def test_n_step_td_matches_the_textbook_box(n):
    env = random_walk.RandomWalk(9)
    params = env.default_params()
    state = rollout.reset(env, params, jax.random.key(0))
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731
    _, tr = rollout.rollout(env, params, policy, jax.random.key(1), state, 400)
    phi = np.asarray(jax.vmap(partial(features.state_aggregation, low=1, high=10, num_groups=3))(
        jnp.arange(env.num_states)))
    config = vfa_train.PredictionConfig("n_step_td", gamma=GAMMA, step_size=ALPHA, n=n)
    w0 = jnp.array([0.3, -0.2, 0.5])
    learner = vfa_train.n_step_init(n, 3, jnp.zeros(3))._replace(w=w0)
    expected, finished = n_step_reference(tr, phi, n, GAMMA, ALPHA, w0)

    def step(learner, t):
        learner = vfa_train.n_step_learn(config, learner, jnp.asarray(phi)[tr.obs[t]], tr.reward[t],
                                         tr.terminated[t], tr.episode_ended[t], jnp.asarray(phi)[tr.next_obs[t]])
        return learner, None

    learner, _ = jax.lax.scan(step, learner, jnp.arange(finished))  # up to the last episode's end
    np.testing.assert_allclose(learner.w, expected, atol=1e-5)
    assert finished > 50 and np.abs(expected - np.asarray(w0)).max() > 0.05


def test_one_step_td_is_n_step_td_with_n_one():
    env = random_walk_1000.RandomWalk1000(num_nonterminal=100, max_jump=10)
    params = env.default_params()
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731
    phi_fn = partial(features.state_aggregation, low=1, high=101, num_groups=5)
    run = lambda config: vfa_train.run_prediction(config, env, params, policy, phi_fn, 5,  # noqa: E731
                                                  jax.random.key(0), 30).weights
    one = run(vfa_train.PredictionConfig("semi_gradient_td", step_size=0.05))
    n_step = run(vfa_train.PredictionConfig("n_step_td", step_size=0.05, n=1))
    np.testing.assert_allclose(n_step, one, atol=1e-6)


@pytest.mark.slow
def test_gradient_mc_finds_the_best_fit_and_td_the_fixed_point():
    """1000-state walk, 10 groups: MC tends to argmin VE, TD to w_TD (S&B §9.4)."""
    env = random_walk_1000.RandomWalk1000()
    params = env.default_params()
    model = env.to_mdp(params, gamma=1.0)
    pi = mdp.uniform_policy(model)
    phi_fn = partial(features.state_aggregation, low=1, high=1001, num_groups=10)
    phi = jax.vmap(phi_fn)(jnp.arange(1002))
    nu = vfa.on_policy_distribution(model, pi)
    w_best = vfa.best_approximation(dp.policy_evaluation_exact(model, pi), phi, nu)
    w_td = vfa.td_fixed_point(model, pi, phi, nu)
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731
    keys = jax.random.split(jax.random.key(0), 4)
    for algorithm, alpha, near, far in [("gradient_mc", 1e-3, w_best, w_td), ("semi_gradient_td", 3e-3, w_td, w_best)]:
        config = vfa_train.PredictionConfig(algorithm, step_size=alpha)
        run = lambda k: vfa_train.run_prediction(config, env, params, policy, phi_fn, 10, k, 4000)  # noqa: E731
        w = np.asarray(jax.jit(jax.vmap(run))(keys).weights[:, 2000:].mean(axis=1))  # late average
        to_near, to_far = np.abs(w - near).max(1), np.abs(w - far).max(1)
        assert np.median(to_near) < 0.1 and np.median(to_near) < 0.5 * np.median(to_far), algorithm


# ------------------------------------------------------------------------------ SARSA


@pytest.mark.slow
def test_semi_gradient_sarsa_with_tile_coding_solves_mountain_car():
    env = mountain_car.MountainCar()
    params = env.default_params()
    coding = features.TileCoding((-1.2, -0.07), (0.6, 0.07), num_tilings=8, tiles_per_dim=8)
    config = vfa_train.SarsaConfig(epsilon=0.0, step_size=0.5 / 8)
    run = lambda k: vfa_train.run_sarsa(config, env, params, partial(features.active_tiles, coding),  # noqa: E731
                                        coding.num_features, k, 200)
    lengths = np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 8)).episode_lengths)
    assert np.median(lengths[:, 0]) == 200  # the first episode is cut by the time limit
    assert np.median(lengths[:, -1]) < 200
    assert np.median(lengths[:, -20:].mean(axis=1)) < 180


# ------------------------------------------------------------------------------ input


def test_bad_input_raises():
    with pytest.raises(ValueError, match="algorithm"):
        vfa_train.PredictionConfig("td_lambda")
    with pytest.raises(ValueError, match="step_size"):
        vfa_train.PredictionConfig(step_size=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        vfa_train.SarsaConfig(epsilon=1.5)
    with pytest.raises(ValueError, match="x and x_next"):
        vfa.lstd(jnp.ones((3, 2)), jnp.ones(3), jnp.ones(3), jnp.ones((3, 3)))
    env = mountain_car.MountainCar()
    with pytest.raises(ValueError, match="num_features"):
        vfa_train.run_sarsa(vfa_train.SarsaConfig(), env, env.default_params(), lambda o: o, 0,
                            jax.random.key(0), 1)
    assert dataclasses.replace(vfa_train.SarsaConfig(), step_size=0.1).step_size == 0.1


# ------------------------------------------------------------- any differentiable v̂


def test_semi_gradient_td_step_with_a_linear_model_is_the_linear_update():
    x, x_next = jnp.array([1.0, 0.0, 0.0, 1.0]), jnp.array([0.0, 1.0, 1.0, 0.0])
    for discount in (GAMMA, 0.0):
        np.testing.assert_allclose(vfa.semi_gradient_td_step(vfa.linear_value, W, x, 1.0, discount, x_next, ALPHA),
                                   vfa.semi_gradient_td_update(W, x, 1.0, discount, x_next, ALPHA), rtol=1e-6)


def test_semi_gradient_td_step_ignores_the_targets_gradient():
    """A pytree model v̂ = a tanh(b s): the update is α δ ∇v̂(S_t) only, by hand."""
    value_fn = lambda w, s: w["a"] * jnp.tanh(w["b"] * s)  # noqa: E731
    w = {"a": jnp.float32(0.5), "b": jnp.float32(2.0)}
    s, s_next = 0.3, -0.7
    delta = 1.0 + GAMMA * 0.5 * np.tanh(2.0 * s_next) - 0.5 * np.tanh(2.0 * s)
    grad_a, grad_b = np.tanh(2.0 * s), 0.5 * s * (1 - np.tanh(2.0 * s) ** 2)
    new = vfa.semi_gradient_td_step(value_fn, w, s, 1.0, GAMMA, s_next, ALPHA)
    np.testing.assert_allclose([new["a"], new["b"]], [0.5 + ALPHA * delta * grad_a, 2.0 + ALPHA * delta * grad_b],
                               rtol=1e-5)
