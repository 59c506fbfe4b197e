r"""The book's synthetic language: short reviews that carry sentiment, and sums.

Every sentence is one of two kinds, drawn by a small probabilistic grammar:

.. code-block:: text

    S       → REVIEW (prob. P_REVIEW)  |  SUM (1 − P_REVIEW)
    REVIEW  → "the" NOUN "was" ADJP(z) TAIL(z) "."      z ∈ {+, −} with prob. 1/2 each
    TAIL(z) → ε (P_STOP) | "and" ADJP(z) TAIL(z) (P_AND) | "but" ADJP(−z) TAIL(−z) (P_BUT)
    ADJP(z) → ["very"] ADJ(z)                           "very" with prob. P_VERY
    SUM     → a "+" b "=" c "."                         a, b uniform on 0..MAX_OPERAND, c = a + b

A review has at most ``MAX_ADJECTIVES`` adjective phrases (TAIL is ε after the
last). The latent polarity z picks the adjectives: "and" keeps it, "but" flips
it, so adjectives of the same sentiment occur together, the way they do in real
text. A model that predicts the next word well must therefore track sentiment.

**Two tasks for the RLHF chapters.** Reviews carry a preference: every adjective
has a known sentiment score (:data:`SENTIMENT`), and :func:`sentiment` is a hidden
"true" reward r* of a review. Sums carry a verifiable answer: a prompt
``<bos> 3 + 4 =`` has exactly one correct completion, checked by :func:`parse`.

**Unambiguous.** The first adjective reveals z and each connective fixes the next
polarity, so every sentence has exactly one derivation. Its probability is the
product of the choices along that derivation (:func:`parse` returns its log), and
the entropy of the language is the expected sum of the entropies of the choices
made (:func:`entropy`). The language is finite, so :func:`table` lists every
sentence with its probability; :func:`sample` draws from that list under jit.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlbook_lib.llm import tokenizer as tokenizer_lib

P_REVIEW = 0.6
"""Probability that a sentence is a review (else a sum)."""
P_VERY = 0.25
"""Probability that an adjective is preceded by "very"."""
P_STOP, P_AND, P_BUT = 0.5, 0.3, 0.2
"""After an adjective phrase (below the maximum): end the review, add one with "and", or with "but"."""
MAX_ADJECTIVES = 3
"""Adjective phrases per review, at most."""
MAX_OPERAND = 9
"""Summands a and b are 0..MAX_OPERAND."""

NOUNS = ("film", "book", "meal", "phone", "hotel", "song")
"""Uniformly chosen subjects of a review."""
POSITIVE = ("good", "great", "fun", "lovely", "superb")
"""Adjectives of polarity +, in order of ``ADJECTIVE_PROBS``."""
NEGATIVE = ("bad", "awful", "dull", "boring", "terrible")
"""Adjectives of polarity −, in order of ``ADJECTIVE_PROBS``."""
ADJECTIVE_PROBS = (0.4, 0.25, 0.15, 0.1, 0.1)
"""Probability of each adjective given its polarity."""
SENTIMENT = {"good": 1.0, "great": 2.0, "fun": 1.0, "lovely": 1.0, "superb": 2.0,
             "bad": -1.0, "awful": -2.0, "dull": -1.0, "boring": -1.0, "terrible": -2.0}
"""Sentiment score of each adjective ("very" doubles it)."""
NUMBERS = tuple(str(i) for i in range(2 * MAX_OPERAND + 1))
"""Number words 0..2·MAX_OPERAND: summands and sums."""
WORDS = ("the", "was", "very", "and", "but", ".", "+", "=") + NOUNS + POSITIVE + NEGATIVE + NUMBERS
"""Every word of the language."""
TOKENIZER = tokenizer_lib.Tokenizer(WORDS)
"""The word-level tokenizer of the language (vocabulary: specials, then ``WORDS``)."""
MAX_WORDS = 3 + 3 * MAX_ADJECTIVES - 1 + 1
"""Words in the longest sentence ("the N was very A and very A but very A .")."""
CONTEXT_LENGTH = 16
"""Token positions of a sequence: BOS, up to ``MAX_WORDS`` words, EOS, then PAD."""

_POLARITY_WORDS = {+1: POSITIVE, -1: NEGATIVE}


class Parse(NamedTuple):
    """The derivation of a well-formed sentence, as :func:`parse` reads it."""

    kind: str
    """"review" or "sum"."""
    log_prob: float
    """log P(sentence) under the grammar; −inf for a sum with a wrong answer."""
    correct: bool
    """For a sum, whether c = a + b; True for a review."""


def _entropy(probs) -> float:
    return -sum(p * math.log(p) for p in probs if p > 0)


def _continue_probs(num_adjectives: int) -> dict[str, float]:
    """The TAIL choice after the num_adjectives-th phrase."""
    if num_adjectives >= MAX_ADJECTIVES:
        return {".": 1.0}
    return {".": P_STOP, "and": P_AND, "but": P_BUT}


def parse(words: Sequence[str]) -> Parse | None:
    """Parse a sentence (its words, without BOS/EOS); None if it is not well formed.

    A well-formed sum with a wrong answer parses, with ``correct=False`` and
    probability 0 (the grammar never writes it).
    """
    words = list(words)
    if len(words) == 6 and words[1] == "+" and words[3] == "=" and words[5] == ".":
        a, b, c = words[0], words[2], words[4]
        operands = NUMBERS[: MAX_OPERAND + 1]
        if a not in operands or b not in operands or c not in NUMBERS:
            return None
        correct = int(a) + int(b) == int(c)
        log_prob = math.log(1 - P_REVIEW) - 2 * math.log(MAX_OPERAND + 1) if correct else -math.inf
        return Parse("sum", log_prob, correct)
    if len(words) < 5 or words[0] != "the" or words[1] not in NOUNS or words[2] != "was":
        return None
    log_prob = math.log(P_REVIEW) - math.log(len(NOUNS))
    i, count, polarity = 3, 0, None
    while True:  # one adjective phrase per pass, then the TAIL choice after it
        very = i < len(words) and words[i] == "very"
        log_prob += math.log(P_VERY if very else 1 - P_VERY)
        i += very
        if i >= len(words):
            return None
        if polarity is None:  # the first adjective reveals z
            polarity = +1 if words[i] in POSITIVE else -1 if words[i] in NEGATIVE else None
            if polarity is None:
                return None
            log_prob += math.log(0.5)
        options = _POLARITY_WORDS[polarity]
        if words[i] not in options:
            return None
        log_prob += math.log(ADJECTIVE_PROBS[options.index(words[i])])
        i, count = i + 1, count + 1
        choices = _continue_probs(count)
        if i >= len(words) or words[i] not in choices:
            return None
        log_prob += math.log(choices[words[i]])
        if words[i] == ".":
            return Parse("review", log_prob, True) if i == len(words) - 1 else None
        polarity = -polarity if words[i] == "but" else polarity
        i += 1


def is_grammatical(words: Sequence[str]) -> bool:
    """Whether the grammar can write this sentence (a sum only with its right answer)."""
    p = parse(words)
    return p is not None and p.correct


def sentiment(words: Sequence[str]) -> float:
    """r*, the hidden sentiment of a text: the sum of its adjectives' scores, doubled
    after "very". Defined for any list of words (0 for a sum)."""
    total, factor = 0.0, 1.0
    for w in words:
        if w == "very":
            factor = 2.0
            continue
        total += factor * SENTIMENT.get(w, 0.0)
        factor = 1.0
    return total


def expected_tokens() -> float:
    """E[number of predicted tokens per sentence]: its words plus EOS (BOS is given)."""
    q = 1 - P_STOP
    adjectives = sum(q**k for k in range(MAX_ADJECTIVES))  # E[#phrases]
    review = 3 + adjectives * (1 + P_VERY) + (adjectives - 1) + 1 + 1  # ..., connectives, ".", EOS
    return P_REVIEW * review + (1 - P_REVIEW) * (6 + 1)


def entropy() -> float:
    r"""H, the entropy of a sentence in nats: the expected sum of the entropies of the
    grammar's choices (exact, because each sentence has one derivation)."""
    q = 1 - P_STOP
    adjectives = sum(q**k for k in range(MAX_ADJECTIVES))
    tails = sum(q**k for k in range(MAX_ADJECTIVES - 1))  # TAIL choices that are not forced
    phrase = _entropy([P_VERY, 1 - P_VERY]) + _entropy(ADJECTIVE_PROBS)
    review = math.log(len(NOUNS)) + math.log(2) + adjectives * phrase + tails * _entropy([P_STOP, P_AND, P_BUT])
    total_sum = 2 * math.log(MAX_OPERAND + 1)
    return _entropy([P_REVIEW, 1 - P_REVIEW]) + P_REVIEW * review + (1 - P_REVIEW) * total_sum


def entropy_rate() -> float:
    """H / E[tokens]: nats per predicted token, the lowest cross-entropy any model can reach."""
    return entropy() / expected_tokens()


def _reviews():
    """Every review with its probability, written by the generative side of the grammar."""
    def tails(polarity, count):
        for very, p_very in ((True, P_VERY), (False, 1 - P_VERY)):
            for adjective, p_adj in zip(_POLARITY_WORDS[polarity], ADJECTIVE_PROBS):
                head = ["very"] * very + [adjective]
                for word, p_next in _continue_probs(count + 1).items():
                    p = p_very * p_adj * p_next
                    if word == ".":
                        yield head + ["."], p
                    else:
                        nxt = -polarity if word == "but" else polarity
                        for rest, p_rest in tails(nxt, count + 1):
                            yield head + [word] + rest, p * p_rest
    for noun in NOUNS:
        for polarity in (+1, -1):
            for rest, p in tails(polarity, 0):
                yield ["the", noun, "was"] + rest, P_REVIEW / len(NOUNS) * 0.5 * p


class Table(NamedTuple):
    tokens: np.ndarray
    """[N, CONTEXT_LENGTH] int32: every sentence of the language, BOS ... EOS, PAD."""
    log_probs: np.ndarray
    """[N] float64: log P(sentence)."""


@functools.lru_cache(maxsize=1)
def table() -> Table:
    """Every sentence of the language with its log-probability (about 50,000 rows)."""
    sentences = list(_reviews())
    p_sum = (1 - P_REVIEW) / (MAX_OPERAND + 1) ** 2
    for a in range(MAX_OPERAND + 1):
        for b in range(MAX_OPERAND + 1):
            sentences.append(([str(a), "+", str(b), "=", str(a + b), "."], p_sum))
    tokens = TOKENIZER.encode_batch([" ".join(w) for w, _ in sentences], CONTEXT_LENGTH)
    return Table(tokens, np.log([p for _, p in sentences]))


def sample(key: jax.Array, num: int) -> jax.Array:
    """``[num, CONTEXT_LENGTH]`` int32 token ids of sentences drawn from the grammar
    (each BOS ... EOS, then PAD). Works under jit; deterministic in ``key``."""
    t = table()
    cdf = np.cumsum(np.exp(t.log_probs))  # inverse-CDF sampling over the list of sentences
    u = jax.random.uniform(key, (num,), jnp.float32, 0.0, float(cdf[-1]))
    index = jnp.minimum(jnp.searchsorted(jnp.asarray(cdf, jnp.float32), u, side="right"), len(cdf) - 1)
    return jnp.asarray(t.tokens)[index]


def words_of(tokens: Sequence[int]) -> tuple[list[str], bool]:
    """The words of one token row after BOS, and whether the row reached EOS."""
    ids = [int(i) for i in np.asarray(tokens)]
    _ = ids.pop(0) if ids and ids[0] == tokenizer_lib.BOS else None
    ended = tokenizer_lib.EOS in ids
    ids = ids[: ids.index(tokenizer_lib.EOS)] if ended else ids
    if any(i in (tokenizer_lib.PAD, tokenizer_lib.BOS) for i in ids):
        return [TOKENIZER.vocab[i] for i in ids], False  # special token inside: not a sentence
    return [TOKENIZER.vocab[i] for i in ids], ended


def grammatical_fraction(tokens) -> float:
    """Fraction of rows of ``[n, L]`` token ids that are a grammatical sentence ended by EOS."""
    rows = np.asarray(tokens)
    ok = [ended and is_grammatical(words) for words, ended in map(words_of, rows)]
    return float(np.mean(ok)) if ok else float("nan")
