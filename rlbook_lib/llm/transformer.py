r"""A decoder-only transformer in Flax ``linen``: the policy π_θ of the RLHF chapters.

Tokens y_1..y_T (y_0 = BOS) become vectors, pass through ``num_layers``
pre-norm residual blocks and a final layer norm, and a linear head turns the
final hidden state h_t into the logits of π_θ(y_{t+1} | y_{≤t}):

.. math::

    x^0_t = E[y_t] + p_t, \qquad
    x' = x + \mathrm{MHA}(\mathrm{LN}(x)), \qquad
    x'' = x' + W_2\, \mathrm{gelu}(W_1 \mathrm{LN}(x') + b_1) + b_2,

    \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_h}} + M\Big) V,

with the causal mask M (0 where s ≤ t, −∞ after) and sinusoidal positions p_t.

====================  ================  ============================================
symbol                shape             meaning
====================  ================  ============================================
V                     ``vocab_size``    number of token ids
L                     ``context_length`` positions, the longest sequence
d                     ``d_model``       width of the residual stream
n_h, d_h = d / n_h    ``num_heads``     attention heads and their width
d_ff                  ``d_ff``          hidden width of the MLP
h_t                   ``[*B, T, d]``    final hidden state (for value or reward heads)
====================  ================  ============================================

Calls (``model.apply(params, ..., method=...)``):

- ``model.apply(params, tokens)`` → logits ``[*B, T, V]``; with ``return_hidden=True``
  → ``(logits, hidden)``, so a value or reward head can read h_t from the same pass.
- ``method=Transformer.hidden`` → h ``[*B, T, d]``.
- ``method=Transformer.decode_step`` with a :class:`Cache` from :func:`init_cache`:
  one new token at ``position``, attending to the keys and values cached so far.
- ``mutable=["intermediates"]`` returns every layer's attention weights
  ``[*B, n_h, T, T]`` (sown as ``"attention_weights"``).

The attention layer's parameters are named and shaped like those of
``flax.linen.MultiHeadDotProductAttention`` (``query``, ``key``, ``value``, ``out``),
so the two can be run with the same weights.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def causal_mask(length: int) -> Bool[Array, "T T"]:
    """M[t, s] = True where position t may attend to s, i.e. s ≤ t."""
    return jnp.tril(jnp.ones((length, length), bool))


def sinusoidal_positions(length: int, d: int) -> Float[Array, "T d"]:
    r"""p_t[2i] = sin(t / 10000^{2i/d}), p_t[2i+1] = cos(t / 10000^{2i/d}) (Vaswani et al., 2017)."""
    t = jnp.arange(length)[:, None]
    freq = jnp.exp(-math.log(10000.0) * jnp.arange(0, d, 2) / d)
    p = jnp.zeros((length, d))
    p = p.at[:, 0::2].set(jnp.sin(t * freq))
    return p.at[:, 1::2].set(jnp.cos(t * freq[: d // 2]))


def attention_weights(q: Float[Array, "*B Tq H D"], k: Float[Array, "*B Tk H D"],
                      mask: Bool[Array, "*B Tq Tk"] | None = None) -> Float[Array, "*B H Tq Tk"]:
    r"""softmax_s(q_t · k_s / √d_h) over the allowed s: each row is a distribution."""
    scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    if mask is not None:
        scores = jnp.where(mask[..., None, :, :], scores, jnp.finfo(scores.dtype).min)
    return jax.nn.softmax(scores, axis=-1)


def attention(q: Float[Array, "*B Tq H D"], k: Float[Array, "*B Tk H D"], v: Float[Array, "*B Tk H D"],
              mask: Bool[Array, "*B Tq Tk"] | None = None) -> Float[Array, "*B Tq H D"]:
    """Scaled dot-product attention of every head: the weighted average of the values."""
    return jnp.einsum("...hqk,...khd->...qhd", attention_weights(q, k, mask), v)


class LayerCache(NamedTuple):
    keys: Float[Array, "*B L H D"]
    """k_s of every position written so far (zeros beyond)."""
    values: Float[Array, "*B L H D"]
    """v_s of every position written so far (zeros beyond)."""


Cache = tuple[LayerCache, ...]
"""One :class:`LayerCache` per block."""


class MultiHeadAttention(nn.Module):
    """n_h heads of causal self-attention, then the output projection W_O."""

    num_heads: int
    d_model: int

    def setup(self):
        head = self.d_model // self.num_heads
        self.query = nn.DenseGeneral((self.num_heads, head))
        self.key = nn.DenseGeneral((self.num_heads, head))
        self.value = nn.DenseGeneral((self.num_heads, head))
        self.out = nn.DenseGeneral(self.d_model, axis=(-2, -1))

    def __call__(self, x: Float[Array, "*B T d"], mask=None) -> Float[Array, "*B T d"]:
        q, k, v = self.query(x), self.key(x), self.value(x)
        self.sow("intermediates", "attention_weights", attention_weights(q, k, mask))
        return self.out(attention(q, k, v, mask))

    def decode(self, x: Float[Array, "*B 1 d"], cache: LayerCache, position) -> tuple[Array, LayerCache]:
        """Attend from one new position to itself and every cached earlier one."""
        q, k, v = self.query(x), self.key(x), self.value(x)
        axis = cache.keys.ndim - 3
        keys = jax.lax.dynamic_update_slice_in_dim(cache.keys, k.astype(cache.keys.dtype), position, axis)
        values = jax.lax.dynamic_update_slice_in_dim(cache.values, v.astype(cache.values.dtype), position, axis)
        allowed = (jnp.arange(keys.shape[axis]) <= position)[None, :]  # [1, L]
        return self.out(attention(q, keys, values, allowed)), LayerCache(keys, values)


class Block(nn.Module):
    """Pre-norm residual block: x + MHA(LN(x)), then + MLP(LN(·))."""

    d_model: int
    num_heads: int
    d_ff: int

    def setup(self):
        self.norm_attention = nn.LayerNorm()
        self.attention = MultiHeadAttention(self.num_heads, self.d_model)
        self.norm_mlp = nn.LayerNorm()
        self.mlp_in = nn.Dense(self.d_ff)
        self.mlp_out = nn.Dense(self.d_model)

    def mlp(self, x):
        return self.mlp_out(nn.gelu(self.mlp_in(self.norm_mlp(x))))

    def __call__(self, x, mask=None):
        x = x + self.attention(self.norm_attention(x), mask)
        return x + self.mlp(x)

    def decode(self, x, cache: LayerCache, position):
        y, cache = self.attention.decode(self.norm_attention(x), cache, position)
        x = x + y
        return x + self.mlp(x), cache


class Transformer(nn.Module):
    """Decoder-only transformer: tokens ``[*B, T]`` → logits ``[*B, T, V]``."""

    vocab_size: int
    """V, the number of token ids."""
    context_length: int = 16
    """L, positions available (the sinusoidal table's and the cache's length)."""
    d_model: int = 64
    """d, width of the embeddings and the residual stream."""
    num_heads: int = 4
    """n_h; d must be divisible by it."""
    num_layers: int = 2
    """Number of blocks."""
    d_ff: int = 256
    """Hidden width of each block's MLP."""
    positional: bool = True
    """Add sinusoidal positions; without them attention cannot tell positions apart."""

    def setup(self):
        if self.d_model % self.num_heads or self.d_model % 2:
            raise ValueError(f"d_model={self.d_model} must be even and divisible by num_heads={self.num_heads}")
        self.embed = nn.Embed(self.vocab_size, self.d_model)
        self.blocks = [Block(self.d_model, self.num_heads, self.d_ff) for _ in range(self.num_layers)]
        self.norm_final = nn.LayerNorm()
        self.head = nn.Dense(self.vocab_size)

    def embed_tokens(self, tokens: Int[Array, "*B T"]) -> Float[Array, "*B T d"]:
        """x^0 = E[y] + p (p = 0 without positions)."""
        x = self.embed(tokens)
        if self.positional:
            x = x + sinusoidal_positions(self.context_length, self.d_model)[: tokens.shape[-1]]
        return x

    def from_embeddings(self, x: Float[Array, "*B T d"]) -> tuple[Array, Array]:
        """(logits, hidden) from the input vectors x^0; for checks such as causality."""
        mask = causal_mask(x.shape[-2])
        for block in self.blocks:
            x = block(x, mask)
        hidden = self.norm_final(x)
        return self.head(hidden), hidden

    def __call__(self, tokens: Int[Array, "*B T"], return_hidden: bool = False):
        logits, hidden = self.from_embeddings(self.embed_tokens(tokens))
        return (logits, hidden) if return_hidden else logits

    def hidden(self, tokens: Int[Array, "*B T"]) -> Float[Array, "*B T d"]:
        """h_t, the final hidden states (after the last layer norm)."""
        return self.from_embeddings(self.embed_tokens(tokens))[1]

    def decode_step(self, token: Int[Array, "*B"], cache: Cache, position) -> tuple[Array, Array, Cache]:
        """(logits ``[*B, V]``, hidden ``[*B, d]``, cache) after reading ``token`` at ``position``."""
        x = self.embed(token)[..., None, :]
        if self.positional:
            p = sinusoidal_positions(self.context_length, self.d_model)
            x = x + jax.lax.dynamic_index_in_dim(p, position, keepdims=False)
        new_cache = []
        for block, layer_cache in zip(self.blocks, cache):
            x, layer_cache = block.decode(x, layer_cache, position)
            new_cache.append(layer_cache)
        hidden = self.norm_final(x)[..., 0, :]
        return self.head(hidden), hidden, tuple(new_cache)


def init_cache(model: Transformer, batch_shape: tuple[int, ...] = (), dtype=jnp.float32) -> Cache:
    """An empty key-value cache: zeros ``[*batch_shape, L, n_h, d_h]`` per block."""
    shape = (*batch_shape, model.context_length, model.num_heads, model.d_model // model.num_heads)
    return tuple(LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(model.num_layers))


def num_params(model: Transformer) -> int:
    """The parameter count in closed form (biases included; the output head is not tied)."""
    V, d, f = model.vocab_size, model.d_model, model.d_ff
    embedding = V * d
    attention = 4 * (d * d + d)  # W_Q, W_K, W_V, W_O with biases
    mlp = (d * f + f) + (f * d + d)
    norms = 2 * (2 * d)  # scale and bias of two layer norms
    head = d * V + V
    return embedding + model.num_layers * (attention + mlp + norms) + 2 * d + head
