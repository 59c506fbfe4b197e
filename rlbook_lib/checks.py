"""Argument checks shared by the algorithms, run at the public boundary before jit.

Each check raises ``ValueError`` with a message that names the argument and what
was expected, and returns nothing (:func:`check_sequences` returns the shared
length). Values that may be vmapped for a sweep (γ, ε, α, c_H, ...) arrive as
tracers inside ``jax.vmap``; their value cannot be read there, so the checks
skip the value (shapes are static and still checked where that makes sense).

Used by :mod:`rlbook_lib.mc`, :mod:`rlbook_lib.td`, :mod:`rlbook_lib.tabular`,
:mod:`rlbook_lib.returns`, :mod:`rlbook_lib.rollout`, :mod:`rlbook_lib.reinforce`,
:mod:`rlbook_lib.policy_gradient`, :mod:`rlbook_lib.score_function`, :mod:`rlbook_lib.importance_sampling`,
:mod:`rlbook_lib.td_lambda` and :mod:`rlbook_lib.envs.one_state`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rlbook_lib import mdp as mdp_lib
from rlbook_lib.mdp import MDP

_RULES = {
    "gamma": (lambda x: 0 <= x <= 1, "in [0, 1]"),
    "lambda_": (lambda x: 0 <= x <= 1, "in [0, 1]"),
    "epsilon": (lambda x: 0 <= x <= 1, "in [0, 1]"),
    "step_size": (lambda x: x > 0, "> 0"),
    "step_size_power": (lambda x: x >= 0, ">= 0"),
    "epsilon_decay": (lambda x: x >= 0, ">= 0"),
}


def check_hyperparameters(**values) -> None:
    """Raise ``ValueError`` for gamma, lambda_ or epsilon outside [0, 1], step_size ≤ 0, or
    step_size_power or epsilon_decay < 0; traced values (under vmap) are skipped.

    Example: ``check_hyperparameters(gamma=config.gamma, epsilon=config.epsilon)``.
    """
    for name, value in values.items():
        if name not in _RULES:
            raise ValueError(f"check_hyperparameters knows {sorted(_RULES)}, got {name!r}")
        ok, expected = _RULES[name]
        if not isinstance(value, jax.core.Tracer) and not (np.ndim(value) == 0 and ok(float(value))):
            raise ValueError(f"{name} must be a scalar {expected}, got {value!r}")


def check_positive_int(name: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is a Python or NumPy int >= 1 (not a bool)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_entropy_coef(entropy_coef) -> None:
    """Raise ``ValueError`` unless the entropy-bonus coefficient c_H is a scalar ≥ 0
    (its value is checked only when it is not traced)."""
    if np.ndim(entropy_coef) != 0:
        raise ValueError(f"entropy_coef must be a scalar, got shape {np.shape(entropy_coef)}")
    if not mdp_lib.is_traced(entropy_coef) and not float(entropy_coef) >= 0.0:
        raise ValueError(f"entropy_coef must be a non-negative number, got {entropy_coef}")


def check_environment(env: Any) -> None:
    """Raise ``ValueError`` unless ``env`` is an :class:`rlbook_lib.envs.base.Environment`."""
    from rlbook_lib.envs.base import Environment  # here, so that environments may import checks

    if not isinstance(env, Environment):
        raise ValueError(f"env must be an rlbook_lib.envs.base.Environment, got {type(env)!r}")


def check_mdp(mdp: Any) -> None:
    """Raise ``ValueError`` unless ``mdp`` is an :class:`rlbook_lib.mdp.MDP`."""
    if not isinstance(mdp, MDP):
        raise ValueError(f"mdp must be an MDP (see mdp.make_mdp), got {type(mdp).__name__}")


def check_policy(pi, num_states: int, num_actions: int) -> None:
    """Raise ``ValueError`` unless ``pi`` is an [S, A] matrix whose rows are distributions
    (the rows are checked only when ``pi`` is not traced)."""
    if np.shape(pi) != (num_states, num_actions):
        raise ValueError(f"pi must have shape [S, A] = {(num_states, num_actions)}, got {np.shape(pi)}")
    if not isinstance(pi, jax.core.Tracer):
        rows = np.asarray(pi, np.float64)
        if np.any(rows < 0) or not np.allclose(rows.sum(-1), 1.0, atol=mdp_lib.ROW_TOLERANCE):
            raise ValueError("every row pi[s] must be a probability distribution over actions")


def check_policy_parameters(theta, num_states: int, num_actions: int) -> None:
    """Raise ``ValueError`` unless the tabular softmax parameters θ have shape [S, A]
    and (when not traced) finite entries."""
    if np.shape(theta) != (num_states, num_actions):
        raise ValueError(f"theta must have shape [S, A] = {(num_states, num_actions)}, got {np.shape(theta)}")
    if not mdp_lib.is_traced(theta) and not np.all(np.isfinite(np.asarray(theta))):
        raise ValueError("theta contains NaN or infinite entries")


def check_mdp_and_policy_parameters(mdp: Any, theta) -> None:
    """:func:`check_mdp`, then :func:`check_policy_parameters` with the MDP's S and A."""
    check_mdp(mdp)
    check_policy_parameters(theta, *mdp.R.shape)


def check_sequences(**arrays) -> int:
    """Raise ``ValueError`` unless every array is 1-D with one shared length T; return T.

    Shapes are static, so this also works on tracers inside jit and vmap.
    """
    lengths = {}
    for name, x in arrays.items():
        if np.ndim(x) != 1:
            raise ValueError(f"{name} must have shape [T] (one trajectory; vmap for a batch), "
                             f"got shape {np.shape(x)}")
        lengths[name] = np.shape(x)[0]
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        raise ValueError(f"all sequences must have the same length T, got {shown}")
    return next(iter(lengths.values()), 0)


def check_discounts(discounts) -> None:
    """Raise ``ValueError`` unless every per-step discount γ_{t+1} lies in [0, 1]
    (skipped when ``discounts`` is traced)."""
    if mdp_lib.is_traced(discounts):
        return
    d = np.asarray(discounts, np.float64)
    if not np.all((d >= 0) & (d <= 1)):
        raise ValueError(f"discounts must lie in [0, 1] (γ (1 − terminated)), got values from "
                         f"{np.nanmin(d) if d.size else 0} to {np.nanmax(d) if d.size else 0}")


def check_support(pi, mu, name: str = "mu") -> None:
    """Raise ``ValueError`` unless the behaviour policy covers the target policy:
    μ(a | s) > 0 wherever π(a | s) > 0 (the support condition of importance sampling).

    ``pi`` and ``mu`` are arrays of the same shape (``[S, A]`` tables, or the
    probabilities of the actions taken); skipped when either is traced.
    """
    if np.shape(pi) != np.shape(mu):
        raise ValueError(f"pi and {name} must have the same shape, got {np.shape(pi)} and {np.shape(mu)}")
    if mdp_lib.is_traced(pi) or mdp_lib.is_traced(mu):
        return
    pi, mu = np.asarray(pi, np.float64), np.asarray(mu, np.float64)
    if np.any(pi < 0) or np.any(mu < 0):
        raise ValueError(f"pi and {name} must hold probabilities (non-negative)")
    uncovered = np.argwhere((pi > 0) & (mu <= 0))
    if uncovered.size:
        raise ValueError(f"{name} (the behaviour policy) must be positive wherever pi is (the support "
                         f"condition); {name} = 0 < pi at index {tuple(int(i) for i in uncovered[0])}"
                         f" and {len(uncovered) - 1} more")
