"""Argument checks of the language-model modules, run at the public boundary before jit.

Like :mod:`rlbook_lib.checks`: each raises ``ValueError`` naming the argument and
what was expected, and skips values that are traced (inside jit or vmap).
"""

from __future__ import annotations

import jax
import numpy as np


def is_traced(x) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x))


def check_tokens(name: str, tokens, vocab_size: int) -> None:
    """Raise ``ValueError`` unless every id lies in [0, vocab_size) (skipped when traced)."""
    if is_traced(tokens):
        return
    t = np.asarray(tokens)
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids, got dtype {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= vocab_size):
        raise ValueError(f"{name} must hold token ids in [0, {vocab_size}) (the vocabulary), "
                         f"got values from {t.min()} to {t.max()}")


def check_sampling(temperature, top_k, top_p, vocab_size: int) -> None:
    """Raise ``ValueError`` unless temperature > 0, top_k is an int in [0, V] (0: off)
    and top_p lies in (0, 1] (values skipped when traced; top_k is static)."""
    if np.ndim(temperature) != 0:
        raise ValueError(f"temperature must be a scalar, got shape {np.shape(temperature)}")
    if not is_traced(temperature) and not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or not 0 <= top_k <= vocab_size:
        raise ValueError(f"top_k must be an int in [0, {vocab_size}] (0 keeps every token), got {top_k!r}")
    if np.ndim(top_p) != 0:
        raise ValueError(f"top_p must be a scalar, got shape {np.shape(top_p)}")
    if not is_traced(top_p) and not 0 < float(top_p) <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
