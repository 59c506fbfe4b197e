"""Rendering runs headless and draws what the observation says."""

import matplotlib

matplotlib.use("Agg")  # no display: the book build and CI have none

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, Polygon, Rectangle  # noqa: E402

from rlbook_lib import render  # noqa: E402


@pytest.fixture
def ax():
    fig = Figure(figsize=(4, 2.5), dpi=72)
    yield fig.add_subplot()


def pole_tip(ax):
    (pole,) = [p for p in ax.patches if isinstance(p, Polygon)]
    corners = pole.get_xy()[:4]
    return corners[2:4].mean(axis=0)  # the two corners at the far end


def test_cartpole_upright_pole_stands_on_the_cart(ax):
    render.draw_cartpole(ax, np.array([1.0, 0.0, 0.0, 0.0]))
    # A pole of drawn length 1.0 (twice CartPole's half-length 0.5) above the axle.
    np.testing.assert_allclose(pole_tip(ax), [1.0, render.AXLE_HEIGHT + 1.0], atol=1e-9)
    (cart,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert cart.get_x() + cart.get_width() / 2 == pytest.approx(1.0)


def test_cartpole_positive_theta_leans_right(ax):
    # gymnasium's renderer rotates the pole clockwise by theta.
    theta = 0.2
    render.draw_cartpole(ax, [-0.5, 0.3, theta, -0.1])
    expected = [-0.5 + np.sin(theta), render.AXLE_HEIGHT + np.cos(theta)]
    np.testing.assert_allclose(pole_tip(ax), expected, atol=1e-9)


def test_cartpole_marks_the_track_limits(ax):
    render.draw_cartpole(ax, np.zeros(4, np.float32))
    xdata = [line.get_xdata() for line in ax.lines]
    vertical = [x[0] for x in xdata if x[0] == x[1]]  # axvline; axhline spans [0, 1]
    assert sorted(vertical) == [-2.4, 2.4]


def test_cartpole_rejects_a_bad_observation(ax):
    with pytest.raises(ValueError, match="observation"):
        render.draw_cartpole(ax, np.zeros(3))


def test_walk_puts_the_agent_on_its_cell(ax):
    render.draw_walk(ax, np.int32(7))
    (agent,) = [p for p in ax.patches if isinstance(p, Circle)]
    assert agent.center == (7 + 0.5, 0.5)
    cells = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(cells) == 11


@pytest.mark.parametrize("state", [-1, 11, 2.5])
def test_walk_rejects_a_bad_state(ax, state):
    with pytest.raises(ValueError, match="state"):
        render.draw_walk(ax, state)


def test_filmstrip_one_panel_per_frame():
    fig = render.filmstrip(render.draw_walk, [0, 3, 5, 10, 7], ncols=3)
    assert len(fig.axes) == 2 * 3
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["t = 0", "t = 1", "t = 2", "t = 3", "t = 4"]
    fig = render.filmstrip(render.draw_cartpole, np.zeros((3, 4)), titles=["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]


def test_filmstrip_is_not_a_pyplot_figure_but_displays_as_png():
    figures_before = plt.get_fignums()
    fig = render.filmstrip(render.draw_walk, [0, 1])
    assert plt.get_fignums() == figures_before  # nothing to close, never shown twice
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_filmstrip_errors():
    with pytest.raises(ValueError, match="ncols"):
        render.filmstrip(render.draw_walk, [0, 1], ncols=0)
    with pytest.raises(ValueError, match="states"):
        render.filmstrip(render.draw_walk, [])
    with pytest.raises(ValueError, match="titles"):
        render.filmstrip(render.draw_walk, [0, 1], titles=["only one"])


def test_animate_returns_html_and_leaves_no_figure_open():
    observations = np.zeros((5, 4), np.float32)
    observations[:, 2] = np.linspace(-0.2, 0.2, 5)
    figures_before = plt.get_fignums()
    html = render.animate(render.draw_cartpole, observations, interval=40)
    assert plt.get_fignums() == figures_before
    assert "<img" in html
    assert html.count("data:image/png;base64") == len(observations)


def patch_with_gid(ax, gid):
    (patch,) = [p for p in ax.patches if p.get_gid() == gid]
    return patch.get_xy()[:4]


def test_mountain_car_sits_on_the_hill_and_the_flag_on_the_goal(ax):
    x = -0.9
    render.draw_mountain_car(ax, np.float32([x, 0.02]))
    (hill, flagpole) = ax.lines
    np.testing.assert_allclose(hill.get_ydata(), np.sin(3 * hill.get_xdata()) * 0.45 + 0.55)
    assert hill.get_xdata()[[0, -1]].tolist() == [-1.2, 0.6]
    # The bottom edge of the car is parallel to the slope, CAR_CLEARANCE above (x, h(x)).
    corners = patch_with_gid(ax, "car")
    bottom = corners[3] - corners[0]
    assert bottom[1] / bottom[0] == pytest.approx(1.35 * np.cos(3 * x))
    ground = np.array([x, np.sin(3 * x) * 0.45 + 0.55])
    middle = (corners[0] + corners[3]) / 2
    assert np.linalg.norm(middle - ground) == pytest.approx(render.CAR_CLEARANCE)
    assert flagpole.get_xdata().tolist() == [0.5, 0.5]
    assert patch_with_gid(ax, "flag")[0][0] == pytest.approx(0.5)


@pytest.mark.parametrize("theta1, theta2", [(0.0, 0.0), (0.3, -1.1), (np.pi, 0.0)])
def test_acrobot_links_follow_the_angles(ax, theta1, theta2):
    observation = [np.cos(theta1), np.sin(theta1), np.cos(theta2), np.sin(theta2), 0.5, -0.2]
    render.draw_acrobot(ax, observation)
    elbow = np.array([np.sin(theta1), -np.cos(theta1)])  # θ1 = 0 hangs down
    tip = elbow + [np.sin(theta1 + theta2), -np.cos(theta1 + theta2)]
    for gid, start, end in (("link1", [0, 0], elbow), ("link2", elbow, tip)):
        corners = patch_with_gid(ax, gid)
        np.testing.assert_allclose(corners[:2].mean(axis=0), start, atol=1e-9)
        np.testing.assert_allclose(corners[2:].mean(axis=0), end, atol=1e-9)
    (target,) = ax.lines
    assert list(target.get_ydata()) == [1.0, 1.0]


def test_new_drawings_reject_bad_observations(ax):
    with pytest.raises(ValueError, match="observation"):
        render.draw_mountain_car(ax, np.zeros(4))
    with pytest.raises(ValueError, match="observation"):
        render.draw_acrobot(ax, np.zeros(4))


def test_filmstrip_and_animate_the_new_drawings():
    positions = np.linspace(-1.2, 0.6, 4)
    cars = np.stack([positions, np.zeros(4)], axis=1)
    assert len(render.filmstrip(render.draw_mountain_car, cars).axes) == 4
    angles = np.linspace(0, np.pi, 3)
    arms = np.stack([np.cos(angles), np.sin(angles), np.ones(3), np.zeros(3),
                     np.zeros(3), np.zeros(3)], axis=1)
    html = render.animate(render.draw_acrobot, arms)
    assert html.count("data:image/png;base64") == len(arms)
