"""CliffWalking-v1: Sutton & Barto's Example 6.6, as gymnasium defines it.

The world is a 4 × 12 grid, drawn as strings:

====  ==============================================================
cell  meaning
====  ==============================================================
``S``  start, where every episode begins (s_0 = 36)
``.``  open ground
``C``  cliff: a step into it pays −100 and puts the agent back on S;
       the episode goes on (a cliff cell is never occupied)
``G``  goal: entering it ends the episode (terminal)
====  ==============================================================

States are all 48 cells numbered in reading order, s = row · 12 + col, and the
observation is s itself. Actions are 0 = up, 1 = right, 2 = down, 3 = left.
Every step pays −1, including the step into G, except a step into the cliff.
A move off the edge leaves the agent where it is. gymnasium's v1 adds a
slippery variant (``CliffWalkingSlippery-v1``): the intended direction and
the two perpendicular ones each with probability 1/3. Here, as in
:mod:`rlbook_lib.envs.frozen_lake`, the intended direction has probability
``success_rate`` (1 or 1/3) and each perpendicular one (1 − success_rate) / 2:

    d = a_t w.p. success_rate,  a_t ± 1 (mod 4) w.p. (1 − success_rate) / 2
    c = move(s_t, d)
    s_{t+1} = S if c is a cliff cell else c
    r_{t+1} = −100 if c is a cliff cell else −1

**Why the state remembers a fall.** On the slippery cliff, the step
(s_t = S, a_t = up, s_{t+1} = S) happens both by bumping the left edge (−1) and
by slipping right into the cliff (−100), so r(s, a, s') cannot be read off the
positions. The state therefore carries a flag ``fell``: whether the step that
led to it went into the cliff. The flag never changes the dynamics, and the
observation is the position alone.

**No time limit.** gymnasium registers CliffWalking-v1 without
``max_episode_steps``, and Sutton & Barto run every episode until the goal, so
``max_episode_steps`` is None here: :mod:`rlbook_lib.rollout` never truncates
it. (A uniformly random policy then takes thousands of steps per episode.)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import gymnasium
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib import mdp as mdp_lib
from rlbook_lib.envs.base import Environment
from rlbook_lib.envs.frozen_lake import SLIPS, slip_direction, slip_probabilities

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)])
"""(row step, column step) of each action; rows count downward as in the layout."""

LAYOUT = (
    "............",
    "............",
    "............",
    "SCCCCCCCCCCG",
)


class CliffWalkingState(NamedTuple):
    position: Int[Array, ""]
    """The cell s = row · 12 + col the agent stands on (never a cliff cell)."""
    fell: Bool[Array, ""]
    """Whether the step into this state went into the cliff (see the module docstring)."""


@struct.dataclass
class CliffWalkingParams:
    success_rate: Float[Array, ""] | float
    """Probability of moving in the intended direction: 1, or 1/3 when slippery."""
    step_reward: Float[Array, ""] | float = -1.0
    """Reward of every step that does not go into the cliff."""
    cliff_reward: Float[Array, ""] | float = -100.0
    """Reward of a step into the cliff (which returns the agent to S)."""


def move(
    position: Int[Array, "*B"], direction: Int[Array, "*B"], shape: tuple[int, int]
) -> Int[Array, "*B"]:
    """The cell one step from ``position`` in ``direction``, clipped at the edges."""
    nrow, ncol = shape
    deltas = jnp.asarray(MOVES)[direction]
    row = jnp.clip(position // ncol + deltas[..., 0], 0, nrow - 1)
    col = jnp.clip(position % ncol + deltas[..., 1], 0, ncol - 1)
    return row * ncol + col


@dataclasses.dataclass(frozen=True)
class CliffWalking(Environment[CliffWalkingState, CliffWalkingParams]):
    """CliffWalking-v1 (see the module docstring).

    Example::

        env = CliffWalking()
        params = env.default_params()
        state = env.initial(jax.random.key(0), params)
        step = env.step(jax.random.key(1), state, jnp.int32(cliff_walking.RIGHT), params)
        # step.next_state.position == 36, step.reward == -100
    """

    is_slippery: bool = False
    """Chooses the default ``success_rate``: 1/3 if True (CliffWalkingSlippery-v1),
    1 if False (CliffWalking-v1). The dynamics read only ``params.success_rate``."""

    max_episode_steps: ClassVar[int | None] = None

    def __post_init__(self):
        if not isinstance(self.is_slippery, bool):
            raise ValueError(f"is_slippery must be a bool, got {self.is_slippery!r}")

    @property
    def shape(self) -> tuple[int, int]:
        """(nrow, ncol) = (4, 12)."""
        return len(LAYOUT), len(LAYOUT[0])

    @property
    def num_states(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def cells(self) -> np.ndarray:
        """The layout letter of every state, shape [S]."""
        return np.array(list("".join(LAYOUT)))

    @property
    def start(self) -> int:
        return int(np.flatnonzero(self.cells == "S")[0])

    @property
    def goal(self) -> int:
        return int(np.flatnonzero(self.cells == "G")[0])

    def default_params(self) -> CliffWalkingParams:
        return CliffWalkingParams(success_rate=1.0 / 3.0 if self.is_slippery else 1.0)

    def initial(self, key: PRNGKeyArray, params: CliffWalkingParams) -> CliffWalkingState:
        """s_0 = S, always."""
        return CliffWalkingState(jnp.int32(self.start), jnp.zeros((), bool))

    def transition(
        self,
        state: CliffWalkingState,
        action: Int[Array, ""],
        key: PRNGKeyArray,
        params: CliffWalkingParams,
    ) -> CliffWalkingState:
        """Move in the slipped direction; a cliff cell sends the agent back to S."""
        direction = slip_direction(key, action, params.success_rate)
        cell = move(state.position, direction, self.shape)
        fell = jnp.asarray(self.cells == "C")[cell]
        return CliffWalkingState(jnp.where(fell, self.start, cell), fell)

    def observation(self, state: CliffWalkingState, params: CliffWalkingParams) -> Int[Array, ""]:
        return state.position

    def reward(
        self,
        state: CliffWalkingState,
        action: Int[Array, ""],
        next_state: CliffWalkingState,
        params: CliffWalkingParams,
    ) -> Float[Array, ""]:
        """r_{t+1} = −100 for a step into the cliff, −1 otherwise."""
        reward = jnp.where(next_state.fell, params.cliff_reward, params.step_reward)
        return reward.astype(jnp.float32)

    def terminal(self, state: CliffWalkingState, params: CliffWalkingParams) -> Bool[Array, ""]:
        """Only the goal is terminal."""
        return state.position == self.goal

    def observation_space(self, params: CliffWalkingParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(self.num_states)

    def action_space(self, params: CliffWalkingParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(4)

    def to_mdp(self, params: CliffWalkingParams, gamma: float) -> mdp_lib.MDP:
        """The cliff as a tabular MDP over the 48 positions.

        P[s, a, s'] = Σ_{slip ∈ {−1, 0, 1}} prob(slip) · 1[s' = next(s, a + slip)]
        R[s, a]     = Σ_{slip} prob(slip) · (−100 if the move enters the cliff else −1)

        where next(s, d) is move(s, d), or S if that cell is a cliff cell. Rows
        are given for every cell, the unreachable cliff cells and the goal
        included, just as gymnasium's table has them. The sums are taken in
        float64 and rounded once to float32, so the model equals
        ``mdp.from_toy_text`` of gymnasium's env bit for bit; ``params`` must be
        concrete (not traced).
        """
        if mdp_lib.is_traced(params):
            raise ValueError("params must be concrete (not traced) to build the tabular model")
        S, A = self.num_states, 4
        cliff = self.cells == "C"
        s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")  # [S, A] each
        P, R = np.zeros((S, A, S)), np.zeros((S, A))
        for slip, prob in zip(SLIPS, slip_probabilities(params.success_rate)):
            cell = np.asarray(move(s, (a + slip) % 4, self.shape))  # [S, A]
            np.add.at(P, (s, a, np.where(cliff[cell], self.start, cell)), prob)
            R += prob * np.where(cliff[cell], float(params.cliff_reward), float(params.step_reward))
        initial = np.eye(S)[self.start]
        terminal = np.arange(S) == self.goal
        return mdp_lib.make_mdp(P, R, gamma, initial=initial, terminal=terminal)
