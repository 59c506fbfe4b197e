"""RLOO: the leave-one-out baseline by hand (k = 3), the identity Â_i = k/(k−1)(r_i − r̄),
RLOO as GRPO without std scaling, an unbiased gradient by enumeration, and k < 2 rejected."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import grpo, rloo


def test_leave_one_out_by_hand_with_k_3():
    rewards = np.array([1.0, 2.0, 6.0])
    baselines = [(2.0 + 6.0) / 2, (1.0 + 6.0) / 2, (1.0 + 2.0) / 2]
    np.testing.assert_allclose(rloo.leave_one_out_baselines(rewards), baselines, rtol=1e-6)
    np.testing.assert_allclose(rloo.rloo_advantages(rewards), [1.0 - 4.0, 2.0 - 3.5, 6.0 - 1.5], rtol=1e-6)


def test_baseline_excludes_the_sample_itself():
    rewards = jnp.array([0.3, -1.0, 2.0, 0.5])
    jacobian = np.asarray(jax.jacobian(rloo.leave_one_out_baselines)(rewards))
    np.testing.assert_allclose(np.diag(jacobian), 0.0, atol=1e-7)  # b_i does not move with r_i
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(jacobian[off], 1 / 3, rtol=1e-6)  # and moves with each other r_j by 1/(k−1)


@pytest.mark.parametrize("k", [2, 3, 8])
def test_rloo_equals_k_over_k_minus_1_times_centred_reward(k):
    rewards = np.random.default_rng(k).normal(size=k)
    expected = k / (k - 1) * (rewards - rewards.mean())  # float64
    np.testing.assert_allclose(rloo.rloo_advantages(rewards), expected, rtol=1e-5, atol=1e-6)
    # RLOO is GRPO without the std scaling, up to the factor k/(k−1)
    centred = grpo.group_advantages(rewards, normalize_std=False)
    np.testing.assert_allclose(rloo.rloo_advantages(rewards), k / (k - 1) * centred, rtol=1e-5, atol=1e-6)


def test_vmap_over_prompts():
    rewards = jax.random.normal(jax.random.key(0), (5, 4))
    batched = jax.jit(jax.vmap(rloo.rloo_advantages))(rewards)
    for p in range(5):
        np.testing.assert_allclose(batched[p], rloo.rloo_advantages(rewards[p]), rtol=1e-6)


def test_rloo_gradient_is_unbiased_by_enumeration():
    # A softmax policy over 3 responses with reward r(y); k = 2 samples per prompt.
    # E over all 3² ordered pairs of the RLOO estimator equals ∇ E_π[r] exactly.
    theta = jnp.array([0.2, -0.5, 0.4])
    reward = np.array([1.0, 0.0, 3.0])
    pi = np.asarray(jax.nn.softmax(theta), np.float64)
    exact = pi * (reward - pi @ reward)  # ∇_θ Σ_y softmax(θ)_y r_y, float64
    estimate, centred_estimate = np.zeros(3), np.zeros(3)
    for ys in itertools.product(range(3), repeat=2):
        ys = np.array(ys)
        for advantages, total in [(rloo.rloo_advantages(reward[ys]), estimate),
                                  (grpo.group_advantages(reward[ys], normalize_std=False), centred_estimate)]:
            grad = jax.grad(lambda t: -rloo.reinforce_loss(jax.nn.log_softmax(t)[ys], advantages))(theta)
            total += np.prod(pi[ys]) * np.asarray(grad, np.float64)
    np.testing.assert_allclose(estimate, exact, rtol=1e-5, atol=1e-6)
    # the plain group mean contains r_i itself: that gradient is shrunk by (k − 1)/k = 1/2
    np.testing.assert_allclose(centred_estimate, exact / 2, rtol=1e-5, atol=1e-6)


def test_group_below_2_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="at least 2"):
        rloo.rloo_advantages(np.array([1.0]))
    with pytest.raises(ValueError, match="shape"):
        rloo.rloo_advantages(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        rloo.reinforce_loss(np.zeros(3), np.zeros(4))
