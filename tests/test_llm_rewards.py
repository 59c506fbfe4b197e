"""Rewards on the book's language: the automaton against the grammar's own parser (every sentence,
corrupted sentences, cut-off rows), the JAX sentiment against grammar.sentiment, r* by hand,
exact match on every sum and every answer, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import grammar, rewards
from rlbook_lib.llm.tokenizer import BOS, EOS, PAD

TOK = grammar.TOKENIZER


def _python_grammatical(row) -> bool:
    words, ended = grammar.words_of(row)
    return bool(ended and grammar.is_grammatical(words) and np.all(np.asarray(row)[0] == BOS)
                and np.all(np.asarray(row)[list(np.asarray(row)).index(EOS) + 1:] == PAD))


def _corrupted(num: int, seed: int) -> np.ndarray:
    """Grammar sentences with one position (after BOS) replaced by a random token id."""
    rng = np.random.default_rng(seed)
    table = grammar.table().tokens
    rows = table[rng.integers(0, len(table), num)].copy()
    positions = rng.integers(1, grammar.CONTEXT_LENGTH, num)
    rows[np.arange(num), positions] = rng.integers(0, TOK.vocab_size, num)
    return rows


def test_automaton_accepts_every_sentence_of_the_grammar():
    table = grammar.table().tokens
    assert np.all(np.asarray(jax.jit(rewards.grammatical)(table)))


def test_automaton_agrees_with_the_parser_on_corrupted_and_cut_off_rows():
    rows = _corrupted(3000, seed=0)
    cut = grammar.table().tokens[::97].copy()
    cut[cut == EOS] = PAD  # no EOS: the reply ran out of context
    rows = np.concatenate([rows, cut, grammar.table().tokens[::101]])  # and some intact sentences
    got = np.asarray(jax.jit(rewards.grammatical)(rows))
    expected = np.array([_python_grammatical(r) for r in rows])
    np.testing.assert_array_equal(got, expected)
    assert 0.1 < expected.mean() < 0.9  # both outcomes occur, so the comparison can fail


def test_wrong_sums_are_not_grammatical():
    rows = TOK.encode_batch(["3 + 4 = 7 .", "3 + 4 = 8 .", "3 + 4 = 7", "the film was good ."], 16)
    np.testing.assert_array_equal(rewards.grammatical(rows), [True, False, False, True])


def test_sentiment_equals_the_grammar_on_words():
    rows = np.concatenate([_corrupted(2000, seed=1), grammar.table().tokens[::131]])
    got = np.asarray(jax.jit(rewards.sentiment)(rows))
    expected = np.array([grammar.sentiment(grammar.words_of(r)[0]) for r in rows])
    np.testing.assert_allclose(got, expected)
    assert np.any(expected != 0) and np.any(got < 0)


def test_true_reward_by_hand():
    weights = rewards.RewardWeights(sentiment=1.0, ungrammatical=4.0, length=0.1)
    rows = TOK.encode_batch(["the film was very good but bad .", "the film was good good good"], 16)
    mask = (rows != PAD) & (np.arange(16) >= 4)  # the reply after "<bos> the film was"
    expected = [1.0 * (2 * 1 + 1 * -1) - 0.0 - 0.1 * (5 + 1),  # "very good but bad ." + EOS
                1.0 * (1 + 1 + 1) - 4.0 - 0.1 * (3 + 1)]  # no "." before EOS: ungrammatical
    np.testing.assert_allclose(rewards.true_reward(rows, mask, weights), expected, rtol=1e-6)


def test_arithmetic_reward_on_every_sum_and_answer():
    pairs = rewards.arithmetic_pairs()
    assert pairs.shape == (100, 2)
    prompts = np.asarray(rewards.arithmetic_prompts(pairs))
    rows, expected = [], []
    for (a, b), prompt in zip(pairs, prompts):
        for c in range(2 * grammar.MAX_OPERAND + 1):
            row = np.full(16, PAD, np.int32)
            row[:5] = prompt
            row[5:8] = [TOK.token_id(str(c)), TOK.token_id("."), EOS]
            rows.append(row)
            expected.append(float(a + b == c))
    np.testing.assert_array_equal(jax.jit(rewards.arithmetic_reward)(np.array(rows)), expected)
    # Right number, wrong form: no ".", no EOS, or an extra token.
    near = TOK.encode_batch(["3 + 4 = 7", "3 + 4 = 7 . .", "3 + 4 = 7 7 ."], 16)
    np.testing.assert_array_equal(rewards.arithmetic_reward(near), [0.0, 0.0, 0.0])


def test_prompts_and_split():
    assert TOK.decode_batch(rewards.review_prompts())[0] == f"the {grammar.NOUNS[0]} was"
    assert TOK.decode(rewards.arithmetic_prompts([[3, 4]])[0]) == "3 + 4 ="
    train, held = rewards.arithmetic_split(jax.random.key(0), 30)
    assert len(train) == 70 and len(held) == 30
    assert not set(map(tuple, train)) & set(map(tuple, held))


def test_bad_input():
    with pytest.raises(ValueError, match="summands"):
        rewards.arithmetic_prompts([[3, 10]])
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        rewards.arithmetic_prompts([3, 4])
    with pytest.raises(ValueError, match="same shape"):
        rewards.true_reward(jnp.zeros((2, 16), jnp.int32), jnp.zeros((2, 15), bool))
    with pytest.raises(ValueError, match="num_held_out"):
        rewards.arithmetic_split(jax.random.key(0), 100)
