"""Pieces shared by the tabular learners of :mod:`rlbook_lib.mc` and :mod:`rlbook_lib.td`.

The step-size schedule α_n = α · n^(−ω), the result of a control run, the sizes
of a tabular environment, and the checks of arguments at the public boundary.
The ε-greedy policies live in :mod:`rlbook_lib.action_selection`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from rlbook_lib import mdp as mdp_lib
from rlbook_lib.envs.base import Environment


class ControlResult(NamedTuple):
    """What a control run returns (here and in :mod:`rlbook_lib.td`)."""

    q: Float[Array, "S A"]  # the action values after the last episode
    episode_returns: Float[Array, "E"]  # undiscounted online return r_1 + ... + r_T of each episode
    episode_lengths: Int[Array, "E"]  # T of each episode


def check_hyperparameters(**values) -> None:
    """Raise ``ValueError`` for gamma or epsilon outside [0, 1], step_size ≤ 0 or
    step_size_power or epsilon_decay < 0; traced values (under vmap) are skipped."""
    rules = {"gamma": (lambda x: 0 <= x <= 1, "in [0, 1]"),
             "epsilon": (lambda x: 0 <= x <= 1, "in [0, 1]"),
             "step_size": (lambda x: x > 0, "> 0"),
             "step_size_power": (lambda x: x >= 0, ">= 0"),
             "epsilon_decay": (lambda x: x >= 0, ">= 0")}
    for name, value in values.items():
        ok, expected = rules[name]
        if not isinstance(value, jax.core.Tracer) and not (np.ndim(value) == 0 and ok(float(value))):
            raise ValueError(f"{name} must be a scalar {expected}, got {value!r}")


def check_positive_int(name: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is a Python or NumPy int >= 1."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_policy(pi, num_states: int, num_actions: int) -> None:
    """Raise ``ValueError`` unless ``pi`` is an [S, A] matrix whose rows are distributions."""
    if np.shape(pi) != (num_states, num_actions):
        raise ValueError(f"pi must have shape [S, A] = {(num_states, num_actions)}, got {np.shape(pi)}")
    if not isinstance(pi, jax.core.Tracer):
        rows = np.asarray(pi, np.float64)
        if np.any(rows < 0) or not np.allclose(rows.sum(-1), 1.0, atol=mdp_lib.ROW_TOLERANCE):
            raise ValueError("every row pi[s] must be a probability distribution over actions")


def tabular_sizes(env: Environment, params: Any) -> tuple[int, int]:
    """(|S|, |A|) of an environment with ``Discrete`` observations and actions."""
    if not isinstance(env, Environment):
        raise ValueError(f"env must be an rlbook_lib.envs.base.Environment, got {type(env)!r}")
    spaces = env.observation_space(params), env.action_space(params)
    if not all(isinstance(space, gymnasium.spaces.Discrete) for space in spaces):
        raise ValueError(f"env must have Discrete observations and actions (a tabular env), got {spaces}")
    return int(spaces[0].n), int(spaces[1].n)


def step_size(alpha, power, n: Int[Array, "*B"]) -> Float[Array, "*B"]:
    """α_n = α · n^(−ω) for the n-th update (n ≥ 1): constant for ω = 0, 1/n for (1, 1)."""
    return alpha * jnp.asarray(n, jnp.float32) ** (-power)
