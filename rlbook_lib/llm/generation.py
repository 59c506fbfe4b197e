r"""Sampling from the transformer, and the log-probabilities of what it wrote.

Generating a reply is an episode: the state is the prompt and the tokens so far,
the action is the next token y_t ~ π_θ(· | x, y_{<t}), and the episode ends when
EOS is written (terminated) or the context is full (truncated). Its
log-probability is the sum over the generated tokens,

.. math::

    \log \pi_\theta(y \mid x) = \sum_{t} \log \pi_\theta(y_t \mid x, y_{<t}),

which :func:`sequence_log_probs` computes for a batch in one forward pass.

**Sampling.** :func:`sampling_logits` reshapes the next-token distribution before
drawing: dividing the logits by a temperature τ (τ → 0 approaches greedy, τ = 1 is
π_θ itself), keeping only the ``top_k`` most likely tokens, and keeping the
smallest set of most likely tokens whose probability reaches ``top_p`` (nucleus
sampling; Holtzman et al., 2020). Tokens tied at a cut-off are all kept.

**Key-value cache.** :func:`generate` runs as one ``lax.scan`` over positions.
With ``use_cache=True`` each step feeds only the newest token through the model and
reads the keys and values of earlier positions from a cache, O(L) work per step;
with ``use_cache=False`` each step recomputes the whole sequence, O(L²). Both
draw with the same keys, so they write the same tokens.

**Shapes.** Prompts are ``[B, P]`` int token ids, each from BOS, padded on the
right with PAD. Outputs are ``[B, L]`` with L the model's ``context_length``:
position t holds token y_t, and the log-probability at position t is that of y_t
given the tokens before it (0 at masked positions).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from rlbook_lib.llm import _checks
from rlbook_lib.llm import transformer as transformer_lib
from rlbook_lib.llm.tokenizer import EOS, PAD


class Generation(NamedTuple):
    tokens: Int[Array, "B L"]
    """The prompt, the generated tokens (EOS included), then PAD."""
    mask: Bool[Array, "B L"]
    """True at generated positions, up to and including EOS: the actions of the episode."""
    log_probs: Float[Array, "B L"]
    """log π_θ(y_t | y_{<t}) of each generated token under the model itself (τ = 1, no cut-off); 0 elsewhere."""
    sampling_log_probs: Float[Array, "B L"]
    """Log-probability under the distribution actually sampled (after τ, top-k, top-p); 0 elsewhere."""
    terminated: Bool[Array, "B"]
    """Whether EOS was written; False means the context ran out (truncation)."""


def sampling_logits(logits: Float[Array, "*B V"], temperature=1.0, top_k: int = 0,
                    top_p=1.0) -> Float[Array, "*B V"]:
    """Logits of the distribution to sample: divided by τ, then cut to the top-k and
    the top-p nucleus (−inf outside). ``top_k = 0`` and ``top_p = 1`` cut nothing."""
    logits = logits / temperature
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits >= kth, logits, -jnp.inf)
    ordered = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(ordered, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # probability of the more likely tokens
    keep = (before < top_p) | (top_p >= 1.0)
    threshold = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits >= threshold, logits, -jnp.inf)


def _pick(log_probs: Float[Array, "*B V"], token: Int[Array, "*B"]) -> Float[Array, "*B"]:
    return jnp.take_along_axis(log_probs, token[..., None], axis=-1)[..., 0]


@functools.partial(jax.jit, static_argnames=("model", "top_k", "use_cache"))
def _generate(model, params, prompts, key, temperature, top_p, top_k, use_cache) -> Generation:
    batch, length = prompts.shape[0], model.context_length
    prompt_length = jnp.sum(prompts != PAD, axis=-1)  # [B]
    tokens = jnp.full((batch, length), PAD, jnp.int32).at[:, : prompts.shape[1]].set(prompts)
    cache = transformer_lib.init_cache(model, (batch,))

    def step(carry, inputs):
        tokens, done, cache = carry
        t, step_key = inputs
        current = jax.lax.dynamic_index_in_dim(tokens, t, axis=1, keepdims=False)  # [B]
        if use_cache:
            logits, _, cache = model.apply(params, current, cache, t, method="decode_step")
        else:  # recompute the whole sequence and read position t
            logits = jax.lax.dynamic_index_in_dim(model.apply(params, tokens), t, axis=1, keepdims=False)
        cut = sampling_logits(logits, temperature, top_k, top_p)
        sampled = jax.random.categorical(step_key, cut, axis=-1)
        forced = t + 1 < prompt_length  # still inside the prompt
        generated = ~forced & ~done
        given = jax.lax.dynamic_index_in_dim(tokens, t + 1, axis=1, keepdims=False)
        token = jnp.where(forced, given, jnp.where(done, PAD, sampled)).astype(jnp.int32)
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, token[:, None], t + 1, axis=1)
        done = done | (generated & (token == EOS))
        log_p = jnp.where(generated, _pick(jax.nn.log_softmax(logits), token), 0.0)
        log_q = jnp.where(generated, _pick(jax.nn.log_softmax(cut), token), 0.0)
        return (tokens, done, cache), (generated, log_p, log_q)

    steps = (jnp.arange(length - 1), jax.random.split(key, length - 1))
    (tokens, done, _), (mask, log_p, log_q) = jax.lax.scan(step, (tokens, jnp.zeros(batch, bool), cache), steps)
    pad = lambda x: jnp.concatenate([jnp.zeros_like(x[:1]), x], axis=0).T  # [L-1, B] → [B, L]
    return Generation(tokens, pad(mask), pad(log_p), pad(log_q), done)


def _check_prompts(model, prompts) -> None:
    if np.ndim(prompts) != 2:
        raise ValueError(f"prompts must have shape [B, P] (vmap or reshape for others), got {np.shape(prompts)}")
    if np.shape(prompts)[1] >= model.context_length:
        raise ValueError(f"a prompt of {np.shape(prompts)[1]} tokens leaves no room in the context of "
                         f"{model.context_length} tokens; prompts must be shorter than the context")
    _checks.check_tokens("prompts", prompts, model.vocab_size)
    if not _checks.is_traced(prompts):
        p = np.asarray(prompts)
        after_pad = np.cumsum(p == PAD, axis=-1) > 0
        if np.any(after_pad & (p != PAD)) or np.any(p[:, 0] == PAD):
            raise ValueError("each prompt must be non-empty, start at position 0 and be padded with PAD "
                             "on the right only")


def generate(model: transformer_lib.Transformer, params, prompts: Int[Array, "B P"], key: jax.Array, *,
             temperature=1.0, top_k: int = 0, top_p=1.0, use_cache: bool = True) -> Generation:
    """Continue each prompt until EOS or the end of the context; see :class:`Generation`.

    Runs as one ``lax.scan`` under jit. ``temperature`` and ``top_p`` may be traced
    (vmapped); ``top_k`` and ``use_cache`` are static. The tokens depend only on
    ``key`` and the inputs, with or without the cache.
    """
    _check_prompts(model, prompts)
    _checks.check_sampling(temperature, top_k, top_p, model.vocab_size)
    prompts = jnp.asarray(prompts, jnp.int32)
    return _generate(model, params, prompts, key, jnp.float32(temperature), jnp.float32(top_p),
                     int(top_k), bool(use_cache))


def _check_scored(model, tokens, mask) -> None:
    if np.shape(tokens) != np.shape(mask) or np.ndim(tokens) < 1:
        raise ValueError(f"tokens and mask must have the same shape [*B, T], got {np.shape(tokens)} "
                         f"and {np.shape(mask)}")
    if np.shape(tokens)[-1] > model.context_length:
        raise ValueError(f"sequences of {np.shape(tokens)[-1]} tokens exceed the context of {model.context_length}")
    _checks.check_tokens("tokens", tokens, model.vocab_size)
    if not _checks.is_traced(mask) and np.any(np.asarray(mask)[..., 0]):
        raise ValueError("mask[..., 0] must be False: the first token (BOS) has no log-probability")


def token_log_probs(model: transformer_lib.Transformer, params, tokens: Int[Array, "*B T"],
                    mask: Bool[Array, "*B T"]) -> Float[Array, "*B T"]:
    """log π_θ(y_t | y_{<t}) at every position where ``mask`` is True (0 elsewhere), in one pass."""
    _check_scored(model, tokens, mask)
    return _token_log_probs(model, params, jnp.asarray(tokens, jnp.int32), jnp.asarray(mask, bool))


@functools.partial(jax.jit, static_argnames="model")
def _token_log_probs(model, params, tokens, mask):
    log_probs = jax.nn.log_softmax(model.apply(params, tokens)[..., :-1, :], axis=-1)
    picked = _pick(log_probs, tokens[..., 1:])
    picked = jnp.concatenate([jnp.zeros_like(picked[..., :1]), picked], axis=-1)
    return jnp.where(mask, picked, 0.0)


def sequence_log_probs(model: transformer_lib.Transformer, params, tokens: Int[Array, "*B T"],
                       mask: Bool[Array, "*B T"]) -> Float[Array, "*B"]:
    """log π_θ(y | x): the sum of :func:`token_log_probs` over the masked positions."""
    return token_log_probs(model, params, tokens, mask).sum(-1)
