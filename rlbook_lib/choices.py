r"""Settings that pick one of several named variants, by name or by a (possibly traced) index.

A config field such as ``ppo.Config.objective`` or ``policy_gradient_lm.Config.estimator``
names a variant (``"clip"``) or gives its index into a tuple of names (``0``). A name or a
Python int fixes the variant when the program is traced, so only that variant is compiled.
An integer *array* may be traced: ``jax.vmap`` over it then runs several variants in one
compiled program, each computing every variant and keeping the indexed one
(:func:`select`), which costs the work of all of them but only one compilation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check(name: str, value, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is a name in ``choices``, an int index into it,
    or a scalar integer array (whose value, possibly traced, is not checked)."""
    if isinstance(value, str):
        ok = value in choices
    elif isinstance(value, (jax.Array, np.ndarray)):
        ok = jnp.issubdtype(value.dtype, jnp.integer) and np.ndim(value) == 0
    else:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < len(choices)
    if not ok:
        raise ValueError(f"{name} must be one of {choices} or an index into it (an int or int array), "
                         f"got {value!r}")


def is_named(value, choices: tuple[str, ...], name: str) -> bool:
    """Whether ``value`` statically picks ``name`` (an index array may pick any variant: False)."""
    if isinstance(value, str):
        return value == name
    return isinstance(value, (int, np.integer)) and choices[value] == name


def select(value, choices: tuple[str, ...], compute: Callable[[str], Any]) -> Any:
    """``compute(name)`` of the variant ``value`` picks; for an index array, every variant
    computed and the indexed one kept (leaf by leaf)."""
    if isinstance(value, str):
        return compute(value)
    if isinstance(value, (int, np.integer)):
        return compute(choices[value])
    outs = [compute(c) for c in choices]
    return jax.tree.map(lambda *xs: jnp.stack(xs)[jnp.asarray(value)], *outs)
