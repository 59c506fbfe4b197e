"""The book's gridworld: hand-checked transitions, rewards and terminal states."""

import numpy as np
import pytest

from rlbook_lib import dp
from rlbook_lib.envs import gridworld as gw

UP, RIGHT, DOWN, LEFT = gw.UP, gw.RIGHT, gw.DOWN, gw.LEFT


@pytest.fixture(scope="module")
def world():
    return gw.Gridworld()  # the default layout, slip 0.2, step reward -0.04


@pytest.fixture(scope="module")
def model(world):
    return world.to_mdp(0.9)


def test_layout_and_state_numbering(world):
    assert world.layout == gw.GRIDWORLD_LAYOUT
    assert world.shape == (5, 6)
    assert world.num_states == 5 * 6 - 4  # four wall cells are not states
    for s in range(world.num_states):
        assert world.state(*world.cell(s)) == s
    assert world.cell(0) == (0, 0) and world.cell(6) == (1, 0) and world.cell(7) == (1, 5)
    with pytest.raises(ValueError, match="wall"):
        world.state(1, 2)
    np.testing.assert_array_equal(np.flatnonzero(world.wall_mask), [7, 8, 9, 10])
    np.testing.assert_array_equal(np.flatnonzero(world.terminal_mask), [2 * 6 + 5, 3 * 6 + 2, 3 * 6 + 3])
    grid = np.asarray(world.to_grid(np.arange(world.num_states)))
    assert grid.shape == (30,) and np.isnan(grid[[7, 8, 9, 10]]).all() and grid[11] == 7


def test_slip_probabilities_by_hand(world, model):
    p, slip = np.asarray(model.P, np.float64), 0.2
    start = world.state(2, 0)
    # Intended move right with 1 − slip, perpendicular up and down with slip / 2 each.
    assert p[start, RIGHT, world.state(2, 1)] == pytest.approx(1 - slip)
    assert p[start, RIGHT, world.state(1, 0)] == pytest.approx(slip / 2)
    assert p[start, RIGHT, world.state(3, 0)] == pytest.approx(slip / 2)
    # Down from (0, 1) runs into the wall at (1, 1): stay put; slips go left and right.
    s = world.state(0, 1)
    assert p[s, DOWN, s] == pytest.approx(1 - slip)
    assert p[s, DOWN, world.state(0, 0)] == pytest.approx(slip / 2)
    assert p[s, DOWN, world.state(0, 2)] == pytest.approx(slip / 2)
    # Up in the top-left corner: the intended move and the slip left both hit an edge.
    corner = world.state(0, 0)
    assert p[corner, UP, corner] == pytest.approx((1 - slip) + slip / 2)
    assert p[corner, UP, world.state(0, 1)] == pytest.approx(slip / 2)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-6)


def test_rewards_by_hand(world, model):
    r, slip, step = np.asarray(model.R, np.float64), 0.2, -0.04
    # Down from (2, 2) falls into the pit below unless it slips sideways.
    assert r[world.state(2, 2), DOWN] == pytest.approx((1 - slip) * -1.0 + slip * step)
    # Right from (2, 4) reaches the goal; a slip up bumps the wall, a slip down is a step.
    assert r[world.state(2, 4), RIGHT] == pytest.approx((1 - slip) * 1.0 + slip * step)
    assert r[world.state(0, 0), RIGHT] == pytest.approx(step)


def test_terminal_and_initial_states(world, model):
    goal, pits = world.state(2, 5), [world.state(3, 2), world.state(3, 3)]
    np.testing.assert_array_equal(np.flatnonzero(model.terminal), sorted([goal, *pits]))
    for s in [goal, *pits]:  # absorbing, no reward: their value is 0
        np.testing.assert_array_equal(model.P[s, :, s], 1.0)
        np.testing.assert_array_equal(model.R[s], 0.0)
    np.testing.assert_array_equal(model.initial, np.eye(world.num_states)[world.state(2, 0)])


def test_no_slip_is_deterministic():
    model = gw.Gridworld(slip=0.0).to_mdp(0.9)
    assert set(np.unique(np.asarray(model.P))) == {0.0, 1.0}


def test_best_path_depends_on_gamma(world):
    """The documented behaviour: the short corridor for γ = 0.9, the detour for γ = 0.99."""
    start = world.state(2, 0)
    for gamma, action in [(0.9, RIGHT), (0.99, UP)]:
        solution = dp.value_iteration(world.to_mdp(gamma), tol=1e-6)
        assert int(np.argmax(solution.policy[start])) == action


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layout=("S..", "..")), "equal length"),
        (dict(layout=("S.Q",)), "unknown cell types"),
        (dict(layout=("...", ".G.")), "start cell"),
        (dict(slip=1.5), "slip must be a probability"),
    ],
)
def test_bad_worlds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gw.Gridworld(**kwargs)
