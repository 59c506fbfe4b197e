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
