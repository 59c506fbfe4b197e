"""Smoke tests for the grid figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rlbook_lib import plotting  # noqa: E402
from rlbook_lib.envs import gridworld as gw  # noqa: E402


def test_heatmap_and_arrows_on_the_gridworld():
    world = gw.Gridworld()
    values = np.linspace(-1, 1, world.num_states)
    policy = np.eye(4)[np.arange(world.num_states) % 4]
    mask, labels = world.terminal_mask, world.cell_labels
    fig, ax = plt.subplots()
    assert plotting.value_heatmap(ax, world.to_grid(values), world.shape, mask=mask, labels=labels) is ax
    assert plotting.policy_arrows(ax, world.to_grid(policy), world.shape, mask=world.arrow_mask) is ax
    states_shown = world.num_states - mask.sum()
    assert len(ax.texts) == states_shown + mask.sum() + states_shown  # numbers, labels, arrows
    plt.close(fig)
    fig, ax = plt.subplots()  # arrows alone: walls drawn dark, terminal cells hatched
    plotting.policy_arrows(ax, world.to_grid(policy), world.shape, mask=mask, labels=labels)
    assert len(ax.patches) == world.wall_mask.sum() + mask.sum()
    plt.close(fig)


def test_arrows_show_ties_and_frozen_lake_order():
    fig, ax = plt.subplots()
    pi = np.array([[0.25] * 4, [0, 0, 1, 0], [0.5, 0.5, 0, 0], [0, 0, 0, 1]])
    plotting.policy_arrows(ax, pi, (2, 2), action_vectors=plotting.FROZEN_LAKE_ACTIONS)
    assert len(ax.texts) == 4 + 1 + 2 + 1
    right = ax.texts[4]  # state 1, action 2 = right in FrozenLake's order
    assert right.xy[0] > right.xyann[0] and right.xy[1] == right.xyann[1]
    plt.close(fig)


def test_shape_mismatch_is_an_error():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="rows\\*cols"):
        plotting.value_heatmap(ax, np.zeros(5), (2, 3))
    with pytest.raises(ValueError, match="rows\\*cols"):
        plotting.policy_arrows(ax, np.zeros((6, 3)), (2, 3))
    plt.close(fig)


def test_median_band_draws_the_median_and_the_interquartile_range():
    runs = np.array([[np.nan, 1.0, 4.0], [2.0, 3.0, 0.0], [4.0, 5.0, 8.0], [6.0, 7.0, 2.0]])
    fig, ax = plt.subplots()
    plotting.median_band(ax, np.arange(3), runs, "runs", fill=0.0)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), [3.0, 4.0, 3.0])  # medians of (0,2,4,6), (1,3,5,7), (4,0,8,2)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(1.5) and band.max() == pytest.approx(5.5)  # quartiles of (0,2,4,6) .. (1,3,5,7)
    plt.close(fig)
