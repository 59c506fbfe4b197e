"""Pieces shared by the tabular learners of :mod:`rlbook_lib.mc` and :mod:`rlbook_lib.td`.

The step-size schedule α_n = α · n^(−ω), the result of a control run and the
sizes of a tabular environment. The ε-greedy policies live in
:mod:`rlbook_lib.action_selection`, the argument checks in :mod:`rlbook_lib.checks`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from rlbook_lib import checks
from rlbook_lib.envs.base import Environment


class ControlResult(NamedTuple):
    """What a control run returns (here and in :mod:`rlbook_lib.td`)."""

    q: Float[Array, "S A"]  # the action values after the last episode
    episode_returns: Float[Array, "E"]  # undiscounted online return r_1 + ... + r_T of each episode
    episode_lengths: Int[Array, "E"]  # T of each episode


def tabular_sizes(env: Environment, params: Any) -> tuple[int, int]:
    """(|S|, |A|) of an environment with ``Discrete`` observations and actions."""
    checks.check_environment(env)
    spaces = env.observation_space(params), env.action_space(params)
    if not all(isinstance(space, gymnasium.spaces.Discrete) for space in spaces):
        raise ValueError(f"env must have Discrete observations and actions (a tabular env), got {spaces}")
    return int(spaces[0].n), int(spaces[1].n)


def step_size(alpha, power, n: Int[Array, "*B"]) -> Float[Array, "*B"]:
    """α_n = α · n^(−ω) for the n-th update (n ≥ 1): constant for ω = 0, 1/n for (1, 1)."""
    return alpha * jnp.asarray(n, jnp.float32) ** (-power)
