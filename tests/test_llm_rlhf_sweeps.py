"""Sweeps in one compiled program: a reward model trained on the first n comparisons (n vmapped),
and PPO-RLHF with the adaptive controller's horizon vmapped (H = ∞ is a fixed β)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import grammar, reward_model, rewards, rlhf
from rlbook_lib.llm import transformer as transformer_lib
from rlbook_lib.llm.tokenizer import PAD

TRUNK = transformer_lib.Transformer(vocab_size=grammar.TOKENIZER.vocab_size, context_length=grammar.CONTEXT_LENGTH,
                                    d_model=16, num_heads=2, num_layers=1, d_ff=32)
RM = reward_model.RewardModel(TRUNK)
RM_CONFIG = reward_model.Config(num_comparisons=32, num_held_out=8, batch_size=8, num_epochs=2)


def _pairs(key, n, spoil_after=None):
    key_a, key_b = jax.random.split(key)
    a, b = grammar.sample(key_a, n), grammar.sample(key_b, n)
    if spoil_after is not None:  # replace the comparisons after the first `spoil_after` by others
        a = a.at[spoil_after:].set(b[spoil_after:])
    mask = lambda t: (t != PAD) & (jnp.arange(t.shape[-1]) > 0)
    return a, mask(a), b, mask(b)


def _train(sampler):
    init = reward_model.init_params(RM, jax.random.key(0))
    return reward_model.make_train(RM_CONFIG, RM, init, sampler, rewards.true_reward)


@pytest.mark.slow  # three tiny compiled trainings
def test_reward_model_num_used_all_is_the_default_and_ignores_later_comparisons():
    key = jax.random.key(1)
    head = lambda r: np.asarray(r.params["params"]["head"]["kernel"])
    default = jax.jit(_train(_pairs))(key)
    first8 = jax.jit(jax.vmap(_train(_pairs), in_axes=(None, 0)))(key, jnp.array([8, 32]))
    np.testing.assert_allclose(head(first8)[1], head(default), rtol=1e-4, atol=1e-6)  # n = N: the default
    spoiled = jax.jit(jax.vmap(_train(lambda k, n: _pairs(k, n, 8)), in_axes=(None, 0)))(key, jnp.array([8, 32]))
    np.testing.assert_allclose(head(first8)[0], head(spoiled)[0], rtol=1e-6)  # only the first 8 matter
    assert not np.allclose(head(first8)[1], head(spoiled)[1])  # with all 32, the spoiled ones do


@pytest.mark.slow  # a tiny compiled RL run
def test_vmapped_horizon_infinite_is_a_fixed_beta():
    kwargs = dict(num_updates=3, batch_size=8, num_minibatches=2, num_epochs=1, kl_target=0.5, kl_horizon=100.0)
    policy = TRUNK.init(jax.random.key(0), jnp.zeros((1, 16), jnp.int32))
    value_init = reward_model.init_params(RM, jax.random.key(1), policy)
    make = lambda config: rlhf.make_train(config, TRUNK, policy, RM, value_init, rewards.review_prompts(),
                                          rewards.true_reward, rewards.true_reward)
    keys = jax.random.split(jax.random.key(2), 2)
    _, adaptive = jax.jit(jax.vmap(make(rlhf.Config(adaptive_kl=True, **kwargs))))(
        keys, jnp.array([0.2, 0.2]), jnp.array([jnp.inf, 100.0]))
    np.testing.assert_array_equal(adaptive.beta[0], np.full(3, np.float32(0.2)))  # H = ∞: β never moves
    beta, kl = np.asarray(adaptive.beta[1], np.float64), np.asarray(adaptive.kl[1], np.float64)
    for t in range(2):  # β ← β (1 + clip(KL/KL_target − 1, ±0.2) n/H), n = 8, H = 100
        np.testing.assert_allclose(beta[t + 1], beta[t] * (1 + np.clip(kl[t] / 0.5 - 1, -0.2, 0.2) * 8 / 100), rtol=1e-5)
