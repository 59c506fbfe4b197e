"""The environment interface: an MDP written out as pure JAX functions.

Every environment in the book is a static object whose methods are the parts of
the MDP, in the style of gymnasium's functional API (``FuncEnv``):

=================================================  ===================================
method                                             textbook quantity
=================================================  ===================================
``initial(key, params) -> state``                  s_0 ~ p_0
``transition(state, action, key, params)``         s_{t+1} ~ p(· | s_t, a_t)
``observation(state, params)``                     o_t, what the agent sees of s_t
``reward(state, action, next_state, params)``      r_{t+1} = r(s_t, a_t, s_{t+1})
``terminal(state, params)``                        is s_t terminal (absorbing, value 0)?
=================================================  ===================================

The object itself holds no mutable state. Numbers that may vary (physical
constants, reward shapes) live in a ``params`` pytree that is always passed in,
so one can ``jax.vmap`` over them; sizes that fix array shapes (the number of
states) are fields of the frozen environment object. All functions work on one
unbatched state; the caller vmaps.

Termination and truncation
--------------------------
An episode can end for two different reasons, and learning algorithms must treat
them differently:

* **terminated**: the state reached is terminal. Its value is 0 by definition,
  so the target for the last step is r_{t+1} alone (the discount is 0).
* **truncated**: we stopped because a time limit ran out. The state reached is
  an ordinary state that still has a value, so the target is
  r_{t+1} + γ V(s_{t+1}) -- we still bootstrap.

Merging the two (one ``done`` flag) makes every time-limit cut look like a
terminal state and biases value estimates near the limit. So ``terminal`` is
part of the environment, while the time limit is not: ``max_episode_steps`` is
only a class attribute, and whoever steps the environment counts steps and
reports ``truncated``, exactly as gymnasium's ``TimeLimit`` wrapper does (see
``rlbook_lib.envs.gym_adapter``). The step count is therefore not part of the
state, and the dynamics stay Markov in the state alone.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

import gymnasium
from jaxtyping import Array, Bool, Float, PRNGKeyArray

State = TypeVar("State")
Params = TypeVar("Params")


class Step(NamedTuple):
    """What one call of :meth:`Environment.step` returns."""

    next_state: Any
    """s_{t+1}."""
    observation: Any
    """The observation of s_{t+1}."""
    reward: Float[Array, ""]
    """r_{t+1} = r(s_t, a_t, s_{t+1})."""
    terminated: Bool[Array, ""]
    """Whether s_{t+1} is terminal. Truncation is decided by the caller."""


@dataclasses.dataclass(frozen=True)
class Environment(abc.ABC, Generic[State, Params]):
    """Base class of the book's environments (see the module docstring).

    Subclasses are frozen dataclasses too (``@dataclasses.dataclass(frozen=True)``),
    so an environment compares and hashes by value and can be a static argument
    of ``jax.jit``. Each subclass sets ``max_episode_steps`` and implements the
    abstract methods; :meth:`step` is built from them and is not overridden.
    """

    max_episode_steps: ClassVar[int | None]
    """Time limit after which an episode is truncated (gymnasium's registered
    value for environments that have one; None for no limit). Applied by the
    caller, never here."""

    @abc.abstractmethod
    def default_params(self) -> Params:
        """The parameters of the standard version of the environment."""

    @abc.abstractmethod
    def initial(self, key: PRNGKeyArray, params: Params) -> State:
        """Sample an initial state s_0 ~ p_0."""

    @abc.abstractmethod
    def transition(
        self, state: State, action: Array, key: PRNGKeyArray, params: Params
    ) -> State:
        """Sample the next state s_{t+1} ~ p(· | s_t = state, a_t = action)."""

    @abc.abstractmethod
    def observation(self, state: State, params: Params) -> Array:
        """What the agent observes in ``state``."""

    @abc.abstractmethod
    def reward(
        self, state: State, action: Array, next_state: State, params: Params
    ) -> Float[Array, ""]:
        """The reward r_{t+1} for the transition (s_t, a_t, s_{t+1})."""

    @abc.abstractmethod
    def terminal(self, state: State, params: Params) -> Bool[Array, ""]:
        """Whether ``state`` is terminal (the episode ends and V = 0 there)."""

    @abc.abstractmethod
    def observation_space(self, params: Params) -> gymnasium.Space:
        """The gymnasium space that every observation belongs to."""

    @abc.abstractmethod
    def action_space(self, params: Params) -> gymnasium.Space:
        """The gymnasium space of valid actions."""

    def step(
        self, key: PRNGKeyArray, state: State, action: Array, params: Params
    ) -> Step:
        """One step of the MDP, built from the five functions above.

        Returns ``Step(next_state, observation, reward, terminated)``. No time
        limit is applied: the caller counts steps and decides truncation.
        """
        next_state = self.transition(state, action, key, params)
        return Step(
            next_state=next_state,
            observation=self.observation(next_state, params),
            reward=self.reward(state, action, next_state, params),
            terminated=self.terminal(next_state, params),
        )
