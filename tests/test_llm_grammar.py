"""The book's language: tokenizer round trips, the parser against the list of all
sentences, perturbed sentences rejected, and the entropy rate against enumeration and
Monte Carlo."""

import math

import jax
import numpy as np
import pytest

from rlbook_lib.llm import grammar, tokenizer

TOK = grammar.TOKENIZER


def test_tokenizer_round_trip():
    for text in ["the film was very good and fun .", "3 + 4 = 7 .", "", "but but 18"]:
        ids = TOK.encode(text)
        assert ids[0] == tokenizer.BOS and ids[-1] == tokenizer.EOS
        assert TOK.decode(ids) == text
        assert TOK.decode(TOK.encode(text, bos=False, eos=False)) == text
    rows = grammar.table().tokens[::997]
    texts = TOK.decode_batch(rows)
    np.testing.assert_array_equal(TOK.encode_batch(texts, grammar.CONTEXT_LENGTH), rows)


def test_tokenizer_ids_and_errors():
    assert TOK.vocab[: 3] == tokenizer.SPECIALS
    assert TOK.vocab_size == 3 + len(grammar.WORDS)
    assert TOK.encode("the", bos=False, eos=False) == [3]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        TOK.encode("the movie was good")
    with pytest.raises(ValueError, match="token ids in"):
        TOK.decode([1, TOK.vocab_size])
    with pytest.raises(ValueError, match="distinct"):
        tokenizer.Tokenizer(("a", "a"))
    with pytest.raises(ValueError, match="white space"):
        tokenizer.Tokenizer(("a b",))
    with pytest.raises(ValueError, match="more than length"):
        TOK.encode_batch(["the film was good ."], 4)


def test_table_is_a_distribution_of_distinct_sentences():
    t = grammar.table()
    assert math.isclose(np.exp(t.log_probs).sum(), 1.0, rel_tol=1e-12)
    assert len({tuple(r) for r in t.tokens}) == len(t.tokens)  # one derivation per sentence
    lengths = (t.tokens != tokenizer.PAD).sum(-1)
    assert lengths.max() == grammar.MAX_WORDS + 2 <= grammar.CONTEXT_LENGTH


def test_parser_accepts_every_sentence_with_its_probability():
    t = grammar.table()
    for row, log_prob in zip(t.tokens, t.log_probs):
        words, ended = grammar.words_of(row)
        parse = grammar.parse(words)
        assert ended and parse is not None and parse.correct
        assert math.isclose(parse.log_prob, log_prob, rel_tol=1e-12), " ".join(words)


def perturbations(words, rng):
    """Delete a word, swap two neighbours, or replace a word by another of the vocabulary."""
    i = int(rng.integers(len(words)))
    yield words[:i] + words[i + 1:]
    if i + 1 < len(words) and words[i] != words[i + 1]:
        yield words[:i] + [words[i + 1], words[i]] + words[i + 2:]
    for w in rng.choice(grammar.WORDS, 5):
        yield words[:i] + [str(w)] + words[i + 1:]


def test_parser_rejects_perturbed_sentences():
    t, rng = grammar.table(), np.random.default_rng(0)
    language = {tuple(grammar.words_of(r)[0]) for r in t.tokens}
    rejected = 0
    for row in t.tokens[rng.choice(len(t.tokens), 400, replace=False)]:
        for bad in perturbations(grammar.words_of(row)[0], rng):
            if tuple(bad) not in language:  # a perturbation may land on another sentence
                assert not grammar.is_grammatical(bad), " ".join(bad)
                rejected += 1
    assert rejected > 1500
    assert grammar.parse("the film was good and bad .".split()) is None  # "and" keeps the polarity
    assert grammar.parse("the film was good but bad .".split()).correct
    assert grammar.parse("the film was good and fun and great and good .".split()) is None  # 4 phrases
    wrong = grammar.parse("3 + 4 = 8 .".split())
    assert wrong.kind == "sum" and not wrong.correct and wrong.log_prob == -math.inf
    assert grammar.parse("12 + 4 = 16 .".split()) is None  # summands are 0..9


def test_entropy_matches_enumeration():
    t = grammar.table()
    p = np.exp(t.log_probs)
    np.testing.assert_allclose(grammar.entropy(), -(p * t.log_probs).sum(), rtol=1e-12)
    predicted = (t.tokens != tokenizer.PAD).sum(-1) - 1  # words + EOS
    np.testing.assert_allclose(grammar.expected_tokens(), (p * predicted).sum(), rtol=1e-12)


def test_entropy_rate_matches_monte_carlo():
    tokens = np.asarray(grammar.sample(jax.random.key(0), 20000))
    log_p = np.array([grammar.parse(grammar.words_of(r)[0]).log_prob for r in tokens])
    predicted = (tokens != tokenizer.PAD).sum(-1) - 1
    h, se = -log_p.mean(), log_p.std() / np.sqrt(len(log_p))
    assert abs(h - grammar.entropy()) < 4 * se
    assert abs(predicted.mean() - grammar.expected_tokens()) < 4 * predicted.std() / np.sqrt(len(predicted))
    rate = -log_p.sum() / predicted.sum()
    assert abs(rate - grammar.entropy_rate()) < 0.02


def test_sample_frequencies_and_determinism():
    a = np.asarray(grammar.sample(jax.random.key(1), 20000))
    np.testing.assert_array_equal(a, np.asarray(jax.jit(grammar.sample, static_argnums=1)(jax.random.key(1), 20000)))
    is_sum = a[:, 2] == TOK.token_id("+")
    assert abs(is_sum.mean() - (1 - grammar.P_REVIEW)) < 4 * np.sqrt(0.24 / 20000)
    assert grammar.grammatical_fraction(a) == 1.0


def test_sentiment_by_hand():
    assert grammar.sentiment("the film was very good but awful .".split()) == 2 * 1 + (-2)
    assert grammar.sentiment("the song was great and very superb .".split()) == 2 + 2 * 2
    assert grammar.sentiment("3 + 4 = 7 .".split()) == 0


def test_grammatical_fraction_needs_eos():
    good = TOK.encode("the film was good .")
    cut = good[:-1]
    rows = TOK.encode_batch(["the film was good ."], 16)
    assert grammar.grammatical_fraction(rows) == 1.0
    assert grammar.words_of(cut) == ("the film was good .".split(), False)
    assert grammar.grammatical_fraction(np.array([cut + [0] * (16 - len(cut))])) == 0.0
