"""Sampling: the cache changes nothing, top-p = 1 is plain sampling, temperature and
cut-offs by their definitions, log-probabilities against a per-prefix recomputation,
the episode masks, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import generation, transformer
from rlbook_lib.llm.tokenizer import BOS, EOS, PAD

V, L = 9, 10


@pytest.fixture(scope="module")
def model_and_params():
    model = transformer.Transformer(vocab_size=V, context_length=L, d_model=16, num_heads=2, num_layers=2, d_ff=32)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, L), jnp.int32))
    # Make EOS likely enough that some episodes end and some are truncated.
    params["params"]["head"]["bias"] = params["params"]["head"]["bias"].at[EOS].set(1.0)
    return model, params


PROMPTS = jnp.array([[BOS, 0, 0], [BOS, 5, 0], [BOS, 5, 6]] * 8)


def test_cached_equals_uncached(model_and_params):
    model, params = model_and_params
    for key in jax.random.split(jax.random.key(1), 2):
        cached = generation.generate(model, params, PROMPTS, key, use_cache=True)
        full = generation.generate(model, params, PROMPTS, key, use_cache=False)
        np.testing.assert_array_equal(cached.tokens, full.tokens)
        np.testing.assert_array_equal(cached.mask, full.mask)
        np.testing.assert_allclose(cached.log_probs, full.log_probs, atol=1e-5)


def test_episode_structure(model_and_params):
    model, params = model_and_params
    g = generation.generate(model, params, PROMPTS, jax.random.key(2), top_k=4, temperature=0.7)
    tokens, mask = np.asarray(g.tokens), np.asarray(g.mask)
    prompt_length = (np.asarray(PROMPTS) != PAD).sum(-1)
    for row, m, n, ended in zip(tokens, mask, prompt_length, np.asarray(g.terminated)):
        np.testing.assert_array_equal(row[:n], np.asarray(PROMPTS)[0 if n == 1 else 1 if n == 2 else 2][:n])
        eos = np.flatnonzero(row[n:] == EOS)
        last = n + eos[0] if len(eos) else L - 1
        assert ended == bool(len(eos))
        np.testing.assert_array_equal(m, (np.arange(L) >= n) & (np.arange(L) <= last))
        assert np.all(row[last + 1:] == PAD) and np.all(row[n: last] != EOS)
    assert g.terminated.any() and not g.terminated.all()  # both ends of an episode occur
    assert np.all(np.asarray(g.log_probs)[~mask] == 0) and np.all(np.asarray(g.log_probs)[mask] < 0)


def test_log_probs_equal_per_prefix_log_softmax(model_and_params):
    model, params = model_and_params
    g = generation.generate(model, params, PROMPTS[:3], jax.random.key(3))
    one_pass = generation.token_log_probs(model, params, g.tokens, g.mask)
    np.testing.assert_allclose(one_pass, g.log_probs, atol=1e-5)
    apply = jax.jit(model.apply)
    for i in range(3):
        row, m = np.asarray(g.tokens[i]), np.asarray(g.mask[i])
        by_hand = 0.0
        for t in np.flatnonzero(m):  # the prefix alone (PAD after it), log-softmax at its end
            prefix = np.where(np.arange(L) < t, row, PAD)
            logits = apply(params, jnp.asarray(prefix))[t - 1]
            by_hand += float(jax.nn.log_softmax(logits)[row[t]])
        total = generation.sequence_log_probs(model, params, g.tokens[i], g.mask[i])
        np.testing.assert_allclose(total, by_hand, rtol=1e-5)


def test_top_p_one_is_plain_sampling():
    logits = jax.random.normal(jax.random.key(4), (500, V)) * 3
    logits = logits.at[:, 0].set(-30.0)  # a token whose probability underflows the cumulative sum
    np.testing.assert_array_equal(generation.sampling_logits(logits, 1.0, 0, 1.0), logits)
    key = jax.random.key(5)
    np.testing.assert_array_equal(jax.random.categorical(key, generation.sampling_logits(logits, top_p=1.0)),
                                  jax.random.categorical(key, logits))


def test_top_p_and_top_k_keep_what_they_should():
    logits = jnp.log(jnp.array([0.5, 0.25, 0.15, 0.07, 0.03]))
    kept = lambda cut: np.flatnonzero(np.isfinite(cut)).tolist()
    assert kept(generation.sampling_logits(logits, top_p=0.5)) == [0]  # 0.5 reaches 0.5
    assert kept(generation.sampling_logits(logits, top_p=0.6)) == [0, 1]
    assert kept(generation.sampling_logits(logits, top_p=0.9)) == [0, 1, 2]  # 0.9 ≤ 0.5 + 0.25 + 0.15
    assert kept(generation.sampling_logits(logits, top_p=0.91)) == [0, 1, 2, 3]
    assert kept(generation.sampling_logits(logits, top_k=2)) == [0, 1]
    assert kept(generation.sampling_logits(logits, top_k=3, top_p=0.6)) == [0, 1]


def test_temperature_frequencies():
    logits = jnp.array([1.0, 0.0, -1.0])
    tau = 0.5
    draws = jax.random.categorical(jax.random.key(6), generation.sampling_logits(logits, tau), shape=(40000,))
    freq = np.bincount(np.asarray(draws), minlength=3) / 40000
    expected = np.exp(np.array([1.0, 0.0, -1.0]) / tau) / np.exp(np.array([1.0, 0.0, -1.0]) / tau).sum()
    np.testing.assert_allclose(freq, expected, atol=4 * np.sqrt(0.25 / 40000))


def test_greedy_with_top_k_one(model_and_params):
    model, params = model_and_params
    a = generation.generate(model, params, PROMPTS[:3], jax.random.key(7), top_k=1)
    b = generation.generate(model, params, PROMPTS[:3], jax.random.key(8), top_k=1)
    np.testing.assert_array_equal(a.tokens, b.tokens)  # no randomness left
    np.testing.assert_allclose(np.asarray(a.sampling_log_probs)[np.asarray(a.mask)], 0.0, atol=1e-6)


def test_bad_input_raises(model_and_params):
    model, params = model_and_params
    key = jax.random.key(0)
    gen = lambda prompts=PROMPTS[:2], **kw: generation.generate(model, params, prompts, key, **kw)
    with pytest.raises(ValueError, match="vocabulary"):
        gen(jnp.array([[BOS, V]]))
    with pytest.raises(ValueError, match="shorter than the context"):
        gen(jnp.ones((1, L), jnp.int32))
    with pytest.raises(ValueError, match="temperature"):
        gen(temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        gen(top_p=0.0)
    with pytest.raises(ValueError, match="top_p"):
        gen(top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        gen(top_k=V + 1)
    with pytest.raises(ValueError, match="padded"):
        gen(jnp.array([[BOS, PAD, 5]]))
    with pytest.raises(ValueError, match="shape"):
        gen(jnp.array([BOS, 5]))
    tokens = jnp.array([[BOS, 5, EOS]])
    with pytest.raises(ValueError, match="BOS"):
        generation.token_log_probs(model, params, tokens, jnp.ones_like(tokens, bool))
    with pytest.raises(ValueError, match="vocabulary"):
        generation.token_log_probs(model, params, tokens.at[0, 1].set(-1), jnp.zeros_like(tokens, bool))


def test_generate_under_jit_and_vmap_of_temperature(model_and_params):
    model, params = model_and_params
    run = lambda tau: generation.generate(model, params, PROMPTS[:4], jax.random.key(9), temperature=tau).tokens
    both = jax.jit(jax.vmap(run))(jnp.array([1.0, 1.0]))
    np.testing.assert_array_equal(both[0], both[1])
    np.testing.assert_array_equal(both[0], run(1.0))
