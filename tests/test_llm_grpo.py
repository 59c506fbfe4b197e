"""GRPO: group advantages, the clipped loss by hand, the three token averages by hand, k3 stable
at log-ratios of ±20 (float64 reference), the ~0 loss with a non-zero gradient on the first
update, and the bias of the k3 gradient by exact enumeration on a categorical."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import grpo


def test_group_advantages_have_zero_mean_and_unit_std_per_group():
    rewards = np.random.default_rng(0).normal(size=(6, 5)) * 3 + 1
    advantages = np.asarray(jax.jit(jax.vmap(grpo.group_advantages))(rewards))
    np.testing.assert_allclose(advantages.mean(axis=1), 0.0, atol=1e-6)
    expected = (rewards - rewards.mean(1, keepdims=True)) / (rewards.std(1, keepdims=True) + 1e-4)  # float64
    np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-6)
    # a group whose rewards are all equal carries no signal
    np.testing.assert_allclose(grpo.group_advantages(np.array([1.0, 1.0, 1.0])), 0.0, atol=1e-6)
    # by hand: rewards 0, 0, 1, 1 have mean ½ and std ½
    np.testing.assert_allclose(grpo.group_advantages(np.array([0.0, 0.0, 1.0, 1.0]), eps=0.0), [-1, -1, 1, 1],
                               rtol=1e-6)


def test_clipped_token_loss_by_hand():
    logp = np.log(np.array([0.6, 0.3, 0.2]))
    old_logp = np.log(np.array([0.4, 0.3, 0.4]))  # ratios 1.5, 1, 0.5
    losses = grpo.token_losses(logp, old_logp, logp, 1.0, clip_eps=0.2, beta=0.0)
    np.testing.assert_allclose(losses, [-min(1.5, 1.2), -1.0, -0.5], rtol=1e-6)  # Â = 1: clip above only
    losses = grpo.token_losses(logp, old_logp, logp, -2.0, clip_eps=0.2, beta=0.0)
    np.testing.assert_allclose(losses, [2.0 * 1.5, 2.0, 2.0 * 0.8], rtol=1e-6)  # Â < 0: clip below only
    grad = jax.grad(lambda lp: jnp.sum(grpo.token_losses(lp, old_logp, logp, 1.0, 0.2, 0.0)))(jnp.asarray(logp))
    assert float(grad[0]) == 0.0 and float(grad[1]) != 0.0  # the clipped token has no gradient


def test_three_token_averages_by_hand():
    losses = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    mask = np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])  # lengths 1 and 3
    assert float(grpo.aggregate(losses, mask, "sequence_mean")) == pytest.approx((1.0 / 1 + 60.0 / 3) / 2)
    assert float(grpo.aggregate(losses, mask, "token_mean")) == pytest.approx(61.0 / 4)
    assert float(grpo.aggregate(losses, mask, "constant")) == pytest.approx(61.0 / (2 * 4))
    assert float(grpo.aggregate(losses, mask, "constant", max_length=10)) == pytest.approx(61.0 / (2 * 10))


def test_k3_is_stable_at_log_ratios_of_plus_minus_20():
    x = np.array([-20.0, -5.0, -1e-4, 1e-6, 1e-4, 0.3, 20.0], np.float32)
    logp = np.zeros_like(x)  # log-ratio log π_ref − log π_θ = x exactly
    k3 = np.asarray(grpo.kl_penalty(logp, logp, x))
    x64 = x.astype(np.float64)
    reference = np.expm1(x64) - x64
    assert np.all(np.isfinite(k3))
    np.testing.assert_allclose(k3, reference, rtol=1e-5)
    grad = np.asarray(jax.grad(lambda lp: jnp.sum(grpo.kl_penalty(lp, lp, x)))(jnp.asarray(logp)))
    np.testing.assert_allclose(grad, -np.expm1(x64), rtol=1e-5)  # ∂k3/∂log π_θ = 1 − ρ^ref
    # the naive float32 form exp(x) − 1 − x loses every digit near x = 0, which is why expm1 is used
    naive = np.exp(x[4]) - np.float32(1) - x[4]
    assert abs(naive - reference[4]) / reference[4] > 1e-2


def one_step_batch():
    """Logits of a tiny per-position softmax policy, sampled tokens and masks of unequal lengths."""
    k_logits, k_tokens = jax.random.split(jax.random.key(0))
    logits = jax.random.normal(k_logits, (4, 6, 5))  # B = 4 responses, T = 6, vocabulary 5
    tokens = jax.random.randint(k_tokens, (4, 6), 0, 5)
    lengths = np.array([2, 6, 3, 5])
    mask = (np.arange(6)[None, :] < lengths[:, None]).astype(np.float32)
    return logits, tokens, mask, lengths


def token_logp(logits, tokens):
    return jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[..., None], axis=-1)[..., 0]


def test_first_update_loss_is_zero_but_its_gradient_is_not():
    logits, tokens, mask, lengths = one_step_batch()
    advantages = grpo.group_advantages(jnp.array([1.0, 0.0, 0.0, 1.0]))  # one group, zero mean

    def loss(theta, aggregation="sequence_mean"):
        logp = token_logp(theta, tokens)
        # first step after sampling from the reference: π_θ = π_θold = π_ref in value
        return grpo.grpo_loss(logp, logp, logp, mask, advantages, aggregation=aggregation)[0]

    assert abs(float(jax.jit(loss)(logits))) < 1e-6
    grad = jax.jit(jax.grad(loss))(logits)
    # it is the policy gradient −(1/B) Σ_i Â_i (1/|y_i|) Σ_t ∇ log π_θ(y_it)
    weights = advantages[:, None] * mask / lengths[:, None] / 4
    expected = jax.grad(lambda t: -jnp.sum(weights * token_logp(t, tokens)))(logits)
    assert float(jnp.linalg.norm(grad)) > 0.05
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    # DAPO's token mean weighs responses by length, so its value is not 0 with unequal lengths
    assert abs(float(jax.jit(loss, static_argnames="aggregation")(logits, "token_mean"))) > 0.05


def test_grpo_loss_jit_equals_eager_and_info():
    logits, tokens, mask, _ = one_step_batch()
    logp = token_logp(logits, tokens)
    old_logp, ref_logp = logp + 0.1, logp - 0.3
    advantages = jnp.array([1.0, -1.0, 0.5, -0.5])
    eager, info = grpo.grpo_loss(logp, old_logp, ref_logp, mask, advantages, aggregation="token_mean")
    jitted, _ = jax.jit(grpo.grpo_loss, static_argnames=("aggregation",))(
        logp, old_logp, ref_logp, mask, advantages, aggregation="token_mean")
    assert float(jitted) == pytest.approx(float(eager), rel=1e-6)
    assert float(info.ratio) == pytest.approx(np.exp(-0.1), rel=1e-5)
    assert float(info.kl) == pytest.approx(np.expm1(-0.3) + 0.3, rel=1e-4)
    assert float(info.clip_fraction) == 0.0


def categorical_gradients(theta, theta_old, ref_logits, kl_form):
    """Exact E_{y ~ π_θold}[∇_θ KL-term(y)], by enumerating the K outcomes."""
    def expected_term(t):
        logp = jax.nn.log_softmax(t)  # all K outcomes as "tokens"
        old_logp = jax.nn.log_softmax(theta_old)
        terms = grpo.kl_penalty(logp, old_logp, jax.nn.log_softmax(ref_logits), kl_form)
        return jnp.sum(jnp.exp(old_logp) * terms)
    return np.asarray(jax.grad(expected_term)(theta), np.float64), float(expected_term(theta))


def test_k3_in_the_loss_has_the_gradient_of_the_forward_kl_and_the_ratio_weighting_corrects_it():
    theta = jnp.array([1.0, -0.5, 0.3, 0.0])
    ref_logits = jnp.array([-1.0, 0.5, 0.0, 0.8])
    pi = np.asarray(jax.nn.softmax(theta), np.float64)
    ref = np.asarray(jax.nn.softmax(ref_logits), np.float64)
    reverse_kl = np.sum(pi * np.log(pi / ref))
    grad_reverse = pi * (np.log(pi / ref) - reverse_kl)  # ∇_θ KL(π_θ ‖ π_ref) for a softmax, float64
    grad_forward = pi - ref                                  # ∇_θ KL(π_ref ‖ π_θ)

    g_k3, value_k3 = categorical_gradients(theta, theta, ref_logits, "k3")
    assert value_k3 == pytest.approx(reverse_kl, rel=1e-5)  # the value is unbiased ...
    np.testing.assert_allclose(g_k3, grad_forward, rtol=1e-4, atol=1e-6)  # ... its gradient is the forward KL's
    assert np.linalg.norm(g_k3 - grad_reverse) > 0.1 * np.linalg.norm(grad_reverse)

    g_fixed, _ = categorical_gradients(theta, theta, ref_logits, "k3_ratio")
    np.testing.assert_allclose(g_fixed, grad_reverse, rtol=1e-4, atol=1e-6)


def test_ratio_weighted_k3_is_exact_off_policy_too():
    theta, theta_old = jnp.array([0.5, 0.2, -0.3]), jnp.array([-0.2, 0.4, 0.1])
    ref_logits = jnp.array([0.0, -1.0, 1.0])
    pi = np.asarray(jax.nn.softmax(theta), np.float64)
    ref = np.asarray(jax.nn.softmax(ref_logits), np.float64)
    reverse_kl = np.sum(pi * np.log(pi / ref))
    grad, value = categorical_gradients(theta, theta_old, ref_logits, "k3_ratio")
    assert value == pytest.approx(reverse_kl, rel=1e-5)
    np.testing.assert_allclose(grad, pi * (np.log(pi / ref) - reverse_kl), rtol=1e-4, atol=1e-6)


def test_bad_input_raises():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="k >= 2"):
        grpo.group_advantages(np.array([1.0]))
    with pytest.raises(ValueError, match="aggregation"):
        grpo.aggregate(np.zeros((2, 3)), np.ones((2, 3)), "mean")
    with pytest.raises(ValueError, match="kl_form"):
        grpo.kl_penalty(x, x, x, "k2")
    with pytest.raises(ValueError, match="beta"):
        grpo.token_losses(x, x, x, 1.0, beta=-0.1)
    with pytest.raises(ValueError, match="same length"):
        grpo.token_losses(x, np.zeros(4), x, 1.0)
    with pytest.raises(ValueError, match="advantages"):
        grpo.grpo_loss(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)), np.zeros(3))
