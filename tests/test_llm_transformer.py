"""The transformer: attention against JAX's and Flax's, causality as a zero gradient,
permutation equivariance without positions, the cache against the full pass, and the
parameter count."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import transformer

B, T, H, D = 2, 7, 3, 5


def qkv(key):
    return [jax.random.normal(k, (B, T, H, D)) for k in jax.random.split(key, 3)]


@pytest.mark.parametrize("causal", [False, True])
def test_attention_equals_jax_dot_product_attention(causal):
    q, k, v = qkv(jax.random.key(0))
    mask = transformer.causal_mask(T) if causal else None
    ours = transformer.attention(q, k, v, mask)
    theirs = jax.nn.dot_product_attention(q, k, v, is_causal=causal)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_attention_weights_by_hand():
    q, k, _ = qkv(jax.random.key(1))
    w = transformer.attention_weights(q, k, transformer.causal_mask(T))
    b, h, t = 1, 2, 3
    scores = np.array([np.dot(q[b, t, h], k[b, s, h]) / math.sqrt(D) for s in range(t + 1)])
    expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    np.testing.assert_allclose(w[b, h, t, : t + 1], expected, rtol=1e-5)
    np.testing.assert_allclose(w[b, h, t, t + 1:], 0.0)


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_equals_flax(causal):
    d, heads = 12, 3
    x = jax.random.normal(jax.random.key(2), (B, T, d))
    ours = transformer.MultiHeadAttention(num_heads=heads, d_model=d)
    params = ours.init(jax.random.key(3), x)
    flax_mha = nn.MultiHeadDotProductAttention(num_heads=heads, qkv_features=d, out_features=d)
    mask = transformer.causal_mask(T)[None, None] if causal else None
    expected = flax_mha.apply(params, x, x, mask=mask)
    actual = ours.apply(params, x, transformer.causal_mask(T) if causal else None)
    assert jax.tree.structure(params) == jax.tree.structure(flax_mha.init(jax.random.key(3), x, x))
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def small_model(**kw):
    return transformer.Transformer(vocab_size=11, context_length=9, d_model=16, num_heads=2, num_layers=2,
                                   d_ff=32, **kw)


def test_causality_as_a_zero_gradient():
    model = small_model()
    tokens = jax.random.randint(jax.random.key(4), (9,), 0, 11)
    params = model.init(jax.random.key(5), tokens)
    x = model.apply(params, tokens, method="embed_tokens")
    logits = lambda x: model.apply(params, x, method="from_embeddings")[0]  # [T, V]
    jacobian = np.asarray(jax.jit(jax.jacrev(logits))(x))  # [T (logits at t), V, T (input s), d]
    for t in range(9):
        assert np.all(jacobian[t, :, t + 1:] == 0.0), t  # every logit: exactly zero for inputs after t
        assert np.all(np.abs(jacobian[t, :, : t + 1]).sum((0, 2)) > 0), t  # and not before


def test_self_attention_without_positions_is_permutation_equivariant():
    d = 12
    x = jax.random.normal(jax.random.key(6), (T, d))
    perm = jax.random.permutation(jax.random.key(7), T)
    for layer in [transformer.MultiHeadAttention(num_heads=3, d_model=d),
                  transformer.Block(d_model=d, num_heads=3, d_ff=24)]:
        p = jax.jit(layer.init)(jax.random.key(8), x)
        apply = jax.jit(layer.apply)
        np.testing.assert_allclose(apply(p, x[perm]), apply(p, x)[perm], atol=1e-5)
    # A one-layer causal model reads its earlier tokens as a set: without positions the output
    # at the last position ignores their order; with positions it does not.
    tokens = jnp.array([3, 4, 5, 6, 7, 8, 9])
    shuffled = jnp.concatenate([tokens[:-1][::-1], tokens[-1:]])  # same last token, others reversed
    for positional in (False, True):
        model = transformer.Transformer(vocab_size=11, context_length=9, d_model=16, num_heads=2,
                                        num_layers=1, d_ff=32, positional=positional)
        params = jax.jit(model.init)(jax.random.key(10), tokens)
        apply = jax.jit(model.apply)
        same = np.allclose(apply(params, shuffled)[-1], apply(params, tokens)[-1], atol=1e-5)
        assert same == (not positional), positional


def test_sinusoidal_positions_by_hand():
    p = transformer.sinusoidal_positions(6, 8)
    t, i = 5, 3  # component pair i: sin at 2i, cos at 2i + 1
    np.testing.assert_allclose(p[t, 2 * i], math.sin(t / 10000 ** (2 * i / 8)), rtol=1e-5)
    np.testing.assert_allclose(p[t, 2 * i + 1], math.cos(t / 10000 ** (2 * i / 8)), rtol=1e-5)


def test_num_params_closed_form():
    for model in [small_model(), transformer.Transformer(vocab_size=46)]:
        params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
        assert transformer.num_params(model) == sum(x.size for x in jax.tree.leaves(params))


def test_cached_decoding_equals_the_full_pass():
    model = small_model()
    tokens = jax.random.randint(jax.random.key(11), (3, 9), 0, 11)
    params = model.init(jax.random.key(12), tokens)
    full_logits, full_hidden = model.apply(params, tokens, return_hidden=True)
    cache = transformer.init_cache(model, (3,))
    decode = jax.jit(lambda token, cache, t: model.apply(params, token, cache, t, method="decode_step"))
    for t in range(9):
        logits, hidden, cache = decode(tokens[:, t], cache, t)
        np.testing.assert_allclose(logits, full_logits[:, t], atol=1e-5)
        np.testing.assert_allclose(hidden, full_hidden[:, t], atol=1e-5)


def test_hidden_states_feed_the_head():
    model = small_model()
    tokens = jnp.arange(9) % 11
    params = model.init(jax.random.key(13), tokens)
    hidden = model.apply(params, tokens, method="hidden")
    head = params["params"]["head"]
    np.testing.assert_allclose(model.apply(params, tokens), hidden @ head["kernel"] + head["bias"], atol=1e-5)
    _, sown = model.apply(params, tokens, mutable=["intermediates"])
    weights = sown["intermediates"]["blocks_0"]["attention"]["attention_weights"][0]
    assert weights.shape == (2, 9, 9)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="divisible"):
        transformer.Transformer(vocab_size=5, d_model=10, num_heads=3).init(
            jax.random.key(0), jnp.zeros(3, jnp.int32))
