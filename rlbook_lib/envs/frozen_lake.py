"""FrozenLake-v1: cross a frozen lake from S to G without falling into a hole.

The lake is drawn as strings, one per row, exactly as in gymnasium:

====  ===============================================
cell  meaning
====  ===============================================
``S``  start: s_0 is drawn uniformly from the ``S`` cells
``F``  frozen surface
``H``  hole: entering it ends the episode (terminal)
``G``  goal: entering it pays 1 and ends the episode
====  ===============================================

States are all cells numbered in reading order, s = row · ncol + col, and the
observation is s itself. Actions are 0 = left, 1 = down, 2 = right, 3 = up.
On a slippery lake the agent moves in the intended direction a with probability
``success_rate`` and in each of the two perpendicular directions a ± 1 (mod 4)
with probability (1 − success_rate) / 2; gymnasium's slippery lake has
success_rate = 1/3, so all three are equally likely. A move off the edge leaves
the agent where it is:

    s_{t+1} = move(s_t, d),   d = a_t w.p. success_rate,  a_t ± 1 (mod 4) w.p. (1 − success_rate) / 2
    r_{t+1} = reward of the cell entered (G: 1, H: 0, F or S: 0)

Hole and goal cells are absorbing, with reward 0 for any step out of them, as in
gymnasium's table ``env.unwrapped.P``; an episode never steps out of them,
because it ends on entering one. The time limits are gymnasium's registered
values: 100 steps for the 4x4 lake (``FrozenLake-v1``) and 200 for the 8x8 lake
(``FrozenLake8x8-v1``).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib import mdp as mdp_lib
from rlbook_lib.envs.base import Environment

LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3
MOVES = np.array([(0, -1), (1, 0), (0, 1), (-1, 0)])
"""(row step, column step) of each action; rows count downward as in the map."""

SLIPS = (-1, 0, 1)
"""Direction d = a + slip (mod 4) of the three outcomes, in gymnasium's order."""

MAPS = {
    "4x4": ("SFFF", "FHFH", "FFFH", "HFFG"),
    "8x8": (
        "SFFFFFFF",
        "FFFFFFFF",
        "FFFHFFFF",
        "FFFFFHFF",
        "FFFHFFFF",
        "FHHFFFHF",
        "FHFFHFHF",
        "FFFHFFFG",
    ),
}

TIME_LIMITS = {"4x4": 100, "8x8": 200}
"""gymnasium's registered ``max_episode_steps`` of FrozenLake-v1 and FrozenLake8x8-v1."""


class FrozenLakeState(NamedTuple):
    position: Int[Array, ""]
    """The cell s = row · ncol + col the agent stands on."""


@struct.dataclass
class FrozenLakeParams:
    success_rate: Float[Array, ""] | float
    """Probability of moving in the intended direction: 1/3 slippery, 1 not."""
    goal_reward: Float[Array, ""] | float = 1.0
    """Reward for entering G (gymnasium's ``reward_schedule[0]``)."""
    hole_reward: Float[Array, ""] | float = 0.0
    """Reward for entering H (``reward_schedule[1]``)."""
    frozen_reward: Float[Array, ""] | float = 0.0
    """Reward for entering F or S (``reward_schedule[2]``)."""


def move(
    position: Int[Array, "*B"], direction: Int[Array, "*B"], shape: tuple[int, int]
) -> Int[Array, "*B"]:
    """The cell one step from ``position`` in ``direction``, clipped at the edges."""
    nrow, ncol = shape
    deltas = jnp.asarray(MOVES)[direction]
    row = jnp.clip(position // ncol + deltas[..., 0], 0, nrow - 1)
    col = jnp.clip(position % ncol + deltas[..., 1], 0, ncol - 1)
    return row * ncol + col


def slip_direction(
    key: PRNGKeyArray, action: Int[Array, ""], success_rate: Float[Array, ""]
) -> Int[Array, ""]:
    """d = a w.p. success_rate, else a − 1 or a + 1 (mod 4) w.p. (1 − success_rate) / 2 each.

    One uniform u decides: u < success_rate keeps a; of the rest, the lower half
    turns to a − 1 and the upper half to a + 1. With success_rate = 1 the key is
    irrelevant (u < 1 always). Both FrozenLake's and CliffWalking's actions go
    round the compass in order, so a ± 1 are the two perpendicular directions.
    """
    u = jax.random.uniform(key)
    fail = (1.0 - success_rate) / 2.0
    slip = jnp.where(u < success_rate, 0, jnp.where(u < success_rate + fail, -1, 1))
    return (action + slip) % 4


@dataclasses.dataclass(frozen=True)
class FrozenLake(Environment[FrozenLakeState, FrozenLakeParams]):
    """FrozenLake-v1 (see the module docstring).

    Example::

        env = FrozenLake("8x8", is_slippery=False)
        params = env.default_params()
        state = env.initial(jax.random.key(0), params)
        step = env.step(jax.random.key(1), state, jnp.int32(frozen_lake.DOWN), params)
    """

    map_name: str = "4x4"
    """``"4x4"`` (FrozenLake-v1) or ``"8x8"`` (FrozenLake8x8-v1). Static: it fixes S."""
    is_slippery: bool = True
    """Chooses the default ``success_rate``: 1/3 if True, 1 if False. The
    dynamics read only ``params.success_rate``."""

    def __post_init__(self):
        if self.map_name not in MAPS:
            raise ValueError(f"map_name must be one of {sorted(MAPS)}, got {self.map_name!r}")
        if not isinstance(self.is_slippery, bool):
            raise ValueError(f"is_slippery must be a bool, got {self.is_slippery!r}")

    @property
    def max_episode_steps(self) -> int:
        return TIME_LIMITS[self.map_name]

    @property
    def desc(self) -> tuple[str, ...]:
        """The map, one string per row."""
        return MAPS[self.map_name]

    @property
    def shape(self) -> tuple[int, int]:
        """(nrow, ncol)."""
        return len(self.desc), len(self.desc[0])

    @property
    def num_states(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def cells(self) -> np.ndarray:
        """The map letter of every state, shape [S]."""
        return np.array(list("".join(self.desc)))

    def default_params(self) -> FrozenLakeParams:
        return FrozenLakeParams(success_rate=1.0 / 3.0 if self.is_slippery else 1.0)

    def initial(self, key: PRNGKeyArray, params: FrozenLakeParams) -> FrozenLakeState:
        """s_0 uniform over the ``S`` cells (there is one on gymnasium's maps)."""
        starts = jnp.asarray(np.flatnonzero(self.cells == "S"))
        return FrozenLakeState(jax.random.choice(key, starts))

    def transition(
        self,
        state: FrozenLakeState,
        action: Int[Array, ""],
        key: PRNGKeyArray,
        params: FrozenLakeParams,
    ) -> FrozenLakeState:
        """Move in the slipped direction; holes and the goal are absorbing."""
        direction = slip_direction(key, action, params.success_rate)
        moved = move(state.position, direction, self.shape)
        return FrozenLakeState(jnp.where(self.terminal(state, params), state.position, moved))

    def observation(self, state: FrozenLakeState, params: FrozenLakeParams) -> Int[Array, ""]:
        return state.position

    def _arrival_rewards(self, params: FrozenLakeParams, xp=jnp) -> Float[Array, "S"]:
        """The reward for entering each cell, from its letter."""
        cells = self.cells
        return xp.where(cells == "G", params.goal_reward,
                        xp.where(cells == "H", params.hole_reward, params.frozen_reward))

    def reward(
        self,
        state: FrozenLakeState,
        action: Int[Array, ""],
        next_state: FrozenLakeState,
        params: FrozenLakeParams,
    ) -> Float[Array, ""]:
        """r_{t+1} = reward of the cell entered; 0 for a step out of H or G."""
        arrival = self._arrival_rewards(params)[next_state.position]
        return jnp.where(self.terminal(state, params), 0.0, arrival).astype(jnp.float32)

    def terminal(self, state: FrozenLakeState, params: FrozenLakeParams) -> Bool[Array, ""]:
        """Holes and the goal are terminal."""
        return jnp.asarray(np.isin(self.cells, ["H", "G"]))[state.position]

    def observation_space(self, params: FrozenLakeParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(self.num_states)

    def action_space(self, params: FrozenLakeParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(4)

    def to_mdp(self, params: FrozenLakeParams, gamma: float) -> mdp_lib.MDP:
        """The lake as a tabular MDP.

        P[s, a, s'] = Σ_{slip ∈ {−1, 0, 1}} prob(slip) · 1[s' = move(s, a + slip)]
        R[s, a]     = Σ_{slip} prob(slip) · reward of the cell move(s, a + slip)

        with prob(0) = success_rate and prob(±1) = (1 − success_rate) / 2; holes
        and the goal loop to themselves with reward 0. The sums are taken in
        float64 in gymnasium's order and rounded once to float32, so the model
        equals ``mdp.from_toy_text`` of gymnasium's lake bit for bit. That needs
        concrete ``params`` (build one MDP per setting, outside jit).
        """
        if mdp_lib.is_traced(params):
            raise ValueError("params must be concrete (not traced) to build the tabular model")
        S, A = self.num_states, 4
        absorbing = np.isin(self.cells, ["H", "G"])
        arrival = np.asarray(self._arrival_rewards(params, xp=np), np.float64)
        s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")  # [S, A] each
        P, R = np.zeros((S, A, S)), np.zeros((S, A))
        for slip, prob in zip(SLIPS, slip_probabilities(params.success_rate)):
            next_s = np.asarray(move(s, (a + slip) % 4, self.shape))  # [S, A]
            np.add.at(P, (s, a, next_s), prob)
            R += prob * arrival[next_s]
        P[absorbing] = np.eye(S)[absorbing][:, None, :]
        R[absorbing] = 0.0
        start = self.cells == "S"
        return mdp_lib.make_mdp(P, R, gamma, initial=start / start.sum(), terminal=absorbing)


def slip_probabilities(success_rate: float) -> tuple[float, float, float]:
    """Probabilities of the outcomes in ``SLIPS``, in float64 as gymnasium computes them."""
    success = float(success_rate)
    fail = (1.0 - success) / 2.0
    return fail, success, fail
