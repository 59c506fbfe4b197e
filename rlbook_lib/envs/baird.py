r"""Baird's counterexample (Baird 1995; Sutton & Barto, Example 11.1 and Fig. 11.2).

Seven states: six *upper* states 0..5 and one *lower* state 6 (S&B number them
1..7). Two actions from every state:

- ``DASHED`` (0) jumps to one of the six upper states, each with probability 1/6;
- ``SOLID`` (1) jumps to the lower state 6.

Every reward is 0, so v_π = 0 for every policy, and the task is continuing
(no terminal state, no time limit; S&B use γ = 0.99). The behaviour policy μ
takes the dashed action with probability 6/7, which makes its state
distribution uniform; the target policy π always takes the solid action.

The value is linear in 8 weights (S&B Fig. 11.1):

.. math::

    \hat v(i) = 2 w_i + w_8 \quad (i = 1..6), \qquad \hat v(7) = w_7 + 2 w_8,

i.e. x(s) is row s of :data:`FEATURES`, whose rows are linearly independent,
so w = 0 represents v_π exactly. Yet semi-gradient TD off-policy (updates
weighted by μ's uniform state distribution, targets by π) diverges from
:data:`INITIAL_WEIGHTS`, while the same features updated on-policy converge.
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

DASHED, SOLID = 0, 1
NUM_STATES, NUM_FEATURES = 7, 8
LOWER = 6
"""The lower state (S&B's state 7), where the solid action leads."""

FEATURES = np.concatenate([np.concatenate([2 * np.eye(6), np.zeros((6, 1)), np.ones((6, 1))], 1),
                           np.array([[0, 0, 0, 0, 0, 0, 1, 2]])]).astype(np.float32)
"""X [7, 8], the feature matrix: x(i) = 2 e_i + e_8 for the upper states, x(7) = e_7 + 2 e_8 (S&B's 1-based indices)."""

INITIAL_WEIGHTS = np.array([1, 1, 1, 1, 1, 1, 10, 1], np.float32)
"""w_0 of S&B's Fig. 11.2."""

BEHAVIOUR = np.tile(np.array([[6 / 7, 1 / 7]], np.float32), (NUM_STATES, 1))
"""μ [7, 2]: dashed with probability 6/7, solid with 1/7, in every state."""

TARGET = np.tile(np.array([[0.0, 1.0]], np.float32), (NUM_STATES, 1))
"""π [7, 2]: always solid."""


class BairdState(NamedTuple):
    position: Int[Array, ""]
    """0..5 the upper states, 6 the lower state."""


@struct.dataclass
class BairdParams:
    pass


@dataclasses.dataclass(frozen=True)
class Baird(Environment[BairdState, BairdParams]):
    """Baird's seven-state MDP (see the module docstring)."""

    max_episode_steps: ClassVar[int | None] = None

    def default_params(self) -> BairdParams:
        return BairdParams()

    def initial(self, key: PRNGKeyArray, params: BairdParams) -> BairdState:
        """s_0 uniform on the seven states."""
        return BairdState(jax.random.randint(key, (), 0, NUM_STATES))

    def transition(self, state: BairdState, action: Int[Array, ""], key: PRNGKeyArray,
                   params: BairdParams) -> BairdState:
        """Dashed: a uniform upper state; solid: the lower state."""
        upper = jax.random.randint(key, (), 0, LOWER)
        return BairdState(jnp.where(action == SOLID, LOWER, upper).astype(jnp.int32))

    def observation(self, state: BairdState, params: BairdParams) -> Int[Array, ""]:
        return state.position

    def reward(self, state, action, next_state, params) -> Float[Array, ""]:
        """0 on every transition."""
        return jnp.float32(0.0)

    def terminal(self, state: BairdState, params: BairdParams) -> Bool[Array, ""]:
        """Never: the task is continuing."""
        return jnp.bool_(False)

    def observation_space(self, params: BairdParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(NUM_STATES)

    def action_space(self, params: BairdParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(2)

    def to_mdp(self, params: BairdParams, gamma: float = 0.99) -> mdp_lib.MDP:
        """P[s, DASHED] uniform on 0..5, P[s, SOLID] = e_6, R = 0, p_0 uniform, nothing terminal."""
        P = np.zeros((NUM_STATES, 2, NUM_STATES))
        P[:, DASHED, :LOWER] = 1.0 / LOWER
        P[:, SOLID, LOWER] = 1.0
        return mdp_lib.make_mdp(P, np.zeros((NUM_STATES, 2)), gamma)
