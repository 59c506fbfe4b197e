"""The random walk of Sutton & Barto's Example 6.2, as an environment.

Five non-terminal states A, B, C, D, E lie in a row between two terminal ends.
Every episode starts in the centre, C, and moves one state left or right on
each step until it leaves the row at either end:

    0 = left end   1 = A   2 = B   3 = C   4 = D   5 = E   6 = right end
    (terminal)                   (start)                   (terminal)

States are numbered as above and the observation is the state itself. There
are two actions, 0 = left and 1 = right, each moving one state deterministically:

    s_{t+1} = s_t + (2 a_t − 1)
    r_{t+1} = right_reward if s_{t+1} is the right end,
              left_reward  if s_{t+1} is the left end, 0 otherwise

The *random* walk is this environment under the uniform policy
π(left | s) = π(right | s) = 1/2 (``mdp.uniform_policy``), the Markov reward
process that S&B use to compare Monte Carlo with TD(0). With the default
rewards (0 on the left, +1 on the right) and γ = 1, v_π(s) is the probability
of leaving on the right: v_π(A..E) = 1/6, 2/6, 3/6, 4/6, 5/6.

``num_nonterminal`` sets the length of the row: 5 for Example 6.2; 19 with
``left_reward = -1`` gives the walk of S&B's Example 7.1. Episodes end with
probability 1, so there is no time limit (``max_episode_steps`` is None).
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

LEFT, RIGHT = 0, 1


class RandomWalkState(NamedTuple):
    position: Int[Array, ""]
    """s_t: 0 and n + 1 are the terminal ends, 1..n the states A, B, ..."""


@struct.dataclass
class RandomWalkParams:
    left_reward: Float[Array, ""] | float = 0.0
    """Reward for stepping off the left end (−1 in S&B's 19-state walk)."""
    right_reward: Float[Array, ""] | float = 1.0
    """Reward for stepping off the right end."""


@dataclasses.dataclass(frozen=True)
class RandomWalk(Environment[RandomWalkState, RandomWalkParams]):
    """S&B's random walk (see the module docstring).

    Example::

        env = RandomWalk()
        params = env.default_params()
        mdp = env.to_mdp(params, gamma=1.0)
        dp.policy_evaluation_exact(mdp, mdp_lib.uniform_policy(mdp))
        # [0, 1/6, 2/6, 3/6, 4/6, 5/6, 0]
    """

    num_nonterminal: int = 5
    """n, the number of non-terminal states (5 in Example 6.2, 19 in Example 7.1)."""

    max_episode_steps: ClassVar[int | None] = None

    def __post_init__(self):
        if not isinstance(self.num_nonterminal, int) or self.num_nonterminal < 1:
            raise ValueError(f"num_nonterminal must be an int >= 1, got {self.num_nonterminal!r}")

    @property
    def num_states(self) -> int:
        """n + 2: the non-terminal states and the two ends."""
        return self.num_nonterminal + 2

    @property
    def start(self) -> int:
        """The centre state, (n + 1) // 2 (C, = 3, for n = 5)."""
        return (self.num_nonterminal + 1) // 2

    @property
    def nonterminal(self) -> np.ndarray:
        """Indices 1..n of the non-terminal states."""
        return np.arange(1, self.num_nonterminal + 1)

    def default_params(self) -> RandomWalkParams:
        return RandomWalkParams()

    def initial(self, key: PRNGKeyArray, params: RandomWalkParams) -> RandomWalkState:
        """s_0 = the centre, always."""
        return RandomWalkState(jnp.int32(self.start))

    def transition(
        self,
        state: RandomWalkState,
        action: Int[Array, ""],
        key: PRNGKeyArray,
        params: RandomWalkParams,
    ) -> RandomWalkState:
        """One state left (a = 0) or right (a = 1); the ends are absorbing."""
        moved = state.position + 2 * action - 1
        return RandomWalkState(jnp.where(self.terminal(state, params), state.position, moved))

    def observation(self, state: RandomWalkState, params: RandomWalkParams) -> Int[Array, ""]:
        return state.position

    def reward(
        self,
        state: RandomWalkState,
        action: Int[Array, ""],
        next_state: RandomWalkState,
        params: RandomWalkParams,
    ) -> Float[Array, ""]:
        """left_reward / right_reward on stepping off an end, 0 otherwise."""
        arrival = self._arrival_rewards(params)[next_state.position]
        return jnp.where(self.terminal(state, params), 0.0, arrival).astype(jnp.float32)

    def _arrival_rewards(self, params: RandomWalkParams, xp=jnp) -> Float[Array, "S"]:
        """The reward for entering each state: the ends pay, the row does not."""
        index = xp.arange(self.num_states)
        return xp.where(index == 0, params.left_reward,
                        xp.where(index == self.num_states - 1, params.right_reward, 0.0))

    def terminal(self, state: RandomWalkState, params: RandomWalkParams) -> Bool[Array, ""]:
        """The two ends, 0 and n + 1, are terminal."""
        return (state.position == 0) | (state.position == self.num_states - 1)

    def observation_space(self, params: RandomWalkParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(self.num_states)

    def action_space(self, params: RandomWalkParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(2)

    def to_mdp(self, params: RandomWalkParams, gamma: float) -> mdp_lib.MDP:
        """The walk as a tabular MDP over all n + 2 states.

        P[s, a, s'] = 1 if s' = s + 2a − 1 (s non-terminal), 1 if s' = s (s an end)
        R[s, a]     = reward of entering s + 2a − 1 (s non-terminal), 0 at the ends

        with s_0 = the centre and the two ends terminal. ``params`` must be
        concrete (not traced).
        """
        if mdp_lib.is_traced(params):
            raise ValueError("params must be concrete (not traced) to build the tabular model")
        S = self.num_states
        s = np.arange(S)[:, None]
        ends = (s == 0) | (s == S - 1)  # [S, 1]
        next_s = np.where(ends, s, s + 2 * np.arange(2)[None, :] - 1)  # [S, A]
        P = np.eye(S)[next_s]  # [S, A, S]
        R = np.where(ends, 0.0, np.asarray(self._arrival_rewards(params, xp=np))[next_s])
        terminal = np.isin(np.arange(S), [0, S - 1])
        return mdp_lib.make_mdp(P, R, gamma, initial=np.eye(S)[self.start], terminal=terminal)
