"""A small slippery gridworld, the book's running example for dynamic programming.

The world is drawn as a list of strings, one per row:

====  =====================================================================
cell  meaning
====  =====================================================================
``S``  start (the initial distribution is uniform over all ``S`` cells)
``.``  free cell
``#``  wall: not a state; moving into it (or off the grid) leaves you in place
``G``  goal: entering it pays ``goal_reward`` and ends the episode
``X``  pit: entering it pays ``pit_reward`` and ends the episode
====  =====================================================================

Actions are 0 = up, 1 = right, 2 = down, 3 = left. The intended move happens with
probability 1 − slip, and each of the two perpendicular moves with slip / 2.
Every other step pays ``step_reward``. States are the non-wall cells numbered in
reading order (row by row); :meth:`Gridworld.to_grid` spreads a per-state array
back onto the full grid, with NaN on walls, for :mod:`rlbook_lib.plotting`.

The default layout offers a short corridor from S to G right above two pits
and a long safe detour over the wall. With the default slip 0.2 and step
reward −0.04, the optimal policy from S takes the corridor for γ = 0.9 and the
detour for γ = 0.99: which path is best depends on γ, the slip probability and
the step cost.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rlbook_lib import mdp as mdp_lib

GRIDWORLD_LAYOUT = (
    "......",
    ".####.",
    "S....G",
    "..XX..",
    "......",
)

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
"""(row step, column step) of each action; rows count downward as in the layout."""

CELL_TYPES = "S.#GX"


@dataclasses.dataclass(frozen=True)
class Gridworld:
    """A gridworld drawn as strings; see the module docstring for the cell codes."""

    layout: tuple[str, ...] = GRIDWORLD_LAYOUT
    """Rows of the grid, all of the same length, made of the characters ``S.#GX``."""
    slip: float = 0.2
    """Probability of moving perpendicular to the intended direction (half each side)."""
    step_reward: float = -0.04
    """Reward of a step that does not enter the goal or a pit."""
    goal_reward: float = 1.0
    """Reward of the step into a ``G`` cell, which ends the episode."""
    pit_reward: float = -1.0
    """Reward of the step into an ``X`` cell, which ends the episode."""

    def __post_init__(self):
        layout = tuple(self.layout)
        object.__setattr__(self, "layout", layout)
        if not layout or len({len(row) for row in layout}) != 1 or not layout[0]:
            raise ValueError(f"layout must be non-empty rows of equal length, got {layout}")
        unknown = set("".join(layout)) - set(CELL_TYPES)
        if unknown:
            raise ValueError(f"layout has unknown cell types {sorted(unknown)}; use {CELL_TYPES!r}")
        if "S" not in "".join(layout):
            raise ValueError("layout needs at least one start cell 'S'")
        if not 0.0 <= self.slip <= 1.0:
            raise ValueError(f"slip must be a probability in [0, 1], got {self.slip}")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the grid, walls included."""
        return len(self.layout), len(self.layout[0])

    @functools.cached_property
    def cells(self) -> tuple[tuple[int, int], ...]:
        """(row, col) of each state, in state order (non-wall cells, reading order)."""
        rows, cols = self.shape
        return tuple((r, c) for r in range(rows) for c in range(cols) if self.layout[r][c] != "#")

    @functools.cached_property
    def _states(self) -> dict[tuple[int, int], int]:
        return {cell: s for s, cell in enumerate(self.cells)}

    @property
    def num_states(self) -> int:
        return len(self.cells)

    def state(self, row: int, col: int) -> int:
        """State index of the cell (row, col); ValueError for walls and outside cells."""
        if (row, col) not in self._states:
            raise ValueError(f"cell {(row, col)} is a wall or outside the {self.shape} grid")
        return self._states[(row, col)]

    def cell(self, state: int) -> tuple[int, int]:
        """(row, col) of a state index."""
        return self.cells[state]

    def cell_types(self) -> np.ndarray:
        """The layout character of each state, shape [S]."""
        return np.array([self.layout[r][c] for r, c in self.cells])

    @property
    def cell_labels(self) -> np.ndarray:
        """The layout character of every cell, walls included, shape [rows*cols]."""
        return np.array(list("".join(self.layout)))

    @property
    def wall_mask(self) -> np.ndarray:
        """True on wall cells, shape [rows*cols]."""
        return self.cell_labels == "#"

    @property
    def terminal_mask(self) -> np.ndarray:
        """True on goal and pit cells, shape [rows*cols]."""
        return np.isin(self.cell_labels, ["G", "X"])

    @property
    def arrow_mask(self) -> np.ndarray:
        """True where an action does not matter (walls, goal, pits), shape [rows*cols]."""
        return self.wall_mask | self.terminal_mask

    def to_grid(self, x) -> Float[Array, "rows*cols ..."]:
        """Spread a per-state array [S, ...] onto all rows*cols cells, NaN on walls."""
        x = jnp.asarray(x, jnp.float32)
        rows, cols = self.shape
        flat = jnp.array([r * cols + c for r, c in self.cells])
        return jnp.full((rows * cols,) + x.shape[1:], jnp.nan, jnp.float32).at[flat].set(x)

    def _move(self, row: int, col: int, action: int) -> tuple[int, int]:
        rows, cols = self.shape
        r, c = row + MOVES[action][0], col + MOVES[action][1]
        if 0 <= r < rows and 0 <= c < cols and self.layout[r][c] != "#":
            return r, c
        return row, col  # bumped into a wall or the edge

    def to_mdp(self, gamma) -> mdp_lib.MDP:
        """The tabular model: P, R, the start distribution and terminal G/X states."""
        types = self.cell_types()
        S = self.num_states
        terminal = np.isin(types, ["G", "X"])
        arrival = np.where(types == "G", self.goal_reward,
                           np.where(types == "X", self.pit_reward, self.step_reward))
        P = np.zeros((S, 4, S))
        for s, (row, col) in enumerate(self.cells):
            for a in range(4):
                if terminal[s]:  # absorbing; its value never matters (discount, not done)
                    P[s, a, s] = 1.0
                    continue
                outcomes = ((a, 1.0 - self.slip), ((a + 1) % 4, self.slip / 2), ((a + 3) % 4, self.slip / 2))
                for move, prob in outcomes:
                    P[s, a, self.state(*self._move(row, col, move))] += prob
        R = np.where(terminal[:, None], 0.0, P @ arrival)
        initial = (types == "S") / np.sum(types == "S")
        return mdp_lib.make_mdp(P, R, gamma, initial, terminal)
