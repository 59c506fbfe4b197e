"""Any :class:`~rlbook_lib.envs.base.Environment` as a classic ``gymnasium.Env``.

The pure functions are what the book's algorithms use. Readers who know the
classic ``reset``/``step`` loop, or who want to check an environment with
gymnasium's own tools, wrap it::

    env = GymnasiumEnv(walk.Walk())
    observation, info = env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(1)

The adapter keeps the one piece of mutable state that the classic API needs (the
current state, the step count and a JAX key) and applies the time limit the way
gymnasium's ``TimeLimit`` wrapper does: ``truncated`` is True once
``max_episode_steps`` steps have been taken since the last reset, independently
of ``terminated``.

Randomness comes from a chain of JAX keys: every reset and every step takes its
key as ``chain, key = jax.random.split(chain)``. ``reset(seed=k)`` starts a fresh
chain at ``jax.random.key(k)``; ``reset()`` without a seed continues the chain,
so a seeded reset followed by any sequence of unseeded resets and steps is
reproducible. Only if the very first reset has no seed is the chain started from
gymnasium's per-environment generator (``self.np_random``, seeded from the
operating system), as every gymnasium environment does when given no seed.
"""

from __future__ import annotations

import functools
from typing import Any, Generic

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from gymnasium.envs.registration import EnvSpec

from rlbook_lib.envs.base import Environment, Params, State


def _to_numpy(x: jax.Array, space: gymnasium.Space) -> Any:
    """A fresh numpy copy of ``x`` in the dtype of ``space``.

    gymnasium expects a ``Discrete`` observation as a numpy integer scalar, and
    everything else as an array; neither may share memory with earlier results.
    """
    array = np.array(x, dtype=space.dtype)
    if isinstance(space, gymnasium.spaces.Discrete):
        return array[()]
    return array


class GymnasiumEnv(gymnasium.Env, Generic[State, Params]):
    """The classic gymnasium API over a pure JAX environment.

    Args:
      env: the environment, e.g. ``walk.Walk()``.
      params: its parameters; ``env.default_params()`` if None.
      max_episode_steps: the time limit; ``env.max_episode_steps`` if None. An
        environment whose ``max_episode_steps`` is None (CliffWalking) is never
        truncated.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        env: Environment[State, Params],
        params: Params | None = None,
        *,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ):
        if not isinstance(env, Environment):
            raise ValueError(
                f"env must be an rlbook_lib.envs.base.Environment, got {type(env)!r}"
            )
        if max_episode_steps is None:
            max_episode_steps = env.max_episode_steps
        if max_episode_steps is not None and (
            not isinstance(max_episode_steps, int) or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be a positive int, got {max_episode_steps!r}"
            )
        if render_mode is not None:
            raise ValueError(
                f"render_mode must be None (no render modes yet), got {render_mode!r}"
            )
        self.env = env
        self.params = env.default_params() if params is None else params
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.observation_space = env.observation_space(self.params)
        self.action_space = env.action_space(self.params)
        # A spec lets gymnasium tools (check_env, gymnasium.make(env.spec)) build
        # a fresh copy. Its max_episode_steps stays None: the adapter applies the
        # limit itself, and gymnasium.make would add a second TimeLimit.
        self.spec = EnvSpec(
            id=f"rlbook_lib/{type(env).__name__}",
            entry_point=functools.partial(
                GymnasiumEnv, env, self.params, max_episode_steps=max_episode_steps
            ),
        )

        # Compiled on first use and reused by every later reset and step.
        self._initial = jax.jit(self._initial_fn)
        self._step = jax.jit(env.step)
        self._key: jax.Array | None = None
        self._state: State | None = None
        self._elapsed_steps = 0

    def _initial_fn(self, key: jax.Array, params: Params) -> tuple[State, jax.Array]:
        state = self.env.initial(key, params)
        return state, self.env.observation(state, params)

    def _next_key(self) -> jax.Array:
        self._key, key = jax.random.split(self._key)  # (chain, key)
        return key

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Sample s_0 and return its observation and an empty info dict."""
        super().reset(seed=seed)  # seeds self.np_random, as gymnasium expects
        if seed is not None:
            self._key = jax.random.key(seed)
        elif self._key is None:
            self._key = jax.random.key(int(self.np_random.integers(2**31)))
        self._state, observation = self._initial(self._next_key(), self.params)
        self._elapsed_steps = 0
        return _to_numpy(observation, self.observation_space), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Apply ``action``; return (observation, reward, terminated, truncated, info)."""
        if self._state is None:
            raise gymnasium.error.ResetNeeded("Call reset() before step().")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space}, got {action!r}")
        # A numpy array of a fixed dtype: a Python int and a numpy integer would
        # otherwise reach jit with different (weak and strong) types and retrace.
        action = np.asarray(action, dtype=self.action_space.dtype)
        result = self._step(self._next_key(), self._state, action, self.params)
        self._state = result.next_state
        self._elapsed_steps += 1
        return (
            _to_numpy(result.observation, self.observation_space),
            float(result.reward),
            bool(result.terminated),
            self.max_episode_steps is not None
            and self._elapsed_steps >= self.max_episode_steps,
            {},
        )

    @property
    def state(self) -> State | None:
        """The current state s_t (None before the first reset)."""
        return self._state

    @property
    def elapsed_steps(self) -> int:
        """Steps taken since the last reset."""
        return self._elapsed_steps
