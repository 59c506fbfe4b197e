r"""A uniform experience-replay buffer that lives inside ``jit``: a fixed-capacity ring.

DQN (Mnih et al., 2015) learns from transitions drawn uniformly at random from
the last K it has seen (K = |D|, the capacity), not from the stream as it
arrives, which breaks the correlation between consecutive updates. The buffer
is an ``(init, add, sample)`` triple of pure functions over a
:class:`ReplayBuffer` NamedTuple, in the style of optax: every call returns a
new buffer, nothing is mutated, and all shapes are fixed by the capacity, so
the buffer can sit in the carry of a ``lax.scan`` and be ``vmap``-ed over
seeds.

=====================  ================  =================================================
field of ReplayBuffer  shape             meaning
=====================  ================  =================================================
``storage``            ``[K, ...]``      the stored items, any pytree (e.g. a Transition)
``position``           ``[]``            the slot the next item is written to
``size``               ``[]``            n, the number of filled slots, min(items added, K)
=====================  ================  =================================================

**Ring order.** Items are written to slots 0, 1, ..., K − 1, then 0 again:
once the buffer is full, each new item overwrites the *oldest* one. With k
items added in all, slot j holds item number k − 1 − ((k − 1 − j) mod K) (counting from 0)
for the n = min(k, K) filled slots.

**Uniform sampling of filled slots.** :func:`sample` draws B slot indices
independently and uniformly from {0, ..., n − 1}, with replacement:

.. math::

    \Pr(\text{slot } j) = \frac{1}{n}, \quad j < n, \qquad
    \Pr(\text{slot } j) = 0, \quad j \ge n.

While the buffer is filling, the filled slots are exactly 0, ..., n − 1, so an
empty (zero) slot is never drawn. Sampling an empty buffer (n = 0) is a
precondition violation: it returns the zeros of slot 0. DQN only learns once
``learning_starts`` transitions are stored.

Example::

    buffer = replay.init(1000, transition)           # transition: one example item
    buffer = replay.add(buffer, transition)
    buffer = replay.add_batch(buffer, transitions)   # leading axis: items in arrival order
    batch = replay.sample(buffer, key, 64)           # leaves [64, ...]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from rlbook_lib import checks


class ReplayBuffer(NamedTuple):
    """The buffer's state; see the module docstring."""

    storage: Any
    """A pytree whose leaves have a leading capacity axis K."""
    position: Int[Array, ""]
    """Index of the slot the next item goes to (the oldest item, once full)."""
    size: Int[Array, ""]
    """Number of filled slots, n = min(items added, K)."""


def capacity(buffer: ReplayBuffer) -> int:
    """K, the number of slots (static: read from the storage's shape)."""
    leaves = jax.tree.leaves(buffer.storage)
    if not leaves:
        raise ValueError("the buffer's storage has no arrays")
    return leaves[0].shape[0]


def init(capacity: int, example: Any) -> ReplayBuffer:
    """An empty buffer with ``capacity`` slots, each shaped like ``example`` (one item, unbatched)."""
    checks.check_positive_int("capacity", capacity)
    storage = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example)
    return ReplayBuffer(storage, jnp.int32(0), jnp.int32(0))


def add_batch(buffer: ReplayBuffer, items: Any) -> ReplayBuffer:
    """Append B items (leaves [B, ...], oldest first) at positions p, p + 1, ... (mod K).

    B must not exceed K: a batch that wrapped around onto itself would write two
    items into one slot.
    """
    c = capacity(buffer)
    leaves = jax.tree.leaves(items)
    if not leaves:
        raise ValueError("items has no arrays")
    num = leaves[0].shape[0]
    if num > c:
        raise ValueError(f"cannot add {num} items at once to a buffer of capacity {c}")
    slots = (buffer.position + jnp.arange(num)) % c
    storage = jax.tree.map(lambda store, x: store.at[slots].set(x.astype(store.dtype)), buffer.storage, items)
    return ReplayBuffer(
        storage=storage,
        position=(buffer.position + num) % c,
        size=jnp.minimum(buffer.size + num, c),
    )


def add(buffer: ReplayBuffer, item: Any) -> ReplayBuffer:
    """Append one item (unbatched), overwriting the oldest once the buffer is full."""
    return add_batch(buffer, jax.tree.map(lambda x: jnp.asarray(x)[None], item))


def sample(buffer: ReplayBuffer, key: PRNGKeyArray, batch_size: int) -> Any:
    """B items drawn uniformly, with replacement, from the n filled slots: leaves [B, ...].

    Precondition: n ≥ 1 (see the module docstring).
    """
    checks.check_positive_int("batch_size", batch_size)
    c = capacity(buffer)
    if batch_size > c:
        raise ValueError(f"batch_size ({batch_size}) must not exceed the buffer's capacity ({c})")
    slots = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[slots], buffer.storage)
