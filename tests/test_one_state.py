"""The one-state MDP of S&B Example 5.5: steps by hand, the model against sampled steps,
v_π by dynamic programming, the gymnasium checker, and the exact episode sampler
against episodes played in the environment."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlbook_lib import dp, importance_sampling  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import one_state  # noqa: E402
from rlbook_lib.envs.gym_adapter import GymnasiumEnv  # noqa: E402
from rlbook_lib.envs.one_state import END, LEFT, RIGHT, S  # noqa: E402

ENV = one_state.OneState()
PARAMS = ENV.default_params()
ALWAYS_LEFT = lambda obs: jnp.array([1.0, 0.0])  # noqa: E731  π, S&B's target policy
UNIFORM = lambda obs: jnp.array([0.5, 0.5])  # noqa: E731  μ, the behaviour policy


def steps(position, action, n, seed=0):
    state = one_state.OneStateState(jnp.int32(position))
    step = jax.vmap(lambda k: ENV.step(k, state, jnp.int32(action), PARAMS))(
        jax.random.split(jax.random.key(seed), n))
    return np.asarray(step.next_state.position), np.asarray(step.reward), np.asarray(step.terminated)


def test_steps_by_hand():
    assert int(ENV.initial(jax.random.key(0), PARAMS).position) == S
    position, reward, terminated = steps(S, RIGHT, 100)
    assert np.all(position == END) and np.all(reward == 0.0) and np.all(terminated)
    position, reward, terminated = steps(END, LEFT, 100)
    assert np.all(position == END) and np.all(reward == 0.0)  # absorbing, pays nothing
    position, reward, terminated = steps(S, LEFT, 20_000)
    np.testing.assert_array_equal(reward, np.where(position == END, 1.0, 0.0))  # +1 exactly when it leaves
    np.testing.assert_array_equal(terminated, position == END)
    # Leaving has probability 0.1: standard error sqrt(0.1 · 0.9 / 20000) = 0.0021.
    assert abs((position == END).mean() - 0.1) <= 4 * np.sqrt(0.1 * 0.9 / 20_000)


def test_model_and_v_pi():
    model = ENV.to_mdp(PARAMS, gamma=1.0)
    np.testing.assert_allclose(model.P[S], [[0.9, 0.1], [0.0, 1.0]])
    np.testing.assert_allclose(model.R, [[0.1 * 1.0, 0.0], [0.0, 0.0]])
    pi = np.array([[1.0, 0.0], [1.0, 0.0]])
    # v_π(s) = 0.1 · 1 + 0.9 v_π(s)  ⇒  v_π(s) = 1.
    np.testing.assert_allclose(dp.policy_evaluation_exact(model, pi), [1.0, 0.0], atol=1e-6)
    mu = np.full((2, 2), 0.5)
    # v_μ(s) = 0.5 (0.1 + 0.9 v_μ(s)) + 0.5 · 0  ⇒  v_μ(s) = 0.05 / 0.55.
    np.testing.assert_allclose(dp.policy_evaluation_exact(model, mu), [0.05 / 0.55, 0.0], atol=1e-6)


def test_gymnasium_checker_accepts_the_adapter():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(GymnasiumEnv(ENV, max_episode_steps=50), skip_render_check=True)


def outcome_frequencies(episodes, max_length=4):
    """Pr(left exit after exactly k steps), k = 1..max_length, and Pr(right)."""
    g, t = np.asarray(episodes.returns), np.asarray(episodes.lengths)
    return np.array([np.mean((g > 0) & (t == k)) for k in range(1, max_length + 1)] + [np.mean(g == 0)])


def test_exact_sampler_matches_the_environment_and_the_formula():
    n = 200_000
    played = jax.jit(jax.vmap(lambda k: importance_sampling.off_policy_episodes(
        ENV, PARAMS, ALWAYS_LEFT, UNIFORM, k, 100, 1000)))(jax.random.split(jax.random.key(1), n // 100))
    played = jax.tree.map(lambda x: x.reshape(-1), played)
    drawn = one_state.sample_off_policy_episodes(jax.random.key(2), PARAMS, n)
    # Left exit after k steps: (0.5 · 0.9)^(k−1) · 0.5 · 0.1; right: the rest.
    exact = np.array([0.45 ** (k - 1) * 0.05 for k in range(1, 5)] + [0.5 / 0.55])
    standard_error = np.sqrt(exact * (1 - exact) / n)
    for episodes in (played, drawn):
        assert np.all(np.abs(outcome_frequencies(episodes) - exact) <= 4 * standard_error)
        g, rho, t = (np.asarray(x) for x in episodes)
        np.testing.assert_allclose(rho, np.where(g > 0, 2.0**t, 0.0), rtol=1e-6)  # ρ = 2^T after all-left
        assert t.min() >= 1


def test_weighted_is_is_exactly_one_and_ordinary_is_is_unbiased_but_wild():
    episodes = one_state.sample_off_policy_episodes(jax.random.key(3), PARAMS, 100_000)
    estimates = importance_sampling.running_estimates(episodes.returns, episodes.ratios)
    weighted = np.asarray(estimates.weighted)
    first = np.argmax(np.asarray(episodes.ratios) > 0)
    assert np.all(weighted[:first] == 0.0) and np.all(weighted[first:] == 1.0)
    # E_μ[ρG] = Σ_k 0.45^(k−1) 0.05 · 2^k = 0.1 Σ_k 0.9^(k−1) = 1, but its variance is infinite:
    # single terms reach 2^T, far beyond any mean.
    assert np.asarray(episodes.ratios * episodes.returns).max() >= 2.0**10


@pytest.mark.parametrize("b", [0.0, 1.5])
def test_bad_arguments(b):
    with pytest.raises(ValueError, match="behaviour_left"):
        one_state.sample_off_policy_episodes(jax.random.key(0), PARAMS, 10, behaviour_left=b)
    with pytest.raises(ValueError, match="num_episodes"):
        one_state.sample_off_policy_episodes(jax.random.key(0), PARAMS, 0)
    with pytest.raises(ValueError, match="loop_probability"):
        ENV.to_mdp(one_state.OneStateParams(loop_probability=1.5), 1.0)
