"""Replay buffer: ring order (oldest overwritten first), sampling only filled slots,
jit equals eager, vmap over seeds, and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import replay


def item(i):
    """An item whose every leaf records its arrival number i."""
    return {"obs": jnp.full(3, i, jnp.float32), "action": jnp.int32(i)}


def add_one_by_one(buffer, numbers):
    for i in numbers:
        buffer = replay.add(buffer, item(i))
    return buffer


def test_ring_overwrites_the_oldest_first():
    buffer = replay.init(4, item(0))
    assert replay.capacity(buffer) == 4 and int(buffer.size) == 0
    buffer = add_one_by_one(buffer, [1, 2, 3])
    np.testing.assert_array_equal(buffer.storage["action"], [1, 2, 3, 0])  # slot 3 still empty
    assert int(buffer.size) == 3 and int(buffer.position) == 3
    buffer = add_one_by_one(buffer, [4, 5, 6])
    # 5 overwrote 1 (the oldest), then 6 overwrote 2.
    np.testing.assert_array_equal(buffer.storage["action"], [5, 6, 3, 4])
    np.testing.assert_array_equal(buffer.storage["obs"][:, 0], [5, 6, 3, 4])
    assert int(buffer.size) == 4 and int(buffer.position) == 2


def test_add_batch_equals_adding_one_by_one():
    numbers = list(range(1, 12))
    one_by_one = add_one_by_one(replay.init(5, item(0)), numbers)
    batched = replay.init(5, item(0))
    for chunk in ([1, 2, 3], [4, 5, 6, 7], [8], [9, 10, 11]):  # the 2nd and 4th wrap around
        batched = replay.add_batch(batched, jax.vmap(item)(jnp.array(chunk)))
    jax.tree.map(np.testing.assert_array_equal, batched, one_by_one)
    # 11 items in a ring of 5: slot j holds the latest i (counted from 0) with i = j mod 5.
    k = len(numbers)
    expected = [numbers[k - 1 - ((k - 1 - j) % 5)] for j in range(5)]
    np.testing.assert_array_equal(batched.storage["action"], expected)


def test_sample_never_draws_an_empty_slot():
    for filled in (1, 2, 7, 100):
        buffer = replay.add_batch(replay.init(100, item(0)), jax.vmap(item)(jnp.arange(1, filled + 1)))
        keys = jax.random.split(jax.random.key(filled), 100)
        batch = jax.vmap(replay.sample, (None, 0, None))(buffer, keys, 100)  # 10_000 draws
        drawn = np.asarray(batch["action"]).ravel()
        assert drawn.min() >= 1 and drawn.max() <= filled  # 0 marks an empty slot
        np.testing.assert_array_equal(batch["obs"][..., 0].ravel(), drawn)  # leaves stay aligned
        # Uniform over the filled slots: every one is drawn about 10_000 / filled times.
        counts = np.bincount(drawn, minlength=filled + 1)[1:]
        assert counts.min() > 0
        np.testing.assert_allclose(counts / 10_000, 1 / filled, atol=5 * np.sqrt(1 / filled / 10_000))


def test_jit_equals_eager():
    def fill_and_sample(key):
        buffer = replay.init(8, item(0))
        buffer = replay.add_batch(buffer, jax.vmap(item)(jnp.arange(1, 7)))
        buffer = replay.add(buffer, item(7))
        buffer = replay.add_batch(buffer, jax.vmap(item)(jnp.arange(8, 12)))
        return buffer, replay.sample(buffer, key, 8)

    eager = fill_and_sample(jax.random.key(3))
    jitted = jax.jit(fill_and_sample)(jax.random.key(3))
    jax.tree.map(np.testing.assert_array_equal, eager, jitted)


def test_vmap_over_seeds_equals_separate_calls():
    buffer = replay.add_batch(replay.init(6, item(0)), jax.vmap(item)(jnp.arange(1, 5)))
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(replay.sample, (None, 0, None)), static_argnums=2)(buffer, keys, 5)
    for s in range(3):
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda x: x[s], batched),
                     replay.sample(buffer, keys[s], 5))

    # A buffer per seed, filled differently, in one vmapped call.
    def fill(start):
        return replay.add_batch(replay.init(6, item(0)), jax.vmap(item)(start + jnp.arange(4)))

    buffers = jax.vmap(fill)(jnp.array([10, 20, 30]))
    samples = jax.vmap(replay.sample, (0, 0, None))(buffers, keys, 6)
    for s, start in enumerate([10, 20, 30]):
        assert set(np.asarray(samples["action"][s])) <= set(range(start, start + 4))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="capacity"):
        replay.init(0, item(0))
    buffer = replay.init(4, item(0))
    with pytest.raises(ValueError, match="batch_size"):
        replay.sample(buffer, jax.random.key(0), 5)  # a batch larger than the buffer
    with pytest.raises(ValueError, match="batch_size"):
        replay.sample(buffer, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="capacity 4"):
        replay.add_batch(buffer, jax.vmap(item)(jnp.arange(5)))
