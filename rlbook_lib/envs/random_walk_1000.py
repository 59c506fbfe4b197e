"""The 1000-state random walk of Sutton & Barto's Example 9.1, as an environment.

States 1..1000 lie in a row between two terminal ends, 0 (left) and 1001
(right). Every episode starts in the middle, state 500. On each step the walk
jumps to one of the ``max_jump`` = 100 states on the chosen side, each with
probability 1/100; a jump that would pass an end lands in that end:

    s_{t+1} = clip(s_t + (2 a_t − 1) J_t, 0, 1001),   J_t uniform on {1, ..., 100}
    r_{t+1} = −1 on entering the left end, +1 on entering the right end, 0 otherwise

Actions are 0 = left and 1 = right. S&B's walk is this environment under the
uniform policy π(left | s) = π(right | s) = 1/2 (``mdp.uniform_policy``), so
that near an end the probability of terminating is larger (state 1 ends on the
left with probability 1/2 and jumps right otherwise). With γ = 1, v_π rises
almost linearly from about −0.9 at state 1 to about +0.9 at state 1000, with
flat bends within 100 states of each end (S&B Fig. 9.1); ``to_mdp`` gives the
exact model, from which ``dp`` computes it.

The observation is the state itself (an int). Episodes end with probability 1,
so there is no time limit.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib import mdp as mdp_lib
from rlbook_lib.envs.base import Environment

LEFT, RIGHT = 0, 1


class RandomWalk1000State(NamedTuple):
    position: Int[Array, ""]
    """s_t: 0 and n + 1 are the terminal ends, 1..n the row."""


@struct.dataclass
class RandomWalk1000Params:
    left_reward: Float[Array, ""] | float = -1.0
    """Reward for entering the left end."""
    right_reward: Float[Array, ""] | float = 1.0
    """Reward for entering the right end."""


@dataclasses.dataclass(frozen=True)
class RandomWalk1000(Environment[RandomWalk1000State, RandomWalk1000Params]):
    """S&B's 1000-state random walk (see the module docstring).

    Example::

        env = RandomWalk1000()
        model = env.to_mdp(env.default_params(), gamma=1.0)
        v = dp.policy_evaluation_exact(model, mdp.uniform_policy(model))  # [1002]
    """

    num_nonterminal: int = 1000
    """n, the number of non-terminal states."""
    max_jump: int = 100
    """The largest jump; each of 1..max_jump is equally likely."""

    max_episode_steps: ClassVar[int | None] = None

    def __post_init__(self):
        for name in ("num_nonterminal", "max_jump"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")

    @property
    def num_states(self) -> int:
        """n + 2: the row and its two ends."""
        return self.num_nonterminal + 2

    @property
    def start(self) -> int:
        """The middle state, (n + 1) // 2 (= 500 for n = 1000)."""
        return (self.num_nonterminal + 1) // 2

    def default_params(self) -> RandomWalk1000Params:
        return RandomWalk1000Params()

    def initial(self, key: PRNGKeyArray, params: RandomWalk1000Params) -> RandomWalk1000State:
        """s_0 = the middle state, always."""
        return RandomWalk1000State(jnp.int32(self.start))

    def transition(self, state: RandomWalk1000State, action: Int[Array, ""], key: PRNGKeyArray,
                   params: RandomWalk1000Params) -> RandomWalk1000State:
        """A uniform jump of 1..max_jump states in the chosen direction, clipped at the ends."""
        jump = jax.random.randint(key, (), 1, self.max_jump + 1)
        moved = jnp.clip(state.position + (2 * action - 1) * jump, 0, self.num_states - 1)
        return RandomWalk1000State(jnp.where(self.terminal(state, params), state.position,
                                             moved).astype(jnp.int32))

    def observation(self, state: RandomWalk1000State, params: RandomWalk1000Params) -> Int[Array, ""]:
        return state.position

    def reward(self, state: RandomWalk1000State, action: Int[Array, ""], next_state: RandomWalk1000State,
               params: RandomWalk1000Params) -> Float[Array, ""]:
        """left_reward / right_reward on entering an end, 0 otherwise (and 0 from an end)."""
        r = jnp.where(next_state.position == 0, params.left_reward,
                      jnp.where(next_state.position == self.num_states - 1, params.right_reward, 0.0))
        return jnp.where(self.terminal(state, params), 0.0, r).astype(jnp.float32)

    def terminal(self, state: RandomWalk1000State, params: RandomWalk1000Params) -> Bool[Array, ""]:
        """The two ends, 0 and n + 1."""
        return (state.position == 0) | (state.position == self.num_states - 1)

    def observation_space(self, params: RandomWalk1000Params) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(self.num_states)

    def action_space(self, params: RandomWalk1000Params) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(2)

    def to_mdp(self, params: RandomWalk1000Params, gamma: float) -> mdp_lib.MDP:
        """The walk as a tabular MDP over all n + 2 states.

        P[s, a, s'] = (number of jumps j in 1..max_jump with clip(s ± j) = s') / max_jump
        R[s, a]     = left_reward · P[s, a, 0] + right_reward · P[s, a, n + 1]

        for s in the row; the ends are absorbing and pay nothing. ``params``
        must be concrete (not traced).
        """
        if mdp_lib.is_traced(params):
            raise ValueError("params must be concrete (not traced) to build the tabular model")
        S, last = self.num_states, self.num_states - 1
        P = np.zeros((S, 2, S))
        jumps = np.arange(1, self.max_jump + 1)
        for a, sign in ((LEFT, -1), (RIGHT, 1)):
            targets = np.clip(np.arange(S)[:, None] + sign * jumps[None, :], 0, last)  # [S, J]
            np.add.at(P, (np.repeat(np.arange(S), jumps.size), a, targets.ravel()), 1.0 / self.max_jump)
        P[[0, last]] = 0.0
        P[0, :, 0] = P[last, :, last] = 1.0
        R = float(params.left_reward) * P[:, :, 0] + float(params.right_reward) * P[:, :, last]
        R[[0, last]] = 0.0
        terminal = np.isin(np.arange(S), [0, last])
        return mdp_lib.make_mdp(P, R, gamma, initial=np.eye(S)[self.start], terminal=terminal)
