"""DPO: the loss by hand and as Bradley–Terry on implicit rewards; its gradient at π_θ = π_ref is
(β/2) times the difference of score functions, so it grows with β (it vanishes as β → 0, and for
large β only where the pair is already ordered correctly); the expected loss over Bradley–Terry
comparisons is minimised by π* ∝ π_ref exp(r*/β)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import dpo, preferences

CHOSEN, REJECTED = 1, 3


def test_dpo_loss_equals_its_closed_form_by_hand():
    logp_c, logp_r, ref_c, ref_r, beta = -3.0, -5.0, -4.0, -4.5, 0.1
    margin = 0.1 * ((-3.0 - -4.0) - (-5.0 - -4.5))  # β [(1) − (−0.5)] = 0.15
    expected = np.log(1 + np.exp(-margin))  # −log σ(0.15)
    assert float(dpo.dpo_loss(logp_c, logp_r, ref_c, ref_r, beta)) == pytest.approx(expected, rel=1e-6)
    # at π_θ = π_ref the loss is log 2 for every β
    assert float(dpo.dpo_loss(-2.0, -7.0, -2.0, -7.0, 50.0)) == pytest.approx(np.log(2.0), rel=1e-6)


def test_dpo_is_bradley_terry_on_implicit_rewards():
    rng = np.random.default_rng(0)
    logp_c, logp_r, ref_c, ref_r = -rng.uniform(1, 10, (4, 16))
    beta = 0.3
    bt = preferences.bradley_terry_loss(dpo.implicit_reward(logp_c, ref_c, beta),
                                        dpo.implicit_reward(logp_r, ref_r, beta))
    assert float(dpo.dpo_loss(logp_c, logp_r, ref_c, ref_r, beta)) == pytest.approx(float(bt), rel=1e-6)


def pair_loss(theta, ref_logits, beta):
    """DPO loss of one comparison (response 1 chosen over 3) for a softmax policy over 5 responses."""
    logp, ref = jax.nn.log_softmax(theta), jax.nn.log_softmax(ref_logits)
    return dpo.dpo_loss(logp[CHOSEN], logp[REJECTED], ref[CHOSEN], ref[REJECTED], beta)


def score_difference(theta):
    """∇ log π_θ(y_c) − ∇ log π_θ(y_r) for a softmax: one-hot(c) − one-hot(r) (the π terms cancel)."""
    return np.eye(5)[CHOSEN] - np.eye(5)[REJECTED]


def test_gradient_at_the_reference_is_beta_over_2_times_the_score_difference():
    ref_logits = jnp.array([0.3, -0.2, 1.0, 0.0, -1.0])
    norms = []
    for beta in [0.01, 0.1, 1.0, 10.0, 100.0]:
        grad = np.asarray(jax.grad(pair_loss)(ref_logits, ref_logits, beta))  # π_θ = π_ref
        np.testing.assert_allclose(grad, -beta / 2 * score_difference(ref_logits), rtol=1e-5, atol=1e-7)
        norms.append(np.linalg.norm(grad))
    # so it grows in proportion to β: the statement "it vanishes at π_ref as β grows" is false
    np.testing.assert_allclose(np.array(norms) / norms[0], [1, 10, 100, 1000, 10_000], rtol=1e-4)


def test_gradient_vanishes_as_beta_goes_to_zero_everywhere():
    theta, ref_logits = jnp.array([1.0, -1.0, 0.5, 0.2, 0.0]), jnp.zeros(5)
    grads = [np.linalg.norm(jax.grad(pair_loss)(theta, ref_logits, beta)) for beta in [1e-1, 1e-3, 1e-5]]
    assert grads[1] < 0.02 * grads[0] and grads[2] < 0.02 * grads[1] and grads[2] < 1e-5


def test_large_beta_gradient_vanishes_only_where_the_pair_is_already_ordered():
    ref_logits = jnp.zeros(5)
    right = ref_logits.at[CHOSEN].add(0.5)  # margin u = +0.5 > 0
    wrong = ref_logits.at[REJECTED].add(0.5)  # u = −0.5 < 0
    for beta in [10.0, 100.0]:
        g_right = np.asarray(jax.grad(pair_loss)(right, ref_logits, beta))
        g_wrong = np.asarray(jax.grad(pair_loss)(wrong, ref_logits, beta))
        sigma = 1 / (1 + np.exp(beta * 0.5))  # σ(−β u) with u = 0.5
        np.testing.assert_allclose(g_right, -beta * sigma * score_difference(right), rtol=1e-4, atol=1e-30)
        np.testing.assert_allclose(g_wrong, -beta * (1 - sigma) * score_difference(wrong), rtol=1e-4)
    assert np.linalg.norm(g_right) < 1e-18 and np.linalg.norm(g_wrong) > 99


def test_expected_dpo_loss_is_minimised_by_the_kl_regularised_optimum():
    # Comparisons of every ordered pair of 5 responses, weighted by the Bradley–Terry P*(a ≻ b).
    r_star = np.array([0.0, 1.0, -0.5, 2.0, 0.3])
    ref_logits = jnp.array([0.3, -0.2, 1.0, 0.0, -1.0])
    beta = 0.7
    pairs = np.array([(a, b) for a, b in itertools.permutations(range(5), 2)])
    weights = 1 / (1 + np.exp(-(r_star[pairs[:, 0]] - r_star[pairs[:, 1]])))
    per_pair = jax.vmap(dpo.dpo_loss, in_axes=(0, 0, 0, 0, None))

    def expected_loss(theta):
        logp, ref = jax.nn.log_softmax(theta), jax.nn.log_softmax(ref_logits)
        a, b = pairs[:, 0], pairs[:, 1]
        return jnp.sum(weights * per_pair(logp[a], logp[b], ref[a], ref[b], beta))

    log_pi_star = dpo.kl_regularized_optimum(jax.nn.log_softmax(ref_logits), r_star, beta)
    ref64 = np.asarray(jax.nn.softmax(ref_logits), np.float64)
    closed_form = ref64 * np.exp(r_star / beta) / np.sum(ref64 * np.exp(r_star / beta))  # float64
    np.testing.assert_allclose(np.exp(log_pi_star), closed_form, rtol=1e-5)
    assert np.linalg.norm(jax.grad(expected_loss)(log_pi_star)) < 1e-5
    assert np.linalg.norm(jax.grad(expected_loss)(ref_logits)) > 0.1
    # and π* maximises E_π[r*] − β KL(π ‖ π_ref): its gradient in the logits is 0 there
    def objective(t):
        return jnp.sum(jax.nn.softmax(t) * (r_star - beta * (jax.nn.log_softmax(t) - jnp.log(ref64))))
    assert np.linalg.norm(jax.grad(objective)(log_pi_star)) < 1e-5


def test_bad_input_raises():
    with pytest.raises(ValueError, match="beta"):
        dpo.dpo_loss(-1.0, -2.0, -1.0, -2.0, -0.1)
    with pytest.raises(ValueError, match="matching shapes"):
        dpo.dpo_loss(np.zeros(3), np.zeros(4), np.zeros(3), np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="matching shapes"):
        dpo.dpo_loss(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(2), 0.1)
    with pytest.raises(ValueError, match="beta"):
        dpo.kl_regularized_optimum(np.zeros(3), np.zeros(3), 0.0)
