r"""Rewards on the book's language that we know exactly: the hidden r* of reviews and exact match on sums.

RLHF learns a reward from comparisons because the true one is unknown. On our synthetic
language (:mod:`rlbook_lib.llm.grammar`) we *choose* the truth, so every experiment can
show it beside what was learned.

**Reviews: a hidden preference r*.** A reply y to a prompt x (e.g. ``<bos> the film was``)
is the row x ⊕ y; its true reward (:func:`true_reward`) is

.. math::

    r^*(x, y) = w_s\, \mathrm{sentiment}(x \oplus y) - w_g\, [x \oplus y \text{ not grammatical}] - w_\ell\, |y|,

with the sentiment of :func:`rlbook_lib.llm.grammar.sentiment` (adjective scores, doubled
after "very"), a fluency penalty w_g for text the grammar cannot write (including a reply
cut off by the end of the context without EOS), and a cost w_ℓ per generated token (EOS
included). Raters who prefer the more positive review, written fluently and briefly, are
simulated from it (:mod:`rlbook_lib.llm.preferences`).

**Sums: a verifiable reward.** A prompt ``<bos> a + b =`` has one right completion,
``c .`` then EOS with c = a + b; :func:`arithmetic_reward` is 1 for exactly that reply and
0 for anything else. No reward model is needed: the answer is checked.

Everything here is a pure JAX function of token rows ``[*B, L]`` (BOS first, PAD after the
end), so scoring runs inside the same ``jit`` as generation. Grammaticality is decided by a
finite automaton (:func:`automaton`) that accepts exactly the sentences of the grammar:
the language is finite, so a table of transitions suffices, read one token at a time by a
``lax.scan``. The tests check it against the grammar's own parser.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from rlbook_lib.llm import grammar
from rlbook_lib.llm.tokenizer import BOS, EOS, PAD

_ID = grammar.TOKENIZER.token_id
V = grammar.TOKENIZER.vocab_size


@dataclasses.dataclass(frozen=True)
class RewardWeights:
    """Weights of the hidden reward r* of reviews (module docstring)."""

    sentiment: float = 1.0
    """w_s, per unit of sentiment (an adjective scores ±1 or ±2, doubled after "very")."""
    ungrammatical: float = 4.0
    """w_g, subtracted from a text the grammar cannot write (or that does not end with EOS)."""
    length: float = 0.1
    """w_ℓ, subtracted per generated token (EOS included)."""


# ---------------------------------------------------------------- the grammar as an automaton


class Automaton(NamedTuple):
    """A deterministic finite automaton over token ids, run from position 1 (after BOS)."""

    transitions: np.ndarray
    """[S, V] int32: the next state after reading a token; state 0 is dead (rejects forever)."""
    start: int
    """The state after BOS."""
    accept: int
    """The only accepting state: after EOS (PAD keeps it there)."""


def _step(state, word: str):
    """The grammar's next state, or None (dead). States are tuples that name what comes next."""
    kind = state[0]
    numbers = grammar.NUMBERS
    if kind == "start":
        if word == "the":
            return ("noun",)
        return ("plus", int(word)) if word in numbers[: grammar.MAX_OPERAND + 1] else None
    if kind == "noun":
        return ("was",) if word in grammar.NOUNS else None
    if kind == "was":
        return ("adj", 0, 0, False) if word == "was" else None
    if kind == "adj":  # expect ["very"] ADJ of polarity p (0: either, for the first phrase)
        _, count, polarity, very = state
        if word == "very" and not very:
            return ("adj", count, polarity, True)
        q = +1 if word in grammar.POSITIVE else -1 if word in grammar.NEGATIVE else None
        return ("tail", count + 1, q) if q is not None and polarity in (0, q) else None
    if kind == "tail":  # after phrase number `count` of polarity p
        _, count, polarity = state
        if word == ".":
            return ("eos",)
        if count < grammar.MAX_ADJECTIVES and word in ("and", "but"):
            return ("adj", count, polarity if word == "and" else -polarity, False)
        return None
    if kind == "plus":
        return ("b", state[1]) if word == "+" else None
    if kind == "b":
        return ("=", state[1] + int(word)) if word in numbers[: grammar.MAX_OPERAND + 1] else None
    if kind == "=":
        return ("c", state[1]) if word == "=" else None
    if kind == "c":
        return ("dot",) if word == str(state[1]) else None
    if kind == "dot":
        return ("eos",) if word == "." else None
    return None


@functools.lru_cache(maxsize=1)
def automaton() -> Automaton:
    """The automaton of the grammar's sentences, built by exploring :func:`_step` from the start."""
    names = {("dead",): 0, ("start",): 1, ("accept",): 2}
    rows = {0: [0] * V, 2: [2 if i == PAD else 0 for i in range(V)]}
    frontier = [("start",)]
    while frontier:
        state = frontier.pop()
        row = [0] * V
        for i, word in enumerate(grammar.TOKENIZER.vocab):
            nxt = ("accept",) if state == ("eos",) and i == EOS else _step(state, word)
            if nxt is None:
                continue
            if nxt not in names:
                names[nxt] = len(names)
                frontier.append(nxt)
            row[i] = names[nxt]
        rows[names[state]] = row
    table = np.array([rows[s] for s in range(len(names))], np.int32)
    return Automaton(table, names[("start",)], names[("accept",)])


def grammatical(tokens: Int[Array, "*B L"]) -> Bool[Array, "*B"]:
    """Whether each row is BOS, a sentence of the grammar, EOS, then only PAD.

    Agrees with ``grammar.is_grammatical`` of the row's words and ``ended`` from
    :func:`rlbook_lib.llm.grammar.words_of`: a row cut off before EOS is not grammatical.
    """
    dfa = automaton()
    table = jnp.asarray(dfa.transitions)
    tokens = jnp.asarray(tokens, jnp.int32)
    state = jnp.full(tokens.shape[:-1], dfa.start, jnp.int32)
    state, _ = jax.lax.scan(lambda s, t: (table[s, t], None), state, jnp.moveaxis(tokens[..., 1:], -1, 0))
    return (state == dfa.accept) & (tokens[..., 0] == BOS)


# ---------------------------------------------------------------- reviews: r*


def _word_scores() -> np.ndarray:
    scores = np.zeros(V, np.float32)
    for word, s in grammar.SENTIMENT.items():
        scores[_ID(word)] = s
    return scores


def sentiment(tokens: Int[Array, "*B L"]) -> Float[Array, "*B"]:
    """Sentiment of each row's text up to its first EOS: Σ adjective scores, doubled right after "very".

    The JAX twin of :func:`rlbook_lib.llm.grammar.sentiment` (which reads words).
    """
    tokens = jnp.asarray(tokens, jnp.int32)
    before_eos = jnp.cumsum(tokens == EOS, axis=-1) == 0
    previous = jnp.concatenate([jnp.full_like(tokens[..., :1], PAD), tokens[..., :-1]], axis=-1)
    factor = jnp.where(previous == _ID("very"), 2.0, 1.0)
    return jnp.sum(jnp.where(before_eos, factor * jnp.asarray(_word_scores())[tokens], 0.0), axis=-1)


def true_reward(tokens: Int[Array, "*B L"], mask: Bool[Array, "*B L"],
                weights: RewardWeights = RewardWeights()) -> Float[Array, "*B"]:
    r"""r*(x, y) = w_s sentiment − w_g [not grammatical] − w_ℓ |y| of each row (module docstring).

    ``mask`` marks the generated tokens y (as in :class:`rlbook_lib.llm.generation.Generation`).
    """
    if np.shape(tokens) != np.shape(mask):
        raise ValueError(f"tokens and mask must have the same shape [*B, L], got {np.shape(tokens)} "
                         f"and {np.shape(mask)}")
    length = jnp.sum(jnp.asarray(mask, jnp.float32), axis=-1)
    return (weights.sentiment * sentiment(tokens)
            - weights.ungrammatical * (~grammatical(tokens)).astype(jnp.float32)
            - weights.length * length)


def review_prompts() -> Int[Array, "N 4"]:
    """``<bos> the NOUN was`` for every noun of the language: the prompts x of the review task."""
    return jnp.asarray(grammar.TOKENIZER.encode_batch([f"the {n} was" for n in grammar.NOUNS], 4, eos=False))


# ---------------------------------------------------------------- sums: exact match

PROMPT_LENGTH = 5
"""Tokens of an arithmetic prompt ``<bos> a + b =``."""


def arithmetic_pairs() -> np.ndarray:
    """[(MAX_OPERAND + 1)², 2] every pair (a, b) of summands, a-major."""
    n = grammar.MAX_OPERAND + 1
    return np.stack(np.divmod(np.arange(n * n), n), axis=1)


def arithmetic_prompts(pairs) -> Int[Array, "N 5"]:
    """``<bos> a + b =`` for each row (a, b) of ``pairs`` [N, 2] (``ValueError`` outside 0..MAX_OPERAND)."""
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.size == 0:
        raise ValueError(f"pairs must have shape [N, 2] with N >= 1, got {pairs.shape}")
    if pairs.min() < 0 or pairs.max() > grammar.MAX_OPERAND:
        raise ValueError(f"summands must lie in 0..{grammar.MAX_OPERAND}, got {pairs.min()}..{pairs.max()}")
    return jnp.asarray(grammar.TOKENIZER.encode_batch([f"{a} + {b} =" for a, b in pairs], PROMPT_LENGTH,
                                                      eos=False))


def arithmetic_split(key: jax.Array, num_held_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(train pairs, held-out pairs): a random split of :func:`arithmetic_pairs`, deterministic in key."""
    pairs = arithmetic_pairs()
    if not 0 < num_held_out < len(pairs):
        raise ValueError(f"num_held_out must lie in 1..{len(pairs) - 1}, got {num_held_out}")
    order = np.asarray(jax.random.permutation(key, len(pairs)))
    return pairs[np.sort(order[num_held_out:])], pairs[np.sort(order[:num_held_out])]


def arithmetic_answers(pairs, length: int = grammar.CONTEXT_LENGTH) -> Int[Array, "N L"]:
    """``<bos> a + b = c . <eos>`` then PAD, the right reply after each prompt of :func:`arithmetic_prompts`."""
    arithmetic_prompts(pairs)  # validates the pairs
    texts = [f"{a} + {b} = {a + b} ." for a, b in np.asarray(pairs)]
    return jnp.asarray(grammar.TOKENIZER.encode_batch(texts, length))


def _number_values() -> np.ndarray:
    values = np.full(V, -1, np.int32)  # −1: not a number
    for word in grammar.NUMBERS:
        values[_ID(word)] = int(word)
    return values


def arithmetic_reward(tokens: Int[Array, "*B L"]) -> Float[Array, "*B"]:
    """1 if the row is ``<bos> a + b = c . <eos>`` with c = a + b (the exact reply), else 0.

    Reads a and b from the prompt at positions 1 and 3 and checks the reply at positions
    5, 6, 7 (``PROMPT_LENGTH`` = 5); whatever follows EOS is not read.
    """
    tokens = jnp.asarray(tokens, jnp.int32)
    if tokens.shape[-1] < PROMPT_LENGTH + 3:
        raise ValueError(f"rows must have at least {PROMPT_LENGTH + 3} tokens, got {tokens.shape[-1]}")
    value = jnp.asarray(_number_values())
    a, b = value[tokens[..., 1]], value[tokens[..., 3]]
    prompt_ok = ((tokens[..., 0] == BOS) & (a >= 0) & (tokens[..., 2] == _ID("+")) & (b >= 0)
                 & (tokens[..., 4] == _ID("=")))
    reply_ok = ((value[tokens[..., 5]] == a + b) & (tokens[..., 6] == _ID(".")) & (tokens[..., 7] == EOS))
    return (prompt_ok & reply_ok).astype(jnp.float32)
