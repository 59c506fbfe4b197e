"""Tests for rlbook_lib.constrained: the dual frontier and the primal-dual policy gradient against
the constrained MDP's linear program over occupancy measures (scipy), the Lagrangian MDP and the
arrival cost by hand, and bad input (a negative cost limit)."""

import numpy as np
import pytest
from scipy.optimize import linprog

from rlbook_lib import constrained  # sets the XLA flags  # isort: skip
from rlbook_lib import mdp as mdp_lib  # noqa: E402
from rlbook_lib.envs import gridworld  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

WORLD = gridworld.Gridworld(pit_reward=0.0)
MDP = WORLD.to_mdp(0.99)
COST = constrained.arrival_cost(MDP, jnp.asarray(WORLD.cell_types() == "X", jnp.float32))


def lp_optimum(mdp, cost, limit):
    """max Σ d r s.t. Σ_a d(s', a) − Σ_{s,a} γ_s' P(s'|s,a) d(s, a) = p_0(s'), Σ d c ≤ limit, d ≥ 0."""
    P, R = np.asarray(mdp.P, np.float64), np.asarray(mdp.R, np.float64)
    S, A = R.shape
    cont = np.asarray(mdp_lib.continuation(mdp), np.float64)
    flow = np.repeat(np.eye(S), A, axis=1) - (P.reshape(S * A, S) * cont[None, :]).T
    result = linprog(-R.reshape(-1), A_ub=np.asarray(cost, np.float64).reshape(1, -1), b_ub=[limit],
                     A_eq=flow, b_eq=np.asarray(mdp.initial, np.float64), bounds=(0, None), method="highs")
    assert result.status == 0
    return -result.fun


def test_arrival_cost_and_lagrangian_by_hand():
    start = WORLD.state(2, 0)
    # From S, "right" goes right w.p. 0.8 and slips up or down w.p. 0.1 each: down is (3, 0), not a pit.
    assert COST[start, gridworld.RIGHT] == pytest.approx(0.0)
    above_pit = WORLD.state(2, 2)
    assert COST[above_pit, gridworld.DOWN] == pytest.approx(0.8)  # into the pit at (3, 2)
    lag = constrained.lagrangian_mdp(MDP, COST, 2.0)
    assert lag.R[above_pit, gridworld.DOWN] == pytest.approx(MDP.R[above_pit, gridworld.DOWN] - 2.0 * 0.8)


def test_dual_frontier_matches_the_linear_program():
    limits = jnp.array([0.02, 0.08, 0.3])
    frontier = constrained.dual_frontier(MDP, COST, limits, jnp.linspace(0.0, 10.0, 1001))
    for limit, value in zip(np.asarray(limits), np.asarray(frontier.reward_return)):
        assert value == pytest.approx(lp_optimum(MDP, COST, float(limit)), abs=2e-3)


@pytest.mark.slow
def test_primal_dual_natural_gradient_reaches_the_constrained_optimum():
    config = constrained.DualAscentConfig(num_steps=1500, step_size=1.0, dual_step_size=2.0)
    limits = jnp.array([0.05, 0.1])
    trace = jax.jit(jax.vmap(lambda limit: constrained.dual_ascent(config, MDP, COST, limit)))(limits)
    late = slice(config.num_steps // 2, None)
    for i, limit in enumerate(np.asarray(limits)):
        assert float(trace.reward_return[i, late].mean()) == pytest.approx(lp_optimum(MDP, COST, float(limit)),
                                                                           abs=5e-3)
        assert float(trace.cost_return[i, late].mean()) == pytest.approx(limit, abs=5e-3)
        assert float(trace.multiplier[i, late].mean()) > 0  # the constraint is active


def test_returns_of_a_policy_match_the_definition():
    pi = mdp_lib.uniform_policy(MDP)
    j_r, j_c = constrained.returns(MDP, COST, pi)
    # J_c is J_r of the MDP whose reward is the cost.
    j_c_direct, _ = constrained.returns(MDP._replace(R=COST), COST, pi)
    assert float(j_c) == pytest.approx(float(j_c_direct), rel=1e-6)
    assert 0 < float(j_c) < 1  # a discounted probability of falling in


def test_bad_input_raises():
    with pytest.raises(ValueError, match="cost limit must be >= 0"):
        constrained.dual_ascent(constrained.DualAscentConfig(), MDP, COST, -0.1)
    with pytest.raises(ValueError, match="cost limit must be >= 0"):
        constrained.dual_frontier(MDP, COST, jnp.array([0.1, -1.0]), jnp.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="cost must have shape"):
        constrained.returns(MDP, COST[:, :2], mdp_lib.uniform_policy(MDP))
    with pytest.raises(ValueError, match="non-negative"):
        constrained.returns(MDP, -COST, mdp_lib.uniform_policy(MDP))
