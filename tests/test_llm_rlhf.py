"""PPO-RLHF on tokens: per-token KL rewards sum to the sequence log-ratio through the pipeline
(against generation.sequence_log_probs), GAE over a reply's tokens against scipy.signal.lfilter
and a hand sum, the PPO update at ratio 1 against the policy gradient, values read before each
action, bad settings; and (slow) train vmaps over β with the adaptive controller following its formula,
and PPO raises the true reward over 4 seeds with KL below a bound."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from rlbook_lib.llm import generation, grammar, pretrain, reward_model, rewards, rlhf
from rlbook_lib.llm import transformer as transformer_lib

TRUNK = transformer_lib.Transformer(vocab_size=grammar.TOKENIZER.vocab_size, context_length=grammar.CONTEXT_LENGTH,
                                    d_model=16, num_heads=2, num_layers=1, d_ff=32)
VALUE = reward_model.RewardModel(TRUNK)
CONFIG = rlhf.Config(batch_size=8, num_minibatches=2, num_epochs=1, init_beta=0.3)


def _score(tokens, mask):
    return rewards.sentiment(tokens)


@functools.lru_cache(maxsize=1)
def _batch(seed=0):
    keys = jax.random.split(jax.random.key(seed), 4)
    dummy = jnp.zeros((1, 16), jnp.int32)
    params = rlhf.Params(TRUNK.init(keys[0], dummy), reward_model.init_params(VALUE, keys[1]))
    ref = TRUNK.init(keys[2], dummy)  # another model, so the log-ratios are far from 0
    collect = jax.jit(lambda k: rlhf.collect(k, CONFIG, TRUNK, VALUE, params, ref, rewards.review_prompts(),
                                             _score, rewards.true_reward, CONFIG.init_beta))
    return params, ref, collect(keys[3])


def test_per_token_kl_rewards_sum_to_the_sequence_log_ratio():
    params, ref, batch = _batch()
    log_ratio = (generation.sequence_log_probs(TRUNK, params.policy, batch.tokens, batch.mask)
                 - generation.sequence_log_probs(TRUNK, ref, batch.tokens, batch.mask))
    assert np.all(np.abs(log_ratio) > 0.1)
    np.testing.assert_allclose(batch.rewards.sum(-1), batch.score - CONFIG.init_beta * log_ratio, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(batch.score, rewards.sentiment(batch.tokens))
    assert np.all(np.asarray(batch.rewards)[~np.asarray(batch.mask)] == 0)


def test_gae_over_tokens_equals_lfilter():
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    mask = np.zeros(16, bool)
    mask[4:11] = True  # the reply: positions 4..10, the last one terminal
    gamma, lambda_ = 0.9, 0.8
    adv, ret = rlhf.token_advantages(r, v, mask, gamma, lambda_)
    rr, vv = r[4:11].astype(np.float64), v[4:11].astype(np.float64)
    delta = rr + gamma * np.r_[vv[1:], 0.0] - vv
    expected = scipy.signal.lfilter([1.0], [1.0, -gamma * lambda_], delta[::-1])[::-1]
    np.testing.assert_allclose(np.asarray(adv)[4:11], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret)[4:11], expected + vv, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(adv)[~mask] == 0)
    # γ = λ = 1: the advantage is the sum of the remaining rewards minus V(s_t).
    adv1, _ = rlhf.token_advantages(r, v, mask, 1.0, 1.0)
    np.testing.assert_allclose(np.asarray(adv1)[4:11], np.cumsum(rr[::-1])[::-1] - vv, rtol=1e-5, atol=1e-5)


def test_values_are_read_before_each_action():
    params, _, batch = _batch()
    heads = VALUE.apply(params.value, batch.tokens)
    t = np.argmax(np.asarray(batch.mask), axis=1)  # first reply token of each row
    np.testing.assert_allclose(batch.values[np.arange(8), t], heads[np.arange(8), t - 1], rtol=1e-6)


def test_update_at_ratio_one_is_the_policy_gradient():
    params, _, batch = _batch()
    grad_fn = jax.jit(jax.grad(rlhf.loss, has_aux=True), static_argnums=(2, 3, 4))
    grads, info = grad_fn(params, batch, CONFIG, TRUNK, VALUE)
    mask = jnp.asarray(batch.mask, jnp.float32)

    def surrogate(theta):  # −(1/N) Σ_t m_t Â_t log π_θ(y_t|s_t), Â fixed
        logp = generation.token_log_probs(TRUNK, theta, batch.tokens, batch.mask)
        return -jnp.sum(mask * batch.advantages * logp) / jnp.sum(mask)

    expected = jax.jit(jax.grad(surrogate))(params.policy)
    for a, b in zip(jax.tree.leaves(grads.policy), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert float(info[3]) == 0.0  # no ratio is clipped at θ = θold
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(expected)) > 1e-3


@pytest.mark.slow  # a whole compiled run, even if a tiny one
def test_train_vmaps_over_beta_and_the_adaptive_controller_follows_its_formula():
    config = rlhf.Config(num_updates=3, batch_size=8, num_minibatches=2, num_epochs=1, adaptive_kl=True,
                         kl_target=0.5, kl_horizon=100.0)
    policy = TRUNK.init(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))
    train = rlhf.make_train(config, TRUNK, policy, VALUE, reward_model.init_params(VALUE, jax.random.key(1), policy),
                            rewards.review_prompts(), rewards.true_reward, rewards.true_reward)
    betas = jnp.array([0.05, 0.1, 0.2])
    _, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(2), 3), betas)
    beta, kl = np.asarray(metrics.beta, np.float64), np.asarray(metrics.kl, np.float64)
    np.testing.assert_allclose(beta[:, 0], betas)
    for t in range(2):  # β ← β (1 + clip(KL/KL_target − 1, ±0.2) n/H), n = B = 8, H = 100
        error = np.clip(kl[:, t] / 0.5 - 1, -0.2, 0.2)
        np.testing.assert_allclose(beta[:, t + 1], beta[:, t] * (1 + error * 8 / 100), rtol=1e-5)
    assert np.all(beta[:, 1] != beta[:, 0])


def test_bad_config():
    with pytest.raises(ValueError, match="divisible"):
        rlhf.Config(batch_size=10, num_minibatches=4)
    with pytest.raises(ValueError, match="beta"):
        rlhf.Config(init_beta=-0.1)
    with pytest.raises(ValueError, match="lambda_"):
        rlhf.Config(lambda_=1.5)
    with pytest.raises(ValueError, match="kl_target"):
        rlhf.Config(adaptive_kl=True, kl_target=0.0)


PRETRAINED = pretrain.Config(num_steps=400, warmup_steps=50, num_snapshots=2)
"""The book's architecture, pre-trained briefly (the same config as test_llm_policy_gradient's, so the
two slow tests share one cached pre-training)."""
KL_BOUND = 6.0
"""Nats per reply: the KL to the reference stays below this while the true reward rises (measured: at
most about 3.5 after 16 updates)."""


@pytest.mark.slow
def test_ppo_rlhf_raises_the_true_reward_with_bounded_kl():
    pre = pretrain.pretrain(PRETRAINED, jax.random.key(0))
    policy = PRETRAINED.model
    value_init = reward_model.init_params(reward_model.RewardModel(policy), jax.random.key(1), pre.params)
    config = rlhf.Config(num_updates=16, batch_size=32, num_epochs=2, num_minibatches=2, init_beta=0.1)
    train = rlhf.make_train(config, policy, pre.params, reward_model.RewardModel(policy), value_init,
                            rewards.review_prompts(), rewards.true_reward, rewards.true_reward)
    _, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(2), 4))
    first = np.asarray(metrics.true_reward[:, :3]).mean(1)
    last = np.asarray(metrics.true_reward[:, -4:]).mean(1)
    assert np.median(last - first) > 1.5, (first, last)  # measured: 3 to 4
    assert np.all(last > first)
    assert np.all(np.asarray(metrics.kl) < KL_BOUND), np.asarray(metrics.kl).max()
    assert np.all(np.asarray(metrics.beta) == np.float32(0.1))
