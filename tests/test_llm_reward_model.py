"""Reward model: the score is read at the last token, the trunk starts from the pretrained
parameters, a zero head has loss log 2, pairs share their prompt, bad settings raise; and (slow)
on a toy whose r* is linear in the words (sentiment minus a length cost) the trained model
recovers r*'s ordering and comes close to the Bayes-optimal accuracy on held-out pairs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from rlbook_lib.llm import grammar, reward_model, rewards
from rlbook_lib.llm import transformer as transformer_lib
from rlbook_lib.llm.tokenizer import PAD

TOK = grammar.TOKENIZER
TRUNK = transformer_lib.Transformer(vocab_size=TOK.vocab_size, context_length=grammar.CONTEXT_LENGTH,
                                    d_model=32, num_heads=2, num_layers=1, d_ff=64)
MODEL = reward_model.RewardModel(TRUNK)


def _predicted(tokens):
    return (tokens != PAD) & (jnp.arange(tokens.shape[-1]) > 0)


def grammar_pairs(key, n):
    """Pairs of sentences drawn from the grammar itself (no policy needed)."""
    key_a, key_b = jax.random.split(key)
    a, b = grammar.sample(key_a, n), grammar.sample(key_b, n)
    return a, _predicted(a), b, _predicted(b)


def linear_reward(tokens, mask):
    """r* = sentiment − 0.1 · length: a weighted count of words."""
    return rewards.sentiment(tokens) - 0.1 * jnp.sum(mask, axis=-1)


def test_score_is_read_at_the_last_token():
    params = reward_model.init_params(MODEL, jax.random.key(0))
    rows = TOK.encode_batch(["the film was good .", "3 + 4 = 7 .", "the book was very bad and dull ."], 16)
    values = np.asarray(MODEL.apply(params, rows))
    last = [1 + 5, 1 + 6, 1 + 8]  # BOS, the words, then EOS
    np.testing.assert_array_equal(reward_model.last_index(rows), last)
    np.testing.assert_allclose(reward_model.score(MODEL, params, rows), values[np.arange(3), last], rtol=1e-6)


def test_trunk_starts_from_the_pretrained_parameters():
    pretrained = TRUNK.init(jax.random.key(1), jnp.zeros((1, 16), jnp.int32))
    params = reward_model.init_params(MODEL, jax.random.key(2), pretrained)
    for a, b in zip(jax.tree.leaves(params["params"]["transformer"]), jax.tree.leaves(pretrained)):
        np.testing.assert_array_equal(a, b)
    assert set(params["params"]) == {"transformer", "head"}
    # Its hidden states are the pretrained model's.
    rows = TOK.encode_batch(["the film was good ."], 16)
    hidden = TRUNK.apply(pretrained, rows, method="hidden")
    head = params["params"]["head"]
    np.testing.assert_allclose(MODEL.apply(params, rows), hidden @ head["kernel"][:, 0] + head["bias"][0],
                               rtol=1e-5, atol=1e-6)


def test_zero_head_has_loss_log_2():
    params = reward_model.init_params(MODEL, jax.random.key(0))
    params["params"]["head"] = jax.tree.map(jnp.zeros_like, params["params"]["head"])
    rows = grammar.sample(jax.random.key(3), 8)
    np.testing.assert_allclose(reward_model.loss(MODEL, params, rows, rows[::-1]), math.log(2), rtol=1e-6)


def test_policy_sampler_pairs_share_their_prompt():
    params = TRUNK.init(jax.random.key(4), jnp.zeros((1, 16), jnp.int32))
    sample = reward_model.policy_sampler(TRUNK, params, rewards.review_prompts())
    tokens_a, mask_a, tokens_b, mask_b = jax.jit(sample, static_argnums=1)(jax.random.key(5), 16)
    np.testing.assert_array_equal(tokens_a[:, :4], tokens_b[:, :4])
    assert not np.any(mask_a[:, :4]) and np.all(mask_a[:, 4]) and np.all(mask_b[:, 4])


def test_bad_config():
    with pytest.raises(ValueError, match="multiple of batch_size"):
        reward_model.Config(num_comparisons=100, batch_size=64)
    with pytest.raises(ValueError, match="num_epochs"):
        reward_model.Config(num_epochs=0)
    with pytest.raises(ValueError, match="step_size"):
        reward_model.Config(learning_rate=-1.0)


@pytest.mark.slow
def test_reward_model_recovers_a_linear_reward_and_nears_bayes_accuracy():
    config = reward_model.Config(num_comparisons=1024, num_held_out=512, batch_size=64, num_epochs=4,
                                 learning_rate=3e-3)
    init = reward_model.init_params(MODEL, jax.random.key(0))
    train = reward_model.make_train(config, MODEL, init, grammar_pairs, linear_reward)
    result = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(1), 2))
    held = result.held_out
    # Before training the scores are noise: accuracy far from what r* allows.
    untrained = reward_model.evaluate(MODEL, init, reward_model.simulate_comparisons(
        jax.random.key(2), grammar_pairs, linear_reward, 512))
    assert float(untrained.expected_accuracy) < float(untrained.bayes_accuracy) - 0.1
    gap = np.asarray(held.bayes_accuracy - held.expected_accuracy)
    assert np.median(gap) < 0.05, gap
    assert np.all(np.asarray(held.accuracy) > 0.7)
    for i in range(2):
        scores = np.r_[held.score_a[i], held.score_b[i]]
        true = np.r_[held.true_a[i], held.true_b[i]]
        assert scipy.stats.spearmanr(scores, true).statistic > 0.8
    # By hand: the model orders four reviews as r* does (r* = 4 − 0.6, 1 − 0.5, −1 − 0.5, −4 − 0.6).
    rows = TOK.encode_batch([f"the film was {w} ." for w in ("very superb", "good", "bad", "very terrible")], 16)
    params = jax.tree.map(lambda x: x[0], result.params)
    assert np.all(np.diff(np.asarray(reward_model.score(MODEL, params, rows))) < 0)
