"""The 1000-state random walk of S&B Example 9.1: jumps by hand, the model against
sampled steps, true values from dp (antisymmetric, near-linear), and sampled returns
against them within standard errors."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlbook_lib import dp, mdp, rollout  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import random_walk_1000  # noqa: E402
from rlbook_lib.envs.gym_adapter import GymnasiumEnv  # noqa: E402
from rlbook_lib.envs.random_walk_1000 import LEFT, RIGHT  # noqa: E402

ENV = random_walk_1000.RandomWalk1000()
PARAMS = ENV.default_params()


def next_positions(position, action, n=4000, seed=0):
    state = random_walk_1000.RandomWalk1000State(jnp.int32(position))
    step = jax.vmap(lambda k: ENV.step(k, state, jnp.int32(action), PARAMS))
    result = step(jax.random.split(jax.random.key(seed), n))
    return np.asarray(result.next_state.position), np.asarray(result.reward), np.asarray(result.terminated)


def test_jumps_are_uniform_on_one_to_one_hundred():
    positions, rewards, terminated = next_positions(500, RIGHT)
    jumps = positions - 500
    assert jumps.min() == 1 and jumps.max() == 100
    counts = np.bincount(jumps, minlength=101)[1:]
    expected = len(jumps) / 100
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))  # 5 standard errors
    assert not terminated.any() and np.all(rewards == 0)


def test_ends_pay_and_terminate():
    positions, rewards, terminated = next_positions(30, LEFT)
    np.testing.assert_array_equal(terminated, positions == 0)
    np.testing.assert_array_equal(rewards, np.where(positions == 0, -1.0, 0.0))
    assert abs(terminated.mean() - 71 / 100) < 5 * np.sqrt(0.71 * 0.29 / len(terminated))
    positions, rewards, _ = next_positions(1000, RIGHT)
    assert np.all(positions == 1001) and np.all(rewards == 1.0)
    positions, rewards, terminated = next_positions(0, RIGHT)  # the ends are absorbing
    assert np.all(positions == 0) and np.all(rewards == 0) and terminated.all()


def test_model_matches_the_sampled_steps():
    model = ENV.to_mdp(PARAMS, gamma=1.0)
    for position, action in [(30, LEFT), (500, RIGHT), (950, RIGHT), (60, RIGHT)]:
        positions, rewards, _ = next_positions(position, action, n=2000, seed=position)
        P = np.asarray(model.P[position, action])
        frequencies = np.bincount(positions, minlength=ENV.num_states) / len(positions)
        assert np.all(np.abs(frequencies - P) < 5 * np.sqrt(P * (1 - P) / len(positions)) + 1e-9)
        assert abs(rewards.mean() - float(model.R[position, action])) < 0.05
    assert model.P[1, LEFT, 0] == pytest.approx(1.0)  # every left jump from state 1 ends
    np.testing.assert_allclose(model.P[500, RIGHT, 501:601], 0.01, rtol=1e-6)
    np.testing.assert_array_equal(np.flatnonzero(model.terminal), [0, 1001])
    assert int(np.argmax(model.initial)) == 500


def test_true_values_are_antisymmetric_and_nearly_linear():
    model = ENV.to_mdp(PARAMS, gamma=1.0)
    v = np.asarray(dp.policy_evaluation_exact(model, mdp.uniform_policy(model)))
    inner = np.arange(1, 1001)
    np.testing.assert_allclose(v[inner], -v[1001 - inner], atol=1e-4)  # mirror symmetry
    assert v[0] == v[1001] == 0.0
    assert np.all(np.diff(v[inner]) > 0)  # increasing from left to right
    assert -0.95 < v[1] < -0.85  # S&B Fig. 9.1: about −0.9 at the left end
    slope = np.polyfit(inner[200:800], v[inner[200:800]], 1)[0]
    np.testing.assert_allclose(v[inner[200:800]], slope * (inner[200:800] - 500.5), atol=0.02)


def test_sampled_returns_agree_with_dp():
    model = ENV.to_mdp(PARAMS, gamma=1.0)
    v = np.asarray(dp.policy_evaluation_exact(model, mdp.uniform_policy(model)))
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731
    state = rollout.reset(ENV, PARAMS, jax.random.key(0))
    _, tr = jax.jit(lambda k: rollout.rollout(ENV, PARAMS, policy, k, state, 200_000))(jax.random.key(1))
    ended = np.asarray(tr.episode_ended)
    returns = np.asarray(tr.episode_return)[ended]
    assert returns.size > 1000
    assert set(np.unique(returns).tolist()) == {-1.0, 1.0}
    standard_error = returns.std() / np.sqrt(returns.size)
    assert abs(returns.mean() - v[500]) < 4 * standard_error
    # Every non-terminal state's value, from the first step out of 500 on: E[v(S_1)] = v(500).
    first = np.asarray(tr.next_obs)[np.concatenate([[True], ended[:-1]])]
    assert abs(v[first].mean() - v[500]) < 4 * v[first].std() / np.sqrt(first.size)


def test_gymnasium_adapter_passes_check_env():
    check_env(GymnasiumEnv(ENV, max_episode_steps=1000), skip_render_check=True)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="max_jump"):
        random_walk_1000.RandomWalk1000(max_jump=0)
    with pytest.raises(ValueError, match="num_nonterminal"):
        random_walk_1000.RandomWalk1000(num_nonterminal=2.5)
