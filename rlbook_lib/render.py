"""Pictures and animations of environments, drawn with matplotlib alone.

Nothing here needs a display or pygame, so the same code runs in a notebook, in
the book build and in CI. A *draw function* ``draw_fn(ax, frame)`` draws one
frame onto a matplotlib ``Axes``; :func:`filmstrip` lays several frames side by
side and :func:`animate` turns them into an HTML animation::

    from IPython.display import HTML
    HTML(render.animate(render.draw_cartpole, observations))

Neither builds its figure through pyplot, so there is nothing to close and
nothing is displayed twice: a filmstrip shows once, when it is the value of a
cell (or through ``IPython.display.display``), and an animation shows only as
its HTML.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
from jaxtyping import ArrayLike, Float
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Polygon, Rectangle

DrawFn = Callable[[Axes, Any], Any]

# CartPole-v1 drawn as gymnasium draws it, in world units (metres). gymnasium
# maps the track [-2.4, 2.4] onto 600 pixels, so 125 pixels are one metre.
X_THRESHOLD = 2.4  # |x| beyond this ends a CartPole-v1 episode
POLE_LENGTH = 1.0  # drawn length 2 * l, with the half-length l = 0.5
POLE_WIDTH = 10 / 125
CART_WIDTH = 50 / 125
CART_HEIGHT = 30 / 125
AXLE_HEIGHT = CART_HEIGHT / 4  # the pivot, above the track
POLE_COLOUR = (202 / 255, 152 / 255, 101 / 255)
AXLE_COLOUR = (129 / 255, 132 / 255, 203 / 255)

# MountainCar-v0 and Acrobot-v1 in their own units, sized as gymnasium draws them.
MOUNTAIN_CAR_TRACK = (-1.2, 0.6)  # the walls
MOUNTAIN_CAR_GOAL = 0.5  # the flag
CAR_LENGTH, CAR_HEIGHT, CAR_CLEARANCE = 0.12, 0.06, 0.03
FLAG_HEIGHT = 0.15
ACROBOT_LINK_WIDTH = 0.2  # links of length 1
ACROBOT_TARGET_HEIGHT = 1.0  # the tip above this line ends an episode
LINK_COLOUR = (0.0, 0.8, 0.8)
JOINT_COLOUR = (0.8, 0.8, 0.0)


class _Figure(Figure):
    """A figure outside pyplot that a notebook still displays.

    A pyplot figure is shown again at the end of a notebook cell (twice when
    the cell also returns it) and stays open until closed. This one is shown
    once, when it is the value of a cell: by matplotlib's inline display where
    that is active, otherwise by ``_repr_png_``.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _blank(ax: Axes, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_cartpole(ax: Axes, observation: Float[ArrayLike, "4"]) -> None:
    """Draw CartPole-v1 from an observation [x, ẋ, θ, θ̇].

    The cart is centred at x on the track; the pole pivots on its axle and
    leans by θ from the vertical (θ > 0 leans right). Dashed lines mark the
    limits x = ±2.4 beyond which an episode terminates.
    """
    observation = np.asarray(observation, dtype=float)
    if observation.shape != (4,):
        raise ValueError(
            "observation must have shape (4,) = [x, x_dot, theta, theta_dot], "
            f"got shape {observation.shape}"
        )
    x, _, theta, _ = observation
    _blank(ax, (-X_THRESHOLD - 0.5, X_THRESHOLD + 0.5), (-0.6, 1.4))
    ax.axhline(0.0, color="black", linewidth=1)
    for limit in (-X_THRESHOLD, X_THRESHOLD):
        ax.axvline(limit, color="tab:red", linestyle="--", linewidth=1)
    ax.add_patch(
        Rectangle(
            (x - CART_WIDTH / 2, -CART_HEIGHT / 2), CART_WIDTH, CART_HEIGHT, color="black"
        )
    )
    # The pole's corners, rotated clockwise by theta about the axle.
    along = np.array([np.sin(theta), np.cos(theta)])
    across = np.array([np.cos(theta), -np.sin(theta)]) * POLE_WIDTH / 2
    pivot = np.array([x, AXLE_HEIGHT])
    tip = pivot + along * POLE_LENGTH
    corners = [pivot - across, pivot + across, tip + across, tip - across]
    ax.add_patch(Polygon(corners, color=POLE_COLOUR))
    ax.add_patch(Circle(tuple(pivot), POLE_WIDTH / 2, color=AXLE_COLOUR))


def _bar(start: np.ndarray, end: np.ndarray, width: float) -> list[np.ndarray]:
    """The corners of a rectangle of ``width`` from ``start`` to ``end``."""
    along = (end - start) / np.linalg.norm(end - start)
    across = np.array([-along[1], along[0]]) * width / 2
    return [start - across, start + across, end + across, end - across]


def _checked(observation: ArrayLike, size: int, names: str) -> np.ndarray:
    observation = np.asarray(observation, dtype=float)
    if observation.shape != (size,):
        raise ValueError(
            f"observation must have shape ({size},) = [{names}], got shape {observation.shape}"
        )
    return observation


def mountain_height(x: Float[ArrayLike, "*N"]) -> Float[np.ndarray, "*N"]:
    """The hill of MountainCar-v0, h(x) = 0.45 sin(3x) + 0.55."""
    return np.sin(3 * np.asarray(x)) * 0.45 + 0.55


def draw_mountain_car(ax: Axes, observation: Float[ArrayLike, "2"]) -> None:
    """Draw MountainCar-v0 from an observation [x, v].

    The track is the hill h(x) between the walls x = −1.2 and 0.6. The car
    (``gid="car"``) stands on it at x, tilted along the slope h'(x) = 1.35 cos 3x,
    and the flag (``gid="flag"``) marks the goal x = 0.5.
    """
    position, _ = _checked(observation, 2, "position, velocity")
    _blank(ax, (MOUNTAIN_CAR_TRACK[0] - 0.05, MOUNTAIN_CAR_TRACK[1] + 0.05), (-0.05, 1.2))
    xs = np.linspace(*MOUNTAIN_CAR_TRACK, 200)
    ax.plot(xs, mountain_height(xs), color="black", linewidth=1)
    slope = np.arctan(1.35 * np.cos(3 * position))
    along, up = np.array([np.cos(slope), np.sin(slope)]), np.array([-np.sin(slope), np.cos(slope)])
    ground = np.array([position, mountain_height(position)])
    bottom = ground + up * CAR_CLEARANCE
    centre = bottom + up * CAR_HEIGHT / 2
    half = along * CAR_LENGTH / 2
    ax.add_patch(Polygon(_bar(centre - half, centre + half, CAR_HEIGHT), color="black", gid="car"))
    for side in (-1, 1):
        wheel = bottom + side * along * CAR_LENGTH / 4
        ax.add_patch(Circle(tuple(wheel), CAR_HEIGHT / 2.5, color="0.5"))
    flag_x, flag_y = MOUNTAIN_CAR_GOAL, float(mountain_height(MOUNTAIN_CAR_GOAL))
    top = flag_y + FLAG_HEIGHT
    ax.plot([flag_x, flag_x], [flag_y, top], color="black", linewidth=1)
    triangle = [(flag_x, top), (flag_x, top - 0.03), (flag_x + 0.075, top - 0.015)]
    ax.add_patch(Polygon(triangle, color=JOINT_COLOUR, gid="flag"))


def draw_acrobot(ax: Axes, observation: Float[ArrayLike, "6"]) -> None:
    """Draw Acrobot-v1 from an observation [cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2].

    Two unit links hang from the pivot at the origin: the elbow is at
    (sin θ1, −cos θ1) and the tip one more link along the angle θ1 + θ2, so
    θ1 = θ2 = 0 hangs straight down. The dashed line at height 1 is the target
    the tip must rise above. The links have ``gid`` ``"link1"`` and ``"link2"``.
    """
    c1, s1, c2, s2, _, _ = _checked(
        observation, 6, "cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2"
    )
    theta1, theta2 = np.arctan2(s1, c1), np.arctan2(s2, c2)
    reach = 2.2
    _blank(ax, (-reach, reach), (-reach, reach))
    ax.axhline(ACROBOT_TARGET_HEIGHT, color="black", linestyle="--", linewidth=1)
    pivot = np.zeros(2)
    elbow = pivot + np.array([np.sin(theta1), -np.cos(theta1)])
    tip = elbow + np.array([np.sin(theta1 + theta2), -np.cos(theta1 + theta2)])
    for name, start, end in (("link1", pivot, elbow), ("link2", elbow, tip)):
        ax.add_patch(Polygon(_bar(start, end, ACROBOT_LINK_WIDTH), color=LINK_COLOUR, gid=name))
        ax.add_patch(Circle(tuple(start), ACROBOT_LINK_WIDTH / 2, color=JOINT_COLOUR))


def draw_walk(ax: Axes, state: int | ArrayLike, *, num_states: int = 11) -> None:
    """Draw the 1-D walk: a strip of ``num_states`` cells, the agent on ``state``.

    The centre cell (the one the reward pulls towards by default) is shaded.
    """
    position = np.asarray(state)
    if position.shape != () or not np.issubdtype(position.dtype, np.integer):
        raise ValueError(f"state must be an integer scalar, got {state!r}")
    if not 0 <= position < num_states:
        raise ValueError(f"state must be in [0, {num_states - 1}], got {int(position)}")
    _blank(ax, (-0.1, num_states + 0.1), (-0.45, 1.1))
    centre = (num_states - 1) // 2
    for cell in range(num_states):
        shade = "0.85" if cell == centre else "white"
        ax.add_patch(Rectangle((cell, 0), 1, 1, facecolor=shade, edgecolor="black"))
        ax.text(cell + 0.5, -0.25, str(cell), ha="center", va="center", fontsize=7)
    ax.add_patch(Circle((int(position) + 0.5, 0.5), 0.3, color="tab:blue"))


def _frames(states: Sequence[Any] | np.ndarray) -> list[Any]:
    frames = list(states)
    if not frames:
        raise ValueError("states must contain at least one frame")
    return frames


def filmstrip(
    draw_fn: DrawFn,
    states: Sequence[Any] | np.ndarray,
    ncols: int = 5,
    *,
    titles: Sequence[str] | None = None,
    frame_size: tuple[float, float] = (2.0, 1.25),
) -> Figure:
    """A grid of frames: panel i shows ``draw_fn(ax, states[i])``.

    Args:
      draw_fn: draws one frame, ``draw_fn(ax, state)``.
      states: a sequence of frames or an array whose first axis is time.
      ncols: panels per row.
      titles: one title per frame; ``"t = i"`` by default (pass your own when
        ``states`` is a subsample such as ``states[::10]``).
      frame_size: the size of one panel in inches.
    """
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    frames = _frames(states)
    if titles is None:
        titles = [f"t = {t}" for t in range(len(frames))]
    if len(titles) != len(frames):
        raise ValueError(f"titles must have one entry per frame ({len(frames)}), got {len(titles)}")
    ncols = min(ncols, len(frames))
    nrows = math.ceil(len(frames) / ncols)
    width, height = frame_size
    fig = _Figure(figsize=(ncols * width, nrows * height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for t, ax in enumerate(axes):
        if t < len(frames):
            draw_fn(ax, frames[t])
            ax.set_title(titles[t], fontsize=8)
        else:
            ax.set_axis_off()
    return fig


def animate(
    draw_fn: DrawFn,
    states: Sequence[Any] | np.ndarray,
    *,
    interval: int = 50,
    figsize: tuple[float, float] = (4.0, 2.5),
    dpi: int = 72,
    embed_limit: float = 20.0,
) -> str:
    """An HTML animation (``FuncAnimation.to_jshtml``) of ``draw_fn`` over ``states``.

    Every frame is embedded as a PNG, so the HTML grows with the number of
    frames and with ``figsize * dpi``: at the defaults a CartPole frame takes a
    few kB, and 200 frames about 1 MB. matplotlib drops the frames beyond
    ``embed_limit`` megabytes (its ``animation.embed_limit``, 20 MB by
    default) with a warning; raise it for long animations.

    Args:
      draw_fn: draws one frame, ``draw_fn(ax, state)``.
      states: a sequence of frames or an array whose first axis is time.
      interval: milliseconds between frames.
      figsize, dpi: the size of one frame, in inches and pixels per inch.
      embed_limit: the most megabytes of frames to embed.

    Returns:
      The HTML, for ``IPython.display.HTML``.
    """
    frames = _frames(states)
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))

    def update(t: int) -> list:
        ax.clear()
        draw_fn(ax, frames[t])
        return []

    animation = FuncAnimation(
        fig, update, frames=len(frames), init_func=lambda: [], interval=interval
    )
    rc = {"savefig.dpi": dpi, "animation.embed_limit": embed_limit}
    with mpl.rc_context(rc):
        return animation.to_jshtml()
