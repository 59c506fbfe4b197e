r"""The one-state MDP of Sutton & Barto's Example 5.5 (infinite variance, Fig. 5.4).

One non-terminal state s and one terminal state. Two actions:

    s --right, r = 0--> END
    s --left--> s                with probability 0.9, r = 0
    s --left--> END              with probability 0.1, r = +1

Every episode starts in s. With γ = 1 the target policy π(left | s) = 1 has
v_π(s) = 1: it goes left until it leaves, and always leaves with +1. Under the
uniform behaviour μ(left | s) = μ(right | s) = 1/2 an episode that follows π
for T steps has importance ratio ρ = 2^T, and the second moment of ρ G is

.. math::

    \mathbb{E}_\mu[(\rho G)^2] = \sum_{T \ge 1} (0.5 \cdot 0.9)^{T-1} (0.5 \cdot 0.1)\, 4^T
                               = 0.2 \sum_{T \ge 1} 1.8^{T-1} = \infty,

so ordinary importance sampling has infinite variance (S&B §5.5) while every
episode with ρ > 0 returns exactly 1. The probability of going back and the
reward are ``params`` (``loop_probability``, ``exit_reward``); the values
above are the defaults.

No time limit (episodes end with probability 1; under μ they last 1/0.55 ≈ 1.8
steps on average). ``to_mdp`` gives the exact model.
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

from rlbook_lib import checks
from rlbook_lib import mdp as mdp_lib
from rlbook_lib.envs.base import Environment
from rlbook_lib.importance_sampling import OffPolicyEpisodes

S, END = 0, 1
"""The non-terminal state and the terminal state."""
LEFT, RIGHT = 0, 1
"""The two actions."""


class OneStateState(NamedTuple):
    position: Int[Array, ""]
    """S (0) or END (1)."""


@struct.dataclass
class OneStateParams:
    loop_probability: Float[Array, ""] | float = 0.9
    """Probability that left leads back to s (else it ends the episode)."""
    exit_reward: Float[Array, ""] | float = 1.0
    """Reward for leaving by the left action."""


@dataclasses.dataclass(frozen=True)
class OneState(Environment[OneStateState, OneStateParams]):
    """S&B's Example 5.5 (see the module docstring).

    Example::

        env = OneState()
        params = env.default_params()
        model = env.to_mdp(params, gamma=1.0)
        dp.policy_evaluation_exact(model, jnp.array([[1.0, 0.0], [1.0, 0.0]]))   # [1, 0]
    """

    max_episode_steps: ClassVar[int | None] = None

    def default_params(self) -> OneStateParams:
        return OneStateParams()

    def initial(self, key: PRNGKeyArray, params: OneStateParams) -> OneStateState:
        """s_0 = s, always."""
        return OneStateState(jnp.int32(S))

    def transition(self, state: OneStateState, action: Int[Array, ""], key: PRNGKeyArray,
                   params: OneStateParams) -> OneStateState:
        """Left: back to s with probability ``loop_probability``, else END; right: END.
        END is absorbing. Precondition: ``action`` is 0 or 1."""
        stays = (action == LEFT) & jax.random.bernoulli(key, params.loop_probability)
        position = jnp.where((state.position == S) & stays, S, END)
        return OneStateState(position.astype(jnp.int32))

    def observation(self, state: OneStateState, params: OneStateParams) -> Int[Array, ""]:
        return state.position

    def reward(self, state: OneStateState, action: Int[Array, ""], next_state: OneStateState,
               params: OneStateParams) -> Float[Array, ""]:
        """``exit_reward`` for s --left--> END, 0 otherwise."""
        leaves_left = (state.position == S) & (action == LEFT) & (next_state.position == END)
        return jnp.where(leaves_left, params.exit_reward, 0.0).astype(jnp.float32)

    def terminal(self, state: OneStateState, params: OneStateParams) -> Bool[Array, ""]:
        return state.position == END

    def observation_space(self, params: OneStateParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(2)

    def action_space(self, params: OneStateParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(2)

    def to_mdp(self, params: OneStateParams, gamma: float) -> mdp_lib.MDP:
        """P[s, left] = (p, 1 − p), P[s, right] = (0, 1), R[s, left] = (1 − p) · exit_reward,
        R[s, right] = 0; END absorbing with reward 0. ``params`` must be concrete."""
        if mdp_lib.is_traced(params):
            raise ValueError("params must be concrete (not traced) to build the tabular model")
        p, reward = float(params.loop_probability), float(params.exit_reward)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"params.loop_probability must lie in [0, 1], got {p}")
        P = np.zeros((2, 2, 2))
        P[S, LEFT] = [p, 1.0 - p]
        P[S, RIGHT, END] = 1.0
        P[END, :, END] = 1.0
        R = np.array([[(1.0 - p) * reward, 0.0], [0.0, 0.0]])
        return mdp_lib.make_mdp(P, R, gamma, initial=np.array([1.0, 0.0]), terminal=np.array([False, True]))


def sample_off_policy_episodes(key: PRNGKeyArray, params: OneStateParams, num_episodes: int,
                               behaviour_left: float = 0.5):
    r"""(G, ρ, T) of ``num_episodes`` episodes under μ(left) = b, for the target π(left) = 1, drawn exactly.

    The same distribution as playing the environment with
    :func:`rlbook_lib.importance_sampling.off_policy_episodes`, at the cost of two
    uniform numbers per episode, for the 10^6–10^7 episodes of S&B's Fig. 5.4.
    An episode goes on after a step with probability c = b · p (left, then back
    to s), so its length is geometric, :math:`\Pr(T = k) = c^{k-1}(1 - c)`; its
    last step leaves by the left action with probability b (1 − p) / (1 − c),
    and then G = ``exit_reward`` and ρ = b^{−T} (every action was left);
    otherwise it went right, G = 0 and ρ = 0.

    Returns an :class:`~rlbook_lib.importance_sampling.OffPolicyEpisodes` with [N] entries.
    """
    checks.check_positive_int("num_episodes", num_episodes)
    if not mdp_lib.is_traced(behaviour_left) and not 0.0 < float(behaviour_left) <= 1.0:
        raise ValueError(f"behaviour_left must lie in (0, 1] (μ must cover π's left), got {behaviour_left!r}")
    b, p = jnp.float32(behaviour_left), jnp.float32(params.loop_probability)
    go_on = b * p
    key_length, key_exit = jax.random.split(key)
    u = 1.0 - jax.random.uniform(key_length, (num_episodes,))  # in (0, 1]
    length = 1 + jnp.floor(jnp.log(u) / jnp.log(go_on)).astype(jnp.int32)  # geometric, from 1
    left_exit = jax.random.uniform(key_exit, (num_episodes,)) * (1.0 - go_on) < b * (1.0 - p)
    ratio = jnp.where(left_exit, jnp.exp(-length * jnp.log(b)), 0.0)
    return OffPolicyEpisodes(jnp.where(left_exit, params.exit_reward, 0.0).astype(jnp.float32), ratio, length)
