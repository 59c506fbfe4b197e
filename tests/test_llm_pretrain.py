"""Pre-training: the loss of a uniform model, settings checks, determinism, the on-disk
cache against a fresh run, and (slow) learning the language to near its entropy rate."""

import math
import threading

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import generation, grammar, pretrain
from rlbook_lib.llm.tokenizer import BOS

TINY = pretrain.Config(d_model=16, num_heads=2, num_layers=1, d_ff=32, batch_size=8, num_steps=4,
                       warmup_steps=1, num_snapshots=2)


def test_uniform_model_has_cross_entropy_log_v():
    model = TINY.model
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))
    params = jax.tree.map(jnp.zeros_like, params)  # zero head: uniform next-token distribution
    tokens = grammar.sample(jax.random.key(1), 32)
    np.testing.assert_allclose(jax.jit(pretrain.cross_entropy, static_argnums=0)(model, params, tokens), math.log(model.vocab_size), rtol=1e-5)


def test_config_checks():
    with pytest.raises(ValueError, match="multiple of num_snapshots"):
        pretrain.Config(num_steps=100, num_snapshots=7)
    with pytest.raises(ValueError, match="divisible"):
        pretrain.Config(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="batch_size"):
        pretrain.Config(batch_size=0)
    with pytest.raises(ValueError, match="config"):
        pretrain.pretrain({"num_steps": 4}, jax.random.key(0))
    np.testing.assert_array_equal(TINY.snapshot_steps, [0, 2, 4])


def test_cache_returns_what_training_returns(tmp_path, monkeypatch):
    monkeypatch.setenv(pretrain.CACHE_ENV, str(tmp_path))
    key = jax.random.key(3)
    fresh = pretrain.pretrain(TINY, key, use_cache=False)
    assert not list(tmp_path.iterdir())
    first = pretrain.pretrain(TINY, key)  # trains and writes the file (and leaves a lock file)
    files = list(tmp_path.glob("*.msgpack"))
    assert len(files) == 1
    loaded = pretrain.pretrain(TINY, key)  # reads the file
    for other in (first, loaded):
        assert jax.tree.structure(other) == jax.tree.structure(fresh)
        for a, b in zip(jax.tree.leaves(other), jax.tree.leaves(fresh)):
            np.testing.assert_array_equal(a, b)
    assert np.asarray(loaded.metrics.loss).shape == (TINY.num_steps,)
    assert jax.tree.leaves(loaded.snapshots)[0].shape[0] == TINY.num_snapshots + 1
    # Another key is another file, and another model.
    other = pretrain.pretrain(TINY, jax.random.key(4))
    assert len(list(tmp_path.glob("*.msgpack"))) == 2
    assert not list(tmp_path.glob("*.tmp"))
    assert not np.array_equal(jax.tree.leaves(other.params)[0], jax.tree.leaves(fresh.params)[0])


def test_a_process_that_waits_for_the_lock_loads_instead_of_training(tmp_path, monkeypatch):
    """Chapters executed in parallel miss the cache together: one trains under the lock, and
    the others, once it is released, find the file and load it."""
    monkeypatch.setenv(pretrain.CACHE_ENV, str(tmp_path))
    key = jax.random.key(6)
    fresh = pretrain.pretrain(TINY, key, use_cache=False)
    real, trained = pretrain._compiled_train(TINY), []

    def spy(k):  # eval_shape traces it (to restore a file); only a concrete call trains
        if not isinstance(k, jax.core.Tracer):
            trained.append(k)
        return real(k)

    monkeypatch.setattr(pretrain, "_compiled_train", lambda config: spy)
    path = pretrain.cache_dir() / f"pretrain-{pretrain.cache_key(TINY, key)}.msgpack"
    box = {}
    with pretrain._exclusive(path.with_suffix(".lock")):  # "another process" is training
        waiter = threading.Thread(target=lambda: box.setdefault("result", pretrain.pretrain(TINY, key)))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive()  # it waits for the lock ...
        path.write_bytes(flax.serialization.to_bytes(jax.device_get(fresh)))
    waiter.join(timeout=60)
    assert not waiter.is_alive() and trained == []  # ... and then loads what the holder wrote
    for a, b in zip(jax.tree.leaves(box["result"]), jax.tree.leaves(fresh)):
        np.testing.assert_array_equal(a, b)


def test_snapshots_start_at_init_and_end_at_the_result():
    result = pretrain.pretrain(TINY, jax.random.key(5), use_cache=False)
    init = TINY.model.init(jax.random.split(jax.random.key(5))[0], jnp.zeros((1, 16), jnp.int32))
    for snap, first, last in zip(jax.tree.leaves(result.snapshots), jax.tree.leaves(init),
                                 jax.tree.leaves(result.params)):
        np.testing.assert_array_equal(snap[0], first)
        np.testing.assert_array_equal(snap[-1], last)


# Learning: the margins are stated here and in the chapter.
ENTROPY_MARGIN = 0.02
"""Held-out cross-entropy at most this many nats per token above the grammar's own."""
MIN_GRAMMATICAL = 0.9
"""Fraction of grammatical samples at temperature 1, at least."""


@pytest.mark.slow
def test_pretraining_learns_the_language():
    config = pretrain.Config()
    result = pretrain.pretrain(config, jax.random.key(0), use_cache=False)
    model = config.model
    held_out = grammar.sample(jax.random.key(123), 4096)
    model_ce = float(jax.jit(pretrain.cross_entropy, static_argnums=0)(model, result.params, held_out))
    # The grammar's own cross-entropy on the same sentences: the entropy rate up to sampling noise.
    log_p = [grammar.parse(grammar.words_of(row)[0]).log_prob for row in np.asarray(held_out)]
    true_ce = -sum(log_p) / float(pretrain.predicted_mask(held_out).sum())
    assert abs(true_ce - grammar.entropy_rate()) < 0.02
    assert 0 < model_ce - true_ce < ENTROPY_MARGIN  # no model beats the language itself
    prompts = jnp.full((1000, 1), BOS, jnp.int32)
    samples = generation.generate(model, result.params, prompts, jax.random.key(7))
    assert grammar.grammatical_fraction(samples.tokens) >= MIN_GRAMMATICAL
