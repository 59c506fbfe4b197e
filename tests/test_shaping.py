"""Tests for rlbook_lib.shaping: the potential-based shaping theorem checked with dp (same optimal
policy, v' = v − Φ for every policy, q'* = q* − Φ), a progress bonus that changes the optimal policy
into a reward-farming loop, hand arithmetic, and the exploration bonus on the sparse chain."""

import dataclasses

import numpy as np
import pytest

from rlbook_lib import dp, shaping  # sets the XLA flags  # isort: skip
from rlbook_lib import mdp as mdp_lib  # noqa: E402
from rlbook_lib.envs import gridworld  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

WORLD = gridworld.Gridworld()


def test_potential_reward_by_hand():
    # Two states, the second terminal; γ = 0.9; Φ = (2, 5). From s = 0:
    # to s' = 0: 0.9 * 2 - 2; to the terminal s' = 1: 0.9 * 0 * 5 - 2 (Φ counts as 0 after the end).
    mdp = mdp_lib.make_mdp(np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]]), np.zeros((2, 2)),
                           0.9, np.array([1.0, 0.0]), np.array([False, True]))
    F = shaping.potential_reward(mdp, jnp.array([2.0, 5.0]))
    np.testing.assert_allclose(F[0], [0.9 * 2 - 2, 0.9 * 0 * 5 - 2], rtol=1e-6)
    shaped = shaping.potential_based(mdp, jnp.array([2.0, 5.0]))
    np.testing.assert_allclose(shaped.R[0], [0.9 * 2 - 2, -2.0], rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_potential_shaping_keeps_the_optimal_policy(gamma):
    mdp = WORLD.to_mdp(gamma)
    phi = jnp.asarray(np.random.default_rng(0).normal(size=WORLD.num_states) * 3, jnp.float32)
    base, shaped = dp.value_iteration(mdp, tol=1e-7), dp.value_iteration(shaping.potential_based(mdp, phi), tol=1e-7)
    live = ~np.asarray(mdp.terminal)
    np.testing.assert_array_equal(np.argmax(base.policy, 1)[live], np.argmax(shaped.policy, 1)[live])
    np.testing.assert_allclose(shaped.q, base.q - phi[:, None], atol=1e-4)  # q'* = q* − Φ


def test_potential_shaping_shifts_every_policys_value_by_phi():
    mdp = mdp_lib.random_mdp(jax.random.key(3), 6, 3, 0.8)
    phi = jnp.arange(6.0)
    for pi in (mdp_lib.uniform_policy(mdp), mdp_lib.deterministic_policy(jnp.array([0, 1, 2, 0, 1, 2]), 3)):
        v = dp.policy_evaluation_exact(mdp, pi)
        v_shaped = dp.policy_evaluation_exact(shaping.potential_based(mdp, phi), pi)
        np.testing.assert_allclose(v_shaped, v - phi, atol=1e-4)


def test_progress_bonus_makes_a_reward_farming_loop():
    mdp = WORLD.to_mdp(0.99)
    phi = -jnp.asarray(shaping.grid_distances(WORLD), jnp.float32)
    base = dp.value_iteration(mdp)
    farmed = dp.value_iteration(shaping.add_reward(mdp, shaping.progress_bonus(phi, 0.2)))
    live = ~np.asarray(mdp.terminal)
    assert np.any(np.argmax(base.policy, 1)[live] != np.argmax(farmed.policy, 1)[live])
    # Judged by the task's own reward, the farming policy never reaches the goal: it pays the
    # step cost forever, v = −0.04 / (1 − 0.99), while the optimal policy does far better.
    start = int(np.argmax(mdp.initial))
    v_farmed = dp.policy_evaluation_exact(mdp, farmed.policy)[start]
    assert v_farmed == pytest.approx(-0.04 / (1 - 0.99), rel=1e-3)
    assert base.v[start] > 0


def test_grid_distances():
    d = shaping.grid_distances(WORLD)
    assert d[WORLD.state(2, 5)] == 0 and d[WORLD.state(2, 0)] == 5 and d[WORLD.state(0, 0)] == 7


def test_exploration_bonus_finds_the_sparse_goal():
    chain = shaping.sparse_chain(10, 0.99)
    config = shaping.ExplorationConfig(num_steps=2000, horizon=20, bonus_scale=0.01)
    keys = jax.random.split(jax.random.key(0), 8)

    @jax.jit
    def goals(keys):
        runs = [jax.vmap(lambda k: shaping.q_learning(c, chain, k).terminated.sum())(keys)
                for c in (dataclasses.replace(config, bonus_scale=0.0), config)]
        return runs

    plain, bonus = (np.asarray(g) for g in goals(keys))
    assert np.median(bonus) > 10 * max(np.median(plain), 1)


def test_bad_inputs_raise():
    mdp = WORLD.to_mdp(0.9)
    with pytest.raises(ValueError, match="phi must have shape"):
        shaping.potential_reward(mdp, jnp.zeros(3))
    with pytest.raises(ValueError, match="extra must have shape"):
        shaping.add_reward(mdp, jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="bonus_scale"):
        shaping.ExplorationConfig(bonus_scale=-1.0)
