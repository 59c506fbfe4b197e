"""The 1-D walk: chapter 1's first environment.

An agent stands on one of ``num_states`` cells in a row (0 .. 10 by default)
and may step left or right. It is rewarded for staying near the centre cell c:

    s_0 ~ Uniform{0, ..., n - 1}
    s_{t+1} = clip(s_t + (2 a_t - 1), 0, n - 1)        a_t ∈ {0 = left, 1 = right}
    r_{t+1} = -|s_{t+1} - c|                           c = (n - 1) // 2 = 5 by default

A step into a wall leaves the agent where it is. No state is terminal; an
episode ends only when the time limit of ``max_episode_steps = 20`` steps
truncates it, so the last state of an episode still has a value (see
``rlbook_lib.envs.base``).

The walk is small enough to write down as a tabular model: :meth:`Walk.to_mdp`
gives the P and R that the dynamic-programming chapter solves exactly.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
from flax import struct
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib.envs.base import Environment

if TYPE_CHECKING:
    from rlbook_lib.mdp import MDP

LEFT = 0
RIGHT = 1


class WalkState(NamedTuple):
    position: Int[Array, ""]
    """The cell the agent is on, s_t ∈ {0, ..., n - 1}."""


@struct.dataclass
class WalkParams:
    centre: Int[Array, ""] | int
    """The cell c that the reward pulls towards: r_{t+1} = -|s_{t+1} - c|."""


def _move(
    position: Int[Array, "*S"], action: Int[Array, "*S"], num_states: int
) -> Int[Array, "*S"]:
    """s' = clip(s + (2a - 1), 0, n - 1): left is -1, right is +1.

    Precondition: ``action`` is 0 or 1 (the gymnasium adapter checks this).
    """
    return jnp.clip(position + 2 * action - 1, 0, num_states - 1)


@dataclasses.dataclass(frozen=True)
class Walk(Environment[WalkState, WalkParams]):
    """The 1-D walk on ``num_states`` cells (see the module docstring).

    Example::

        env = Walk()
        params = env.default_params()
        state = env.initial(jax.random.key(0), params)
        step = env.step(jax.random.key(1), state, jnp.int32(walk.RIGHT), params)
    """

    num_states: int = 11
    """n, the number of cells. Static: it fixes the shapes of the model."""

    max_episode_steps = 20

    def __post_init__(self):
        if not isinstance(self.num_states, int) or self.num_states < 2:
            raise ValueError(
                f"num_states must be an int >= 2, got {self.num_states!r}"
            )

    def default_params(self) -> WalkParams:
        return WalkParams(centre=(self.num_states - 1) // 2)

    def initial(self, key: PRNGKeyArray, params: WalkParams) -> WalkState:
        """s_0 uniform over the n cells."""
        return WalkState(jax.random.randint(key, (), 0, self.num_states))

    def transition(
        self,
        state: WalkState,
        action: Int[Array, ""],
        key: PRNGKeyArray,
        params: WalkParams,
    ) -> WalkState:
        """Deterministic: one cell left or right, clipped at the ends."""
        return WalkState(_move(state.position, action, self.num_states))

    def observation(self, state: WalkState, params: WalkParams) -> Int[Array, ""]:
        return state.position

    def reward(
        self,
        state: WalkState,
        action: Int[Array, ""],
        next_state: WalkState,
        params: WalkParams,
    ) -> Float[Array, ""]:
        """r_{t+1} = -|s_{t+1} - c|, the distance of the state reached from c."""
        # Negate before the cast, so the centre gives 0.0 rather than -0.0.
        return (-jnp.abs(next_state.position - params.centre)).astype(jnp.float32)

    def terminal(self, state: WalkState, params: WalkParams) -> Bool[Array, ""]:
        """The walk never terminates; only the time limit ends an episode."""
        return jnp.zeros((), dtype=bool)

    def observation_space(self, params: WalkParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(self.num_states)

    def action_space(self, params: WalkParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(2)

    def to_mdp(self, params: WalkParams, gamma: float) -> MDP:
        """The walk as a tabular MDP: P[s, a, s'] and R[s, a].

        P[s, a, s'] = 1 if s' = clip(s + 2a - 1, 0, n - 1), else 0
        R[s, a]     = -|s' - c| for that s' (the expected reward of (s, a))

        with the uniform initial distribution and no terminal states.
        """
        from rlbook_lib.mdp import make_mdp  # mdp imports nothing from envs

        n = self.num_states
        states = jnp.arange(n)
        actions = jnp.array([LEFT, RIGHT])
        next_states = _move(states[:, None], actions[None, :], n)  # [S, A]
        P = jax.nn.one_hot(next_states, n, dtype=jnp.float32)  # [S, A, S]
        R = (-jnp.abs(next_states - params.centre)).astype(jnp.float32)  # [S, A]
        initial = jnp.full((n,), 1.0 / n, dtype=jnp.float32)
        terminal = jnp.zeros((n,), dtype=bool)
        return make_mdp(P, R, gamma, initial=initial, terminal=terminal)
