"""DPO trainer: the reply mask by hand and against generation's, the loss equals dpo.dpo_loss on the
replies' sequence log-probabilities and is log 2 at θ = θ_ref, its gradient equals the score-function
closed form −(β/B) Σ σ(−β u_i)(∇ log π(y^c_i) − ∇ log π(y^r_i)), a short run (vmapped over β)
lowers the loss and raises the implicit-reward accuracy, evaluate_policy's KL is 0 at π_ref, and
bad input raises."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import dpo, dpo_train, generation, grammar, reward_model, rewards
from rlbook_lib.llm import transformer as transformer_lib
from rlbook_lib.llm.tokenizer import EOS, PAD

TOK = grammar.TOKENIZER
TINY = transformer_lib.Transformer(vocab_size=TOK.vocab_size, context_length=grammar.CONTEXT_LENGTH,
                                   d_model=16, num_heads=2, num_layers=1, d_ff=32)
PROMPT_LENGTH = 4  # <bos> the NOUN was


def _init(seed):
    return TINY.init(jax.random.key(seed), jnp.zeros((1, grammar.CONTEXT_LENGTH), jnp.int32))


@functools.lru_cache(maxsize=1)
def _all_data():
    """128 comparisons of two replies of the tiny random model, labelled by raters following r*."""
    sample = reward_model.policy_sampler(TINY, _init(0), rewards.review_prompts())
    simulate = jax.jit(lambda k: reward_model.simulate_comparisons(k, sample, rewards.true_reward, 128))
    return simulate(jax.random.key(0))


def _data(n, part):
    """Disjoint slices of :func:`_all_data`: n comparisons from row 16 · part on."""
    return jax.tree.map(lambda x: x[16 * part: 16 * part + n], _all_data())


def test_reply_mask_by_hand_and_equals_the_generation_mask():
    rows = TOK.encode_batch(["the film was good .", "the book was very bad and dull ."], 16)
    mask = np.asarray(dpo_train.reply_mask(rows, PROMPT_LENGTH))
    np.testing.assert_array_equal(mask[0], (np.arange(16) >= 4) & (np.arange(16) <= 6))  # good . <eos>
    np.testing.assert_array_equal(mask[1], (np.arange(16) >= 4) & (np.arange(16) <= 9))  # very bad and dull . <eos>
    cut = np.array([[1] + [TOK.token_id("good")] * 15])  # no EOS: the reply runs to the end
    np.testing.assert_array_equal(dpo_train.reply_mask(cut, 4)[0], np.arange(16) >= 4)
    gen = jax.jit(lambda k: generation.generate(TINY, _init(0), rewards.review_prompts(), k))(jax.random.key(1))
    np.testing.assert_array_equal(dpo_train.reply_mask(gen.tokens, PROMPT_LENGTH), gen.mask)
    assert np.any(gen.tokens == EOS) and np.any(gen.tokens == PAD)


def test_loss_equals_dpo_loss_on_reply_log_probs_and_is_log_2_at_the_reference():
    data, ref, params, beta = _data(8, 1), _init(0), _init(5), 0.7
    pairs = dpo_train.prepare(TINY, ref, data, PROMPT_LENGTH)
    chosen, rejected = jnp.where(data.prefers_a[:, None], data.tokens_a, data.tokens_b), \
        jnp.where(data.prefers_a[:, None], data.tokens_b, data.tokens_a)
    for row, mask in zip(np.asarray(chosen), np.asarray(pairs.mask_chosen)):  # the reply, row by row
        end = 4 + list(row[4:]).index(EOS) if EOS in row[4:] else 15
        np.testing.assert_array_equal(mask, (np.arange(16) >= 4) & (np.arange(16) <= end))
    logp = lambda p, t, m: generation.sequence_log_probs(TINY, p, t, m)
    expected = dpo.dpo_loss(logp(params, chosen, pairs.mask_chosen), logp(params, rejected, pairs.mask_rejected),
                            logp(ref, chosen, pairs.mask_chosen), logp(ref, rejected, pairs.mask_rejected), beta)
    value, metrics = dpo_train.loss(params, TINY, pairs, beta)
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
    assert abs(float(value) - math.log(2)) > 1e-3  # θ ≠ θ_ref here
    at_ref, metrics = dpo_train.loss(ref, TINY, pairs, beta)
    assert float(at_ref) == pytest.approx(math.log(2), abs=1e-6)
    assert float(metrics.margin) == 0.0 and float(metrics.accuracy) == 0.5


def test_gradient_equals_the_score_function_closed_form():
    data, ref, params, beta = _data(8, 2), _init(0), _init(6), 0.5
    pairs = dpo_train.prepare(TINY, ref, data, PROMPT_LENGTH)
    grad = jax.grad(lambda p: dpo_train.loss(p, TINY, pairs, beta)[0])(params)

    def score(tokens, mask):  # ∇_θ log π_θ(y|x) of every row: [B, ...] per leaf
        one = lambda t, m: jax.grad(lambda p: generation.sequence_log_probs(TINY, p, t[None], m[None])[0])(params)
        return jax.vmap(one)(tokens, mask)

    logp = lambda t, m: generation.sequence_log_probs(TINY, params, t, m)
    u = (logp(pairs.chosen, pairs.mask_chosen) - pairs.ref_chosen) \
        - (logp(pairs.rejected, pairs.mask_rejected) - pairs.ref_rejected)
    weight = -beta * jax.nn.sigmoid(-beta * u) / u.shape[0]  # −(β/B) σ(−β u_i)
    assert np.ptp(np.asarray(u)) > 0.1  # the pairs are weighted differently
    closed = jax.tree.map(lambda c, r: jnp.tensordot(weight, c - r, axes=1),
                          score(pairs.chosen, pairs.mask_chosen), score(pairs.rejected, pairs.mask_rejected))
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(closed)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_a_short_run_lowers_the_loss_and_raises_the_implicit_accuracy():
    config = dpo_train.Config(batch_size=16, num_epochs=8, learning_rate=3e-3, eval_every=4)
    train = dpo_train.make_train(config, TINY, _init(0), _data(64, 3), PROMPT_LENGTH, held_out=_data(32, 0))
    betas = jnp.array([0.1, 1.0])
    result = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2), betas)
    loss, acc = np.asarray(result.metrics.loss), np.asarray(result.metrics.accuracy)
    assert loss.shape == (2, config.num_steps(64)) == (2, 32)
    np.testing.assert_allclose(loss[:, 0], math.log(2), atol=1e-6)  # θ = θ_ref at the first step
    np.testing.assert_allclose(result.held_out.loss[:, 0], math.log(2), atol=1e-6)
    assert result.held_out.loss.shape == (2, 32 // 4 + 1)
    last = slice(-8, None)  # the last two epochs
    assert np.all(loss[:, last].mean(1) < math.log(2) - 0.1), loss[:, last].mean(1)
    assert np.all(acc[:, last].mean(1) > 0.75), acc[:, last].mean(1)
    assert np.all(np.asarray(result.metrics.margin)[:, last].mean(1) > 0)
    print("loss first/last two epochs", loss[:, 0], loss[:, last].mean(1), "accuracy", acc[:, :8].mean(1),
          acc[:, last].mean(1), "held-out loss", np.asarray(result.held_out.loss)[:, [0, -1]],
          "held-out accuracy", np.asarray(result.held_out.accuracy)[:, [0, -1]])
    # the β row of the vmap is that β's own run
    alone = jax.jit(train)(jax.random.split(jax.random.key(0), 2)[1], 1.0)
    np.testing.assert_allclose(alone.metrics.loss, loss[1], rtol=1e-4, atol=1e-5)


def test_evaluate_policy_kl_is_zero_at_the_reference_and_positive_after_a_change():
    ref, prompts = _init(0), rewards.review_prompts()
    run = jax.jit(lambda k, p: dpo_train.evaluate_policy(k, TINY, p, ref, prompts, rewards.true_reward, 64))
    at_ref = run(jax.random.key(0), ref)
    assert float(at_ref.kl) == 0.0 and float(at_ref.kl_stderr) == 0.0
    assert 1 <= float(at_ref.length) <= 12 and np.isfinite(float(at_ref.reward))
    other = run(jax.random.key(0), _init(7))
    assert float(other.kl) > 3 * float(other.kl_stderr) > 0


def test_bad_input_raises():
    data = _data(8, 1)
    with pytest.raises(ValueError, match="beta"):
        dpo_train.Config(beta=-0.1)
    with pytest.raises(ValueError, match="beta"):
        dpo_train.make_train(dpo_train.Config(batch_size=4, eval_every=1), TINY, _init(0), data, 4)(
            jax.random.key(0), -1.0)
    with pytest.raises(ValueError, match="batch_size"):
        dpo_train.Config(batch_size=0)
    with pytest.raises(ValueError, match="shape"):
        dpo_train.make_train(dpo_train.Config(batch_size=4), TINY, _init(0),
                             data._replace(tokens_b=data.tokens_b[:7]), 4)
    with pytest.raises(ValueError, match="shape"):
        dpo_train.make_train(dpo_train.Config(batch_size=4), TINY, _init(0),
                             data._replace(prefers_a=data.prefers_a[:3]), 4)
    with pytest.raises(ValueError, match="prompt_length"):
        dpo_train.make_train(dpo_train.Config(batch_size=4), TINY, _init(0), data, 16)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        dpo_train.make_train(dpo_train.Config(batch_size=16), TINY, _init(0), data, 4)
    with pytest.raises(ValueError, match="multiple of eval_every"):
        dpo_train.make_train(dpo_train.Config(batch_size=4, num_epochs=3, eval_every=4), TINY, _init(0), data, 4)
