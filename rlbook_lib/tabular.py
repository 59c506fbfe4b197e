"""Pieces shared by the tabular learners of :mod:`rlbook_lib.mc` and :mod:`rlbook_lib.td`.

ε-greedy policies (with optional action masks), the step-size schedule
α_n = α · n^(−ω), the result of a control run, and the checks of arguments at
the public boundary. :mod:`rlbook_lib.mc` re-exports them, so
``mc.epsilon_greedy_probabilities`` and ``tabular.epsilon_greedy_probabilities``
are the same function.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

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


def epsilon_greedy_probabilities(q_values: Float[Array, "A"], epsilon,
                                 valid: Bool[Array, "A"] | None = None) -> Float[Array, "A"]:
    """π(a | s) = ε/|A| + (1 − ε) 1[a greedy] / (number of greedy actions); with
    ``valid``, |A| and the greedy actions count only the valid actions (others get 0)."""
    valid = jnp.ones(q_values.shape, bool) if valid is None else valid
    greedy = (valid & (q_values == jnp.max(jnp.where(valid, q_values, -jnp.inf)))).astype(jnp.float32)
    return epsilon * valid / jnp.sum(valid) + (1.0 - epsilon) * greedy / jnp.sum(greedy)


def epsilon_greedy(key: PRNGKeyArray, q_values: Float[Array, "A"], epsilon,
                   valid: Bool[Array, "A"] | None = None) -> Int[Array, ""]:
    """Sample a ~ :func:`epsilon_greedy_probabilities`: with probability ε a uniform
    (valid) action, possibly a greedy one, otherwise a greedy action, ties broken at random.

    One draw of two uniforms (u, u'): the candidates are all (valid) actions if
    u < ε, else the greedy ones, and the ⌊u' m⌋-th of the m candidates is taken.
    """
    u_explore, u_pick = jax.random.uniform(key, (2,))
    valid = jnp.ones(q_values.shape, bool) if valid is None else valid
    best = jnp.max(jnp.where(valid, q_values, -jnp.inf))
    candidates = valid & ((u_explore < epsilon) | (q_values == best))
    m = jnp.sum(candidates)
    j = jnp.minimum(jnp.floor(u_pick * m), m - 1)
    return jnp.argmax(jnp.cumsum(candidates) > j)
