"""DQN and Double DQN: targets and loss by hand, termination vs truncation, the gradient by a
hand-written backpropagation, target updates, jit, Config checks, and learning CartPole (slow)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import dqn, dqn_loss, rollout
from rlbook_lib.envs import cartpole, walk

GAMMA = 0.9
ENV = cartpole.CartPole()


def test_targets_by_hand():
    r, q_target, q_online = 1.0, jnp.array([2.0, 5.0, 1.0]), jnp.array([0.0, -1.0, 4.0])
    np.testing.assert_allclose(dqn_loss.q_learning_target(r, GAMMA, q_target), 1 + GAMMA * 5)  # max of θ⁻
    # Double: θ picks action 2 (its value 4 is the largest), θ⁻ evaluates it (1).
    np.testing.assert_allclose(dqn_loss.double_dqn_target(r, GAMMA, q_target, q_online), 1 + GAMMA * 1)
    # A terminal s' (γ_{s'} = 0): the reward alone.
    np.testing.assert_allclose(dqn_loss.q_learning_target(r, 0.0, q_target), 1.0)
    np.testing.assert_allclose(dqn_loss.double_dqn_target(r, 0.0, q_target, q_online), 1.0)
    np.testing.assert_allclose(dqn_loss.huber(jnp.array([0.5, -3.0])), [0.5 * 0.5**2, 1 * (3.0 - 0.5 * 1)])


def constant_q(params, values):
    """Zero every weight, then set the last bias: Q(s, ·) = values for every s."""
    params = jax.tree.map(jnp.zeros_like, params)
    last = sorted(params["params"])[-1]
    params["params"][last]["bias"] = jnp.asarray(values, jnp.float32)
    return params


def hand_batch():
    """Three transitions: an ordinary one, one cut by the time limit, one into a terminal state."""
    f, t = False, True
    return rollout.Transition(
        obs=jnp.zeros((3, 4)), action=jnp.array([0, 1, 1]), reward=jnp.array([1.0, 1.0, 1.0]),
        next_obs=jnp.ones((3, 4)), terminated=jnp.array([f, f, t]), truncated=jnp.array([f, t, f]),
        episode_return=jnp.zeros(3), episode_length=jnp.zeros(3, jnp.int32))


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("huber", [False, True])
def test_loss_by_hand_truncation_bootstraps_termination_does_not(double, huber):
    config = dqn.Config(gamma=GAMMA, double=double, huber=huber, hidden_sizes=(3,))
    q_network = dqn.make_network(config, ENV, ENV.default_params())
    params = q_network.init(jax.random.key(0), jnp.zeros(4))
    online = constant_q(params, [3.0, 0.25])  # Q(s, ·; θ): θ's greedy action is 0
    target = constant_q(params, [0.5, 2.0])  # Q(s, ·; θ⁻): its max is 2 (action 1)
    total, info = dqn.loss(config, q_network, online, target, hand_batch())
    bootstrap = 0.5 if double else 2.0  # Double: θ⁻'s value of θ's choice, action 0
    y = [1 + GAMMA * bootstrap, 1 + GAMMA * bootstrap, 1]  # the truncated one still bootstraps
    delta = np.array([y[0] - 3.0, y[1] - 0.25, y[2] - 0.25])
    if huber:
        per = [0.5 * d**2 if abs(d) <= 1 else abs(d) - 0.5 for d in delta]
    else:
        per = [0.5 * d**2 for d in delta]
    np.testing.assert_allclose(total, np.mean(per), rtol=1e-6)
    np.testing.assert_allclose(info.q_mean, (3.0 + 0.25 + 0.25) / 3, rtol=1e-6)


def hand_gradient(p, p_target, batch, double, huber):
    """∂L/∂θ for Q(s) = tanh(s W1 + b1) W2 + b2 by backpropagation written out, y held fixed (float64)."""
    W1, b1, W2, b2 = [np.asarray(p["params"][d][k], np.float64) for d in ("Dense_0", "Dense_1")
                      for k in ("kernel", "bias")]
    T1, c1, T2, c2 = [np.asarray(p_target["params"][d][k], np.float64) for d in ("Dense_0", "Dense_1")
                      for k in ("kernel", "bias")]
    s, s2 = np.asarray(batch.obs, np.float64), np.asarray(batch.next_obs, np.float64)
    a, r = np.asarray(batch.action), np.asarray(batch.reward, np.float64)
    discount = GAMMA * (1 - np.asarray(batch.terminated, np.float64))
    B = len(a)
    h = np.tanh(s @ W1 + b1)  # [B, H], forward pass
    q = h @ W2 + b2  # [B, A]
    q_next_target = np.tanh(s2 @ T1 + c1) @ T2 + c2
    if double:
        picked = np.argmax(np.tanh(s2 @ W1 + b1) @ W2 + b2, axis=1)
        y = r + discount * q_next_target[np.arange(B), picked]
    else:
        y = r + discount * q_next_target.max(axis=1)
    delta = y - q[np.arange(B), a]
    dl_ddelta = np.clip(delta, -1, 1) if huber else delta  # ℓ'(δ)
    g = -dl_ddelta / B  # ∂L/∂Q(s_i, a_i): δ = y − Q and the mean over B
    dq = np.zeros_like(q)
    dq[np.arange(B), a] = g  # only the taken action's output receives gradient
    dW2, db2 = h.T @ dq, dq.sum(0)  # last layer: ∂L/∂W2 = hᵀ ∂L/∂q
    dz = (dq @ W2.T) * (1 - h**2)  # back through W2 and tanh' = 1 − tanh²
    dW1, db1 = s.T @ dz, dz.sum(0)
    return {"params": {"Dense_0": {"kernel": dW1, "bias": db1}, "Dense_1": {"kernel": dW2, "bias": db2}}}, delta


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("huber", [False, True])
@pytest.mark.parametrize("same_params", [False, True])
def test_gradient_equals_hand_backpropagation(double, huber, same_params):
    config = dqn.Config(gamma=GAMMA, double=double, huber=huber, hidden_sizes=(5,))
    q_network = dqn.make_network(config, ENV, ENV.default_params())
    keys = jax.random.split(jax.random.key(1), 8)
    params = q_network.init(keys[0], jnp.zeros(4))
    target = params if same_params else q_network.init(keys[1], jnp.zeros(4))
    B = 16
    batch = rollout.Transition(
        obs=jax.random.normal(keys[2], (B, 4)), action=jax.random.randint(keys[3], (B,), 0, 2),
        reward=3 * jax.random.normal(keys[4], (B,)),  # errors on both sides of the Huber threshold
        next_obs=jax.random.normal(keys[5], (B, 4)), terminated=jax.random.bernoulli(keys[6], 0.3, (B,)),
        truncated=jax.random.bernoulli(keys[7], 0.3, (B,)), episode_return=jnp.zeros(B),
        episode_length=jnp.zeros(B, jnp.int32))
    grads = jax.grad(lambda p: dqn.loss(config, q_network, p, target, batch)[0])(params)
    expected, delta = hand_gradient(params, target, batch, double, huber)
    if huber:
        assert np.any(np.abs(delta) > 1) and np.any(np.abs(delta) < 1)
    jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6), grads, expected)


def test_epsilon_schedule_by_hand():
    config = dqn.Config(epsilon_start=1.0, epsilon_end=0.1, exploration_steps=1000)
    got = [float(dqn.epsilon(config, t)) for t in (0, 250, 1000, 5000)]
    np.testing.assert_allclose(got, [1.0, 1.0 - 0.25 * (1.0 - 0.1), 0.1, 0.1], rtol=1e-6)


def small_state(config, key=jax.random.key(0)):
    q_network = dqn.make_network(config, ENV, ENV.default_params())
    return q_network, dqn.init(config, ENV, ENV.default_params(), q_network, key)


def run_updates(config, n):
    q_network, state = small_state(config)
    step = jax.jit(functools.partial(dqn.update, config, ENV, ENV.default_params(), q_network))
    states = [state]
    for _ in range(n):
        states.append(step(states[-1])[0])
    return states


def leaves(params):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(params)])


def test_learning_starts_and_hard_target_updates():
    config = dqn.Config(num_envs=2, learning_starts=4, target_update_period=3, batch_size=4, buffer_size=50)
    states = run_updates(config, 9)
    env_steps = [int(s.env_steps) for s in states]
    assert env_steps == [2 * k for k in range(10)]
    assert int(states[-1].buffer.size) == 18
    # θ stays put until N·k ≥ learning_starts (the 2nd update), then moves at every update.
    for k in (1,):
        np.testing.assert_array_equal(leaves(states[k].params), leaves(states[0].params))
    for k in range(2, 10):
        assert np.any(leaves(states[k].params) != leaves(states[k - 1].params))
    # θ⁻ copies θ after gradient steps 3 and 6 (updates 4 and 7) and is unchanged otherwise.
    for k in range(1, 10):
        grad_steps = int(states[k].gradient_steps)
        assert grad_steps == max(0, k - 1)
        if grad_steps in (3, 6):
            np.testing.assert_array_equal(leaves(states[k].target_params), leaves(states[k].params))
        else:
            np.testing.assert_array_equal(leaves(states[k].target_params), leaves(states[k - 1].target_params))


def test_polyak_target_update():
    config = dqn.Config(num_envs=2, learning_starts=0, target_update_period=1, tau=0.25, batch_size=4,
                        buffer_size=50)
    s0, s1 = run_updates(config, 1)
    np.testing.assert_allclose(leaves(s1.target_params), 0.25 * leaves(s1.params) + 0.75 * leaves(s0.target_params),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.slow  # the eager call compiles every primitive on its own: about 15 s on 2 cores
def test_jit_equals_eager_for_one_update():
    config = dqn.Config(num_envs=4, learning_starts=0, batch_size=8, buffer_size=64, double=True)
    q_network, state = small_state(config)
    update = functools.partial(dqn.update, config, ENV, ENV.default_params(), q_network)
    jitted_update = jax.jit(update)
    state = jitted_update(state)[0]  # a buffer with more than one update's transitions
    eager, jitted = update(state), jitted_update(state)
    assert np.any(leaves(eager[0].params) != leaves(state.params))
    np.testing.assert_array_equal(jax.random.key_data(eager[0].key), jax.random.key_data(jitted[0].key))
    eager, jitted = [(s._replace(key=None), m) for s, m in (eager, jitted)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), eager, jitted)


def test_train_shapes_under_jit_and_vmap():
    config = dqn.Config(num_envs=2, total_steps=400, evaluation_period=200, learning_starts=100,
                        batch_size=16, buffer_size=100, num_eval_episodes=2, hidden_sizes=(8,))
    train = jax.jit(jax.vmap(dqn.make_train(config, ENV, ENV.default_params())))
    state, metrics = train(jax.random.split(jax.random.key(0), 3))
    assert metrics.td_loss.shape == (3, config.num_updates) == (3, 200)
    np.testing.assert_array_equal(metrics.evaluation.env_steps, [[200, 400]] * 3)
    np.testing.assert_array_equal(metrics.learning, np.broadcast_to(np.arange(1, 201) * 2 >= 100, (3, 200)))
    returns = np.asarray(metrics.evaluation.episode_return)
    assert np.all((returns >= 1) & (returns <= 500))
    np.testing.assert_array_equal(state.env_steps, 400)


def test_policy_fn_greedy_and_epsilon():
    config = dqn.Config(hidden_sizes=(3,))
    q_network, state = small_state(config)
    params = constant_q(state.params, [0.0, 1.0])
    obs = jnp.zeros(4)
    assert dqn.policy_fn(q_network, params)(jax.random.key(0), obs) == 1
    sample = jax.vmap(dqn.policy_fn(q_network, params, 0.5), (0, None))
    actions = sample(jax.random.split(jax.random.key(1), 4000), obs)
    assert abs(actions.mean() - (0.5 + 0.5 / 2)) < 0.03  # greedy half the time, uniform otherwise


def test_policy_fn_acts_in_gymnasium():
    """The greedy policy needs no key, so it drives gymnasium's own CartPole-v1 directly."""
    import gymnasium

    config = dqn.Config(hidden_sizes=(8,))
    q_network, state = small_state(config)
    act = jax.jit(dqn.policy_fn(q_network, state.params))
    env = gymnasium.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        action = int(act(None, obs))
        assert action == int(np.argmax(q_network.apply(state.params, obs)))
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break


def test_invalid_arguments():
    for kwargs, match in [(dict(num_envs=0), "num_envs"), (dict(batch_size=128, buffer_size=64), "buffer_size"),
                          (dict(gamma=1.5), "gamma"), (dict(tau=0.0), "tau"), (dict(epsilon_end=-0.1), "epsilon_end"),
                          (dict(learning_rate=0.0), "learning_rate"), (dict(hidden_sizes=[64]), "hidden_sizes"),
                          (dict(evaluation_period=3000, total_steps=10_000), "evaluation_period"),
                          (dict(learning_starts=-1), "learning_starts")]:
        with pytest.raises(ValueError, match=match):
            dqn.Config(**kwargs)

    class Endless(walk.Walk):
        max_episode_steps = None

    with pytest.raises(ValueError, match="max_episode_steps"):
        dqn.make_train(dqn.Config(), Endless(), Endless().default_params())
    with pytest.raises(ValueError, match="dqn.Config"):
        dqn.make_train(dataclasses.asdict(dqn.Config()), ENV, ENV.default_params())


CARTPOLE = dqn.Config()
"""The defaults: N = 8, one gradient step (B = 64) every 8 environment steps, C = 50, Adam 2e-3,
ε from 1 to 0.05 over 10k steps, a 64-64 tanh network. With keys split from key(0), the median
over 8 seeds of the greedy return first reaches 500 at 40k steps (DQN) and 50k (Double DQN)
and stays there; with key(1), at 55k (DQN) and 50k (Double DQN, which then wobbles between 387 and 500)."""


@pytest.mark.slow
@pytest.mark.parametrize("double", [False, True])
def test_dqn_solves_cartpole_within_100k_steps(double):
    config = dataclasses.replace(CARTPOLE, double=double)
    assert config.total_steps == 100_000
    train = jax.jit(jax.vmap(dqn.make_train(config, ENV, ENV.default_params())))
    _, metrics = train(jax.random.split(jax.random.key(0), 8))
    greedy = np.asarray(metrics.evaluation.episode_return)  # [8 seeds, 20 evaluations]
    median = np.median(greedy, axis=0)
    assert median.max() >= 475, median  # the median greedy return reaches 475 within 100k steps
    assert np.median(greedy[:, -4:].mean(axis=1)) >= 450, greedy  # and stays near it over the last 20k
    assert median[0] < 475  # it did learn


ACROBOT = dqn.Config(num_envs=4, exploration_steps=20_000, learning_rate=1e-3, target_update_period=100,
                     hidden_sizes=(128, 128))
"""Acrobot-v1 with the same code and another config: one gradient step every 4 environment steps, a
wider network, a slower target. With keys split from key(0) the median over 8 seeds of the greedy
return is above −100 (gymnasium's threshold) from 45k steps on, about −85 at the end."""


@pytest.mark.slow
def test_dqn_solves_acrobot_within_100k_steps():
    from rlbook_lib.envs import acrobot

    env = acrobot.Acrobot()
    train = jax.jit(jax.vmap(dqn.make_train(ACROBOT, env, env.default_params())))
    _, metrics = train(jax.random.split(jax.random.key(0), 8))
    greedy = np.asarray(metrics.evaluation.episode_return)  # [8 seeds, 20 evaluations]
    assert np.median(greedy[:, -4:].mean(axis=1)) > -100, greedy
    assert np.median(greedy[:, 0]) < -100  # it did learn


def test_vmapped_sweep_over_double_and_target_period_equals_separate_runs():
    """One compilation for DQN, Double DQN and no target network: ``double`` and ``target_update_period``
    may be arrays in a vmapped sweep, and each agent then learns exactly as in its own run."""
    base = dqn.Config(num_envs=2, total_steps=80, evaluation_period=40, learning_starts=10, batch_size=8,
                      buffer_size=32, num_eval_episodes=1, hidden_sizes=(8,))
    settings = [(False, 3), (True, 3), (False, 1)]
    key = jax.random.key(3)

    def train(double, period, key):
        config = dataclasses.replace(base, double=double, target_update_period=period)
        return dqn.make_train(config, ENV, ENV.default_params())(key)

    doubles, periods = jnp.array([d for d, _ in settings]), jnp.array([p for _, p in settings])
    swept = jax.jit(jax.vmap(train, (0, 0, None)))(doubles, periods, key)
    for i, (double, period) in enumerate(settings):
        alone = jax.jit(dqn.make_train(dataclasses.replace(base, double=double, target_update_period=period),
                                       ENV, ENV.default_params()))(key)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6),
                     (swept[0].params, swept[0].target_params, swept[1].td_loss),
                     (alone[0].params, alone[0].target_params, alone[1].td_loss))
    assert not np.allclose(swept[1].td_loss[0], swept[1].td_loss[2])  # the period matters
    # and so does ``double``: on one minibatch with θ ≠ θ⁻ the swept loss is each static one, and they differ
    q_network = dqn.make_network(base, ENV, ENV.default_params())
    keys = jax.random.split(jax.random.key(4), 4)
    params, target = (q_network.init(k, jnp.zeros(4)) for k in keys[:2])
    batch = rollout.Transition(
        obs=jax.random.normal(keys[2], (32, 4)), action=jnp.arange(32) % 2, reward=jnp.ones(32),
        next_obs=jax.random.normal(keys[3], (32, 4)), terminated=jnp.zeros(32, bool), truncated=jnp.zeros(32, bool),
        episode_return=jnp.zeros(32), episode_length=jnp.zeros(32, jnp.int32))
    loss = lambda double: dqn.loss(dataclasses.replace(base, double=double), q_network, params, target, batch)[0]  # noqa: E731
    swept_loss = jax.vmap(loss)(jnp.array([False, True]))
    np.testing.assert_allclose(swept_loss, [loss(False), loss(True)], rtol=1e-6)
    assert abs(float(loss(False) - loss(True))) > 1e-3
