r"""The small MDP of Sutton & Barto's Example 6.7 (maximisation bias, Fig. 6.5).

Two non-terminal states, A and B, and one terminal state:

    END  <-- (any action, r ~ N(mean, std²)) --  B  <-- left, r = 0 --  A  -- right, r = 0 -->  END
                                                                      (start)

Every episode starts in A, which has two actions: ``LEFT`` (0) moves to B,
``RIGHT`` (1) ends the episode; both pay 0. B has ``num_b_actions`` actions;
each one ends the episode with a reward drawn from N(mean, std²), by default
N(−0.1, 1). With γ = 1, going left is worth −0.1 in expectation and right 0:

    q_*(A, left) = mean = −0.1,   q_*(A, right) = 0,   q_*(B, b) = mean for every b,

so the optimal policy goes right, and an ε-greedy agent that has learned it
goes left with probability ε/2. But after a few visits of B, max_b Q(B, b) is
the largest of ``num_b_actions`` noisy averages, and is positive more often
than not: Q-learning then prefers left for many episodes (maximisation bias).

The action space is ``Discrete(num_b_actions)``, the same in every state as the
:class:`~rlbook_lib.envs.base.Environment` interface requires; only actions 0
and 1 exist in A. :meth:`MaxBias.action_mask` gives the valid actions of each
state, for :func:`rlbook_lib.td.run_control`'s ``action_mask``. An invalid
action taken in A anyway acts as ``RIGHT``.

The reward is random given (s, a, s'), while ``reward(state, action,
next_state, params)`` takes no key, so :meth:`MaxBias.transition` draws it and
stores it in the next state (``last_reward``); the observation is the position
alone. Episodes end within two steps, so there is no time limit.
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

A, B, END = 0, 1, 2
"""The states: A (start), B, and the terminal state."""
LEFT, RIGHT = 0, 1
"""The two actions of A."""


class MaxBiasState(NamedTuple):
    position: Int[Array, ""]
    """A, B or END."""
    last_reward: Float[Array, ""]
    """The reward of the step that led here (0 in s_0)."""


@struct.dataclass
class MaxBiasParams:
    mean: Float[Array, ""] | float = -0.1
    """Mean of the reward for each action of B."""
    std: Float[Array, ""] | float = 1.0
    """Standard deviation of the reward for each action of B."""


@dataclasses.dataclass(frozen=True)
class MaxBias(Environment[MaxBiasState, MaxBiasParams]):
    """S&B's Example 6.7 (see the module docstring).

    Example::

        env = MaxBias()
        params = env.default_params()
        config = td.ControlConfig("double_q_learning", epsilon=0.1, step_size=0.1)
        result = td.run_control(config, env, params, key, 300, action_mask=env.action_mask())
        went_left = result.episode_lengths == 2     # left takes two steps, right one
    """

    num_b_actions: int = 10
    """Number of actions in B (≥ 2; S&B: "many")."""

    max_episode_steps: ClassVar[int | None] = None

    def __post_init__(self):
        if not isinstance(self.num_b_actions, int) or self.num_b_actions < 2:
            raise ValueError(f"num_b_actions must be an int >= 2, got {self.num_b_actions!r}")

    def default_params(self) -> MaxBiasParams:
        return MaxBiasParams()

    def initial(self, key: PRNGKeyArray, params: MaxBiasParams) -> MaxBiasState:
        """s_0 = A, always."""
        return MaxBiasState(jnp.int32(A), jnp.float32(0.0))

    def transition(self, state: MaxBiasState, action: Int[Array, ""], key: PRNGKeyArray,
                   params: MaxBiasParams) -> MaxBiasState:
        """A: left to B, anything else to END (reward 0); B: to END with a N(mean, std²)
        reward; END is absorbing (reward 0)."""
        at_a, at_b = state.position == A, state.position == B
        position = jnp.where(at_a & (action == LEFT), B, END).astype(jnp.int32)
        noise = params.mean + params.std * jax.random.normal(key)
        return MaxBiasState(position, jnp.where(at_b, noise, 0.0).astype(jnp.float32))

    def observation(self, state: MaxBiasState, params: MaxBiasParams) -> Int[Array, ""]:
        return state.position

    def reward(self, state: MaxBiasState, action: Int[Array, ""], next_state: MaxBiasState,
               params: MaxBiasParams) -> Float[Array, ""]:
        """The reward drawn by :meth:`transition` for this step."""
        return next_state.last_reward

    def terminal(self, state: MaxBiasState, params: MaxBiasParams) -> Bool[Array, ""]:
        return state.position == END

    def observation_space(self, params: MaxBiasParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(3)

    def action_space(self, params: MaxBiasParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(self.num_b_actions)

    def action_mask(self) -> np.ndarray:
        """M[s, a]: whether action a exists in state s. A has LEFT and RIGHT; B and END all."""
        mask = np.ones((3, self.num_b_actions), bool)
        mask[A, 2:] = False
        return mask

    def to_mdp(self, params: MaxBiasParams, gamma: float) -> mdp_lib.MDP:
        """The expected model: P as above, R[B, b] = mean, all other rewards 0.

        ``params`` must be concrete (not traced).
        """
        if mdp_lib.is_traced(params):
            raise ValueError("params must be concrete (not traced) to build the tabular model")
        n = self.num_b_actions
        next_s = np.full((3, n), END)
        next_s[A, LEFT] = B
        P = np.eye(3)[next_s]  # [S, A, S]
        R = np.zeros((3, n))
        R[B] = float(params.mean)
        return mdp_lib.make_mdp(P, R, gamma, initial=np.eye(3)[A], terminal=np.array([False, False, True]))
