"""Figures: value heatmaps and policy arrows for grid-shaped tabular problems, and
median bands of learning curves over runs (:func:`median_band`).

Both functions draw per-cell arrays of length rows * cols in reading order (row
by row, row 0 at the top), the order of FrozenLake and CliffWalking states. A
NaN value (or a NaN row of a policy) marks a cell that is not a state, such as
a wall of :class:`rlbook_lib.envs.gridworld.Gridworld` (use its ``to_grid``);
it is drawn dark and left empty. An optional boolean ``mask`` marks special
cells (holes, goals, terminal states): states among them are hatched and show
their ``labels`` entry instead of a number or an arrow.

Each function takes a matplotlib ``Axes``, draws on it and returns it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib import patches, patheffects

# Action -> (dx, dy): column step and row step, rows counted downward.
FROZEN_LAKE_ACTIONS = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""FrozenLake's action order: 0 left, 1 down, 2 right, 3 up."""
GRIDWORLD_ACTIONS = ((0, -1), (1, 0), (0, 1), (-1, 0))
"""The book's gridworld (and CliffWalking): 0 up, 1 right, 2 down, 3 left."""

WALL_COLOR = "#3a3a3a"
SPECIAL_COLOR = "#e8e8e8"


def _cells(x, shape: tuple[int, int], name: str, trailing: tuple = ()) -> np.ndarray:
    rows, cols = shape
    x = np.asarray(x, np.float64)
    if x.shape not in ((rows * cols,) + trailing, (rows, cols) + trailing):
        raise ValueError(f"{name} must have {rows * cols} = rows*cols cells for shape {shape}, got {x.shape}")
    return x.reshape((rows * cols,) + x.shape[x.ndim - len(trailing):])


def _grid_axes(ax, shape: tuple[int, int]) -> None:
    rows, cols = shape
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)


def _mark_cells(ax, shape, special, walls, labels) -> None:
    """Draw walls dark; hatch the special cells and write their labels."""
    cols = shape[1]
    for i in np.flatnonzero(walls):
        r, c = divmod(int(i), cols)
        ax.add_patch(patches.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=WALL_COLOR, linewidth=0))
    for i in np.flatnonzero(special & ~walls):
        r, c = divmod(int(i), cols)
        ax.add_patch(patches.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=SPECIAL_COLOR,
                                       hatch="//", edgecolor="#9a9a9a", linewidth=0))
        if labels is not None and labels[i]:
            ax.text(c, r, labels[i], ha="center", va="center", fontsize="large", fontweight="bold")


def value_heatmap(ax, values, shape: tuple[int, int], *, mask=None, fmt: str | None = ".2f",
                  cmap: str = "viridis", labels: Sequence[str] | None = None):
    """Colour each cell by its value and write the value in it.

    ``values`` has rows*cols entries (NaN for cells that are not states);
    ``mask`` (bool, rows*cols) marks cells drawn hatched with their ``labels``
    entry instead of a value. The colour scale spans the unmasked values.
    An empty ``fmt`` (or None) writes no numbers.
    """
    v = _cells(values, shape, "values")
    special = np.zeros(v.shape, bool) if mask is None else _cells(mask, shape, "mask").astype(bool)
    shown = np.isfinite(v) & ~special
    colormap = mpl.colormaps[cmap].with_extremes(bad=WALL_COLOR)
    lo, hi = (v[shown].min(), v[shown].max()) if shown.any() else (0.0, 1.0)
    norm = mpl.colors.Normalize(lo, hi if hi > lo else lo + 1.0)
    ax.imshow(np.ma.masked_invalid(v.reshape(shape)), cmap=colormap, norm=norm)
    _grid_axes(ax, shape)
    _mark_cells(ax, shape, special, ~np.isfinite(v), labels)
    for i in np.flatnonzero(shown) if fmt else ():
        r, c = divmod(int(i), shape[1])
        red, green, blue, _ = colormap(norm(v[i]))
        text_color = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
        ax.text(c, r, format(v[i], fmt), ha="center", va="center", color=text_color, fontsize="small")
    return ax


def policy_arrows(ax, pi, shape: tuple[int, int], *, mask=None,
                  action_vectors: Sequence[tuple[float, float]] = GRIDWORLD_ACTIONS,
                  labels: Sequence[str] | None = None, color: str = "black"):
    """Draw an arrow for each greedy action, argmax_a π(a | s), in every cell.

    ``pi`` is [rows*cols, A]; every action within 1e-6 of the row's maximum gets
    an arrow, so ties show. ``action_vectors[a]`` is the (dx, dy) of action a
    with rows counted downward: ``FROZEN_LAKE_ACTIONS`` or ``GRIDWORLD_ACTIONS``.
    Rows of NaN (not states) and cells in ``mask`` get no arrow. Draw on top
    of :func:`value_heatmap` or on an empty Axes.
    """
    vectors = np.asarray(action_vectors, np.float64)
    probs = _cells(pi, shape, "pi", trailing=(len(vectors),))
    special = np.zeros(len(probs), bool) if mask is None else _cells(mask, shape, "mask").astype(bool)
    if not ax.images:
        _grid_axes(ax, shape)
        _mark_cells(ax, shape, special, ~np.all(np.isfinite(probs), axis=1), labels)
    outline = [patheffects.withStroke(linewidth=2.5, foreground="white")]
    for i, row in enumerate(probs):
        if special[i] or not np.all(np.isfinite(row)):
            continue
        r, c = divmod(i, shape[1])
        for a in np.flatnonzero(row >= row.max() - 1e-6):
            dx, dy = vectors[a]  # from near the centre to the edge, clear of the value text
            arrow = ax.annotate("", xy=(c + 0.46 * dx, r + 0.46 * dy), xytext=(c + 0.2 * dx, r + 0.2 * dy),
                                arrowprops=dict(arrowstyle="-|>", color=color, lw=1.5))
            arrow.arrow_patch.set_path_effects(outline)
    return ax


def median_band(ax, x, runs, label, fill: float = 0.0, **style):
    """Plot the median over runs of curves ``runs`` ``[R, U]`` against ``x`` ``[U]``, with the
    interquartile range as a band of the same colour. NaN entries (a curve not yet defined,
    such as the return before the first episode ends) count as ``fill``. Returns ``ax``."""
    runs = np.nan_to_num(np.asarray(runs), nan=fill)
    (line,) = ax.plot(x, np.median(runs, 0), label=label, **style)
    ax.fill_between(x, *np.percentile(runs, [25, 75], 0), color=line.get_color(), alpha=0.2)
    return ax
