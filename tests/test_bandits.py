"""Tests for rlbook_lib.bandits: hand arithmetic, plain NumPy loops, sampling
frequencies, JAX transformations, and learning on the 10-armed testbed."""

import numpy as np
import pytest
from scipy import stats

from rlbook_lib import bandits  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

NUM_ARMS = 4
ACTIONS = [0, 2, 0, 1, 2, 2, 0, 3, 1, 0]
REWARDS = [1.0, -0.5, 2.0, 0.3, 0.7, 1.5, -1.0, 0.2, 0.9, 0.4]


def replay(agent, actions=ACTIONS, rewards=REWARDS, num_arms=NUM_ARMS):
    """States before step 1, after step 1, ..., after the last step."""
    update = jax.jit(agent.update)
    states = [agent.init(num_arms)]
    for a, r in zip(actions, rewards):
        states.append(update(states[-1], jnp.int32(a), jnp.float32(r)))
    return states


def keys(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


# ------------------------------------------------------------ incremental estimates


def test_sample_average_equals_mean_of_each_arms_rewards():
    final = replay(bandits.epsilon_greedy(0.1))[-1]
    actions, rewards = np.array(ACTIONS), np.array(REWARDS)
    for arm in range(NUM_ARMS):
        assert final.q[arm] == pytest.approx(np.mean(rewards[actions == arm]), rel=1e-6)
        assert final.counts[arm] == np.sum(actions == arm)
    assert final.t == len(ACTIONS)
    assert final.mean_reward == pytest.approx(np.mean(rewards), rel=1e-6)


def test_constant_step_size_is_recency_weighted_average():
    alpha, q1 = 0.3, 2.0
    final = replay(bandits.epsilon_greedy(0.1, initial_value=q1, step_size=alpha))[-1]
    # Arm 2 received -0.5, 0.7, 1.5 (n = 3), written out:
    expected_arm2 = (
        (1 - alpha) ** 3 * q1
        + alpha * (1 - alpha) ** 2 * -0.5
        + alpha * (1 - alpha) ** 1 * 0.7
        + alpha * (1 - alpha) ** 0 * 1.5
    )
    assert final.q[2] == pytest.approx(expected_arm2, rel=1e-6)
    actions, rewards = np.array(ACTIONS), np.array(REWARDS)
    for arm in range(NUM_ARMS):
        r = rewards[actions == arm]
        n = len(r)
        weights = alpha * (1 - alpha) ** (n - np.arange(1, n + 1))
        expected = (1 - alpha) ** n * q1 + np.sum(weights * r)
        assert final.q[arm] == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------- NumPy loop references


@pytest.mark.parametrize("step_size, q1", [(None, 0.0), (0.1, 5.0)])
def test_value_updates_match_numpy_loop(step_size, q1):
    states = replay(bandits.epsilon_greedy(0.1, initial_value=q1, step_size=step_size))
    q, n = np.full(NUM_ARMS, q1), np.zeros(NUM_ARMS)
    for state, a, r in zip(states[1:], ACTIONS, REWARDS):
        n[a] += 1
        alpha = 1 / n[a] if step_size is None else step_size
        q[a] += alpha * (r - q[a])
        np.testing.assert_allclose(state.q, q, rtol=1e-6)
        np.testing.assert_array_equal(state.counts, n)


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_ucb_values_match_numpy_loop(c):
    states = replay(bandits.ucb(c))
    q, n = np.zeros(NUM_ARMS), np.zeros(NUM_ARMS)
    for t, (state, a, r) in enumerate(zip(states, ACTIONS, REWARDS)):  # t = 0, 1, ...
        expected = np.full(NUM_ARMS, np.inf)  # untried arms are maximising
        tried = n > 0
        expected[tried] = q[tried] + c * np.sqrt(np.log(t + 1) / n[tried])  # S&B's ln t
        np.testing.assert_allclose(bandits.upper_confidence_bounds(state, c), expected, rtol=1e-6)
        n[a] += 1
        q[a] += (r - q[a]) / n[a]


@pytest.mark.parametrize("baseline", [True, False])
def test_gradient_bandit_matches_numpy_loop(baseline):
    alpha = 0.4
    states = replay(bandits.gradient_bandit(alpha, baseline=baseline))
    h, r_bar = np.zeros(NUM_ARMS), 0.0
    for t, (state, a, r) in enumerate(zip(states[1:], ACTIONS, REWARDS), start=1):
        pi = np.exp(h) / np.sum(np.exp(h))
        b = (r if t == 1 else r_bar) if baseline else 0.0  # R̄_1 = R_1
        h = h + alpha * (r - b) * (np.eye(NUM_ARMS)[a] - pi)
        r_bar += (r - r_bar) / t
        np.testing.assert_allclose(state.preferences, h, rtol=1e-5, atol=1e-6)


def test_gradient_bandit_one_step_by_hand():
    # K = 3, H = 0 (so π = 1/3 each), α = 0.1, A = 0, R = 1, no baseline (R̄ = 0).
    agent = bandits.gradient_bandit(0.1, baseline=False)
    h = agent.update(agent.init(3), jnp.int32(0), jnp.float32(1.0)).preferences
    expected = [
        0.1 * (1 - 0) * (1 - 1 / 3),
        0.1 * (1 - 0) * (0 - 1 / 3),
        0.1 * (1 - 0) * (0 - 1 / 3),
    ]
    np.testing.assert_allclose(h, expected, rtol=1e-6)


def test_gradient_baseline_is_average_of_earlier_rewards():
    agent = bandits.gradient_bandit(0.1)
    state = agent.update(agent.init(3), jnp.int32(1), jnp.float32(0.4))
    np.testing.assert_array_equal(state.preferences, [0, 0, 0])  # R̄_1 = R_1: no step
    h = agent.update(state, jnp.int32(0), jnp.float32(1.0)).preferences
    expected = [  # R̄_2 = 0.4, the one earlier reward
        0.1 * (1 - 0.4) * (1 - 1 / 3),
        0.1 * (1 - 0.4) * (0 - 1 / 3),
        0.1 * (1 - 0.4) * (0 - 1 / 3),
    ]
    np.testing.assert_allclose(h, expected, rtol=1e-6)


# ------------------------------------------------------------------ action choice


def test_ucb_tries_every_arm_once_first_in_random_order():
    agent, k = bandits.ucb(2.0), 10
    first_k = jax.jit(jax.vmap(lambda key: bandits.run(agent, key, num_arms=k, num_steps=k)))
    traces = first_k(keys(50))
    for actions in np.asarray(traces.actions):
        np.testing.assert_array_equal(np.sort(actions), np.arange(k))
    assert len(np.unique(traces.actions[:, 0])) > 5  # ties between untried arms are random


def test_random_tie_breaking_is_uniform():
    values = jnp.array([1.0, 3.0, 3.0, 0.0, 3.0])
    picks = np.asarray(jax.vmap(bandits.argmax_random_tie, (0, None))(keys(6000), values))
    counts = np.bincount(picks, minlength=5)
    assert counts[0] == counts[3] == 0
    assert stats.chisquare(counts[[1, 2, 4]]).pvalue > 1e-3
    np.testing.assert_allclose(counts[[1, 2, 4]] / 6000, 1 / 3, atol=0.03)


def test_greedy_first_choice_is_uniform_over_equal_estimates():
    agent = bandits.epsilon_greedy(0.0)
    picks = jax.vmap(agent.select, (0, None))(keys(5000), agent.init(5))
    np.testing.assert_allclose(np.bincount(picks, minlength=5) / 5000, 1 / 5, atol=0.03)


def test_epsilon_greedy_explores_with_probability_epsilon_times_one_minus_1_over_k():
    epsilon, k, n = 0.2, 5, 20000
    agent = bandits.epsilon_greedy(epsilon)
    state = agent.init(k)._replace(q=jnp.array([0.0, 1.0, 0.5, -1.0, 0.2]))  # greedy arm: 1
    picks = np.asarray(jax.vmap(agent.select, (0, None))(keys(n), state))
    assert np.mean(picks != 1) == pytest.approx(epsilon * (1 - 1 / k), abs=0.01)
    for arm in [0, 2, 3, 4]:
        assert np.mean(picks == arm) == pytest.approx(epsilon / k, abs=0.01)


def test_gradient_bandit_samples_from_softmax_of_preferences():
    agent, n = bandits.gradient_bandit(0.1), 20000
    h = jnp.array([0.0, 1.0, -1.0])
    state = agent.init(3)._replace(preferences=h)
    picks = jax.vmap(agent.select, (0, None))(keys(n), state)
    pi = np.exp(h) / np.sum(np.exp(h))
    np.testing.assert_allclose(np.bincount(picks, minlength=3) / n, pi, atol=0.015)


# ------------------------------------------------------------------ testbed and run


def always(arm):
    """An agent that always pulls ``arm``: isolates the testbed from learning."""
    base = bandits.epsilon_greedy(0.0)
    return bandits.Agent(base.init, lambda key, state: jnp.int32(arm), base.update)


def test_testbed_values_are_standard_normal_around_the_mean():
    q_star = np.asarray(jax.vmap(lambda k: bandits.testbed(k, 10, 4.0))(keys(2000)))
    assert q_star.shape == (2000, 10)
    assert q_star.mean() == pytest.approx(4.0, abs=0.03)
    assert q_star.std() == pytest.approx(1.0, abs=0.03)


def test_rewards_and_optimal_flags_of_the_testbed():
    """R_{t+1} ~ N(q*(A_t), 1); exactly one arm is flagged optimal, and it pays the most."""
    k, num_runs = 5, 400

    def pull_each_arm(key):  # [k, T]: the same problem, one fixed arm per row
        def pull(arm):
            return bandits.run(always(arm), key, num_arms=k, num_steps=1000, testbed_mean=4.0)

        return jax.vmap(pull)(jnp.arange(k))

    traces = jax.jit(jax.vmap(pull_each_arm))(keys(num_runs))
    rewards, optimal = np.asarray(traces.rewards), np.asarray(traces.optimal)
    assert rewards.mean() == pytest.approx(4.0, abs=0.1)  # E[q*(a)] = 4
    assert rewards.var(axis=2, ddof=1).mean() == pytest.approx(1.0, abs=0.02)  # Var[R | q*] = 1
    assert np.all(optimal == optimal[:, :, :1])  # a property of the arm, not of the step
    np.testing.assert_array_equal(optimal[:, :, 0].sum(axis=1), 1)
    best_paying = np.argmax(rewards.mean(axis=2), axis=1)
    flagged = np.argmax(optimal[:, :, 0], axis=1)
    assert np.mean(best_paying == flagged) > 0.95  # disagree only when two arms are close


def test_drift_none_and_zero_give_the_same_run():
    agent, key = bandits.epsilon_greedy(0.1), jax.random.key(5)
    stationary = bandits.run(agent, key, num_steps=200)
    zero = bandits.run(agent, key, num_steps=200, drift=0.0)
    for a, b in zip(stationary, zero):
        np.testing.assert_array_equal(a, b)


def test_drift_is_a_random_walk_of_the_arm_values():
    """Pulling one arm: R_{t+1} = q*_0(0) + W_t + Z_{t+1}, W_t a sum of t N(0, sigma^2) steps,
    so Var[R_{t+1}] = 1 (the draw of q*) + t sigma^2 + 1 (the noise)."""
    sigma, num_steps = 0.1, 1000
    traces = jax.jit(jax.vmap(lambda k: bandits.run(always(0), k, num_steps=num_steps, drift=sigma)))(
        keys(4000)
    )
    rewards = np.asarray(traces.rewards)
    for t in [0, 399, 999]:
        assert rewards[:, t].var() == pytest.approx(1 + t * sigma**2 + 1, rel=0.1)
    changes = np.abs(np.diff(np.asarray(traces.optimal), axis=1)).sum(axis=1)
    assert np.mean(changes > 0) > 0.3  # whether arm 0 is optimal changes as the values wander
    stationary = jax.jit(jax.vmap(lambda k: bandits.run(always(0), k, num_steps=num_steps)))(keys(100))
    assert np.all(np.asarray(stationary.optimal) == np.asarray(stationary.optimal)[:, :1])


def test_drift_leaves_the_noise_and_the_agent_alone():
    """Only q* moves: with a tiny drift the rewards differ from the stationary run by
    less than the accumulated walk, and the first action is the same."""
    agent, key = bandits.ucb(2.0), jax.random.key(3)
    stationary = bandits.run(agent, key, num_steps=50)
    drifting = bandits.run(agent, key, num_steps=50, drift=1e-6)
    np.testing.assert_allclose(drifting.rewards, stationary.rewards, atol=1e-4)
    assert drifting.actions[0] == stationary.actions[0]


# ------------------------------------------------------------------ transformations

AGENTS = {
    "epsilon_greedy": bandits.epsilon_greedy(0.1),
    "optimistic": bandits.epsilon_greedy(0.0, initial_value=5.0, step_size=0.1),
    "ucb": bandits.ucb(2.0),
    "gradient": bandits.gradient_bandit(0.1),
    "gradient_no_baseline": bandits.gradient_bandit(0.1, baseline=False),
}


@pytest.mark.parametrize("name", AGENTS)
def test_jit_eager_vmap_and_loop_agree(name):
    agent, ks = AGENTS[name], keys(3, seed=7)
    run = jax.jit(lambda k: bandits.run(agent, k, num_steps=40))
    batched = jax.jit(jax.vmap(lambda k: bandits.run(agent, k, num_steps=40)))(ks)
    with jax.disable_jit():
        eager = bandits.run(agent, ks[0], num_steps=40)
    for i, key in enumerate(ks):
        single = run(key)
        np.testing.assert_array_equal(run(key).actions, single.actions)  # same key, same run
        np.testing.assert_array_equal(batched.actions[i], single.actions)
        np.testing.assert_allclose(batched.rewards[i], single.rewards, rtol=1e-6)
    np.testing.assert_array_equal(eager.actions, batched.actions[0])
    np.testing.assert_allclose(eager.rewards, batched.rewards[0], rtol=1e-6)
    np.testing.assert_array_equal(eager.optimal, batched.optimal[0])
    assert not np.array_equal(batched.actions[0], batched.actions[1])


def test_second_call_does_not_retrace():
    traces = []

    def run(key):
        traces.append(None)
        return bandits.run(bandits.ucb(2.0), key, num_steps=20)

    batched = jax.jit(jax.vmap(run))
    batched(keys(4))
    batched(keys(4, seed=1))
    assert len(traces) == 1


SWEEPS = {  # hyperparameters -> run; two settings of each, swept together
    "epsilon_greedy": (
        lambda eps, q1, a: (bandits.epsilon_greedy(eps, initial_value=q1, step_size=a), 0.0),
        [(0.0, 5.0, 0.1), (0.2, 0.0, 0.5)],
    ),
    "ucb": (lambda c: (bandits.ucb(c), 0.0), [(0.0,), (2.0,)]),
    "gradient": (lambda a, mean: (bandits.gradient_bandit(a), mean), [(0.4, 0.0), (0.1, 4.0)]),
}


@pytest.mark.parametrize("name", SWEEPS)
def test_vmap_over_hyperparameters_equals_separate_runs(name):
    """Hyperparameters enter only arithmetic, so a parameter study is one vmap."""
    make, settings = SWEEPS[name]
    ks = keys(4)

    def study(*params):
        agent, mean = make(*params)
        return jax.vmap(lambda k: bandits.run(agent, k, num_steps=60, testbed_mean=mean))(ks)

    swept = jax.jit(jax.vmap(study))(*(jnp.array(column) for column in zip(*settings)))
    single = jax.jit(lambda: study(*settings[1]))()  # concrete Python floats
    np.testing.assert_array_equal(swept.actions[1], single.actions)
    np.testing.assert_allclose(swept.rewards[1], single.rewards, rtol=1e-6)
    assert not np.array_equal(swept.actions[0], swept.actions[1])


# ------------------------------------------------------------------------- learning


def simulate(make_agent, settings, num_runs=500, testbed_mean=0.0):
    """One [runs, T] trace of ``make_agent(x)`` per setting x, all in one jit(vmap(vmap))."""
    ks = keys(num_runs, seed=2024)

    def runs(x):
        return jax.vmap(lambda k: bandits.run(make_agent(x), k, testbed_mean=testbed_mean))(ks)

    swept = jax.jit(jax.vmap(runs))(jnp.array(settings))
    return [jax.tree.map(lambda leaf: np.asarray(leaf[i]), swept) for i in range(len(settings))]


@pytest.mark.slow
def test_learning_on_the_10_armed_testbed():
    """S&B Figs. 2.2-2.4 at step 1000 (2000 runs there, 500 here; all agents see the same runs)."""
    last = slice(-100, None)
    greedy, eps = simulate(bandits.epsilon_greedy, [0.0, 0.1])
    # Fig. 2.2: ε = 0.1 finds the best arm ≈ 80 % of the time, greedy ≈ 35 %.
    assert eps.optimal[:, last].mean() > 0.7
    assert greedy.optimal[:, last].mean() < 0.5
    # Fig. 2.3: optimism alone makes a greedy agent (α = 0.1) explore: ≈ 85 % with Q_1 = 5,
    # ≈ 55 % with Q_1 = 0.
    optimistic, realistic = simulate(
        lambda q1: bandits.epsilon_greedy(0.0, initial_value=q1, step_size=0.1), [5.0, 0.0]
    )
    assert optimistic.optimal[:, last].mean() > 0.75
    assert optimistic.optimal[:, last].mean() > realistic.optimal[:, last].mean() + 0.15
    # Fig. 2.4: UCB with c = 2 earns more than ε = 0.1 over the last 500 steps (≈ 1.47 vs 1.35).
    (ucb,) = simulate(bandits.ucb, [2.0])
    assert ucb.rewards[:, 500:].mean() > eps.rewards[:, 500:].mean() + 0.05


@pytest.mark.slow
def test_gradient_bandit_baseline_matters_far_from_zero():
    """S&B Fig. 2.5 (testbed mean 4, α = 0.1): ≈ 84 % optimal with baseline, ≈ 49 % without."""
    last = slice(-100, None)
    (with_baseline,) = simulate(bandits.gradient_bandit, [0.1], testbed_mean=4.0)
    (without,) = simulate(
        lambda a: bandits.gradient_bandit(a, baseline=False), [0.1], testbed_mean=4.0
    )
    assert with_baseline.optimal[:, last].mean() > 0.7
    assert with_baseline.optimal[:, last].mean() > without.optimal[:, last].mean() + 0.2


# ----------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: bandits.epsilon_greedy(-0.1), "epsilon"),
        (lambda: bandits.epsilon_greedy(1.1), "epsilon"),
        (lambda: bandits.epsilon_greedy(0.1, step_size=0.0), "step_size"),
        (lambda: bandits.epsilon_greedy(0.1, step_size=-0.1), "step_size"),
        (lambda: bandits.epsilon_greedy(0.1, step_size=1.5), "step_size"),
        (lambda: bandits.ucb(-1.0), "c"),
        (lambda: bandits.ucb(2.0, step_size=0.0), "step_size"),
        (lambda: bandits.gradient_bandit(0.0), "step_size"),
        (lambda: bandits.gradient_bandit(-0.1), "step_size"),
        (lambda: bandits.testbed(jax.random.key(0), num_arms=1), "num_arms"),
        (lambda: bandits.run(bandits.ucb(2.0), jax.random.key(0), num_arms=1), "num_arms"),
        (lambda: bandits.run(bandits.ucb(2.0), jax.random.key(0), num_arms=2.5), "num_arms"),
        (lambda: bandits.run(bandits.ucb(2.0), jax.random.key(0), num_steps=0), "num_steps"),
        (lambda: bandits.run(bandits.ucb(2.0), jax.random.key(0), drift=-0.01), "drift"),
        (lambda: bandits.epsilon_greedy(0.1).init(1), "num_arms"),
    ],
)
def test_invalid_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_edge_values_are_accepted():
    bandits.epsilon_greedy(0.0)
    bandits.epsilon_greedy(1.0, step_size=1.0)
    bandits.ucb(0.0)
    bandits.gradient_bandit(4.0)
