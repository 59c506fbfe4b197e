"""Bradley–Terry preferences: the loss by hand, simulated raters against their probabilities,
Bayes-optimal accuracy by hand and by simulation, and a linear reward model that recovers r*."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import preferences


def test_bradley_terry_loss_equals_hand_computation():
    chosen = np.array([1.0, 0.0, 3.0])
    rejected = np.array([0.5, 2.0, 3.0])
    expected = np.mean([np.log(1 + np.exp(-(1.0 - 0.5))),  # −log σ(0.5)
                        np.log(1 + np.exp(-(0.0 - 2.0))),  # −log σ(−2)
                        np.log(2.0)])                       # a tie: −log ½
    assert float(preferences.bradley_terry_loss(chosen, rejected)) == pytest.approx(expected, rel=1e-6)
    assert float(preferences.bradley_terry_probability(np.log(3.0), 0.0)) == pytest.approx(3 / 4, rel=1e-6)


def test_bradley_terry_loss_is_finite_for_huge_margins():
    assert float(preferences.bradley_terry_loss(np.array([0.0]), np.array([200.0]))) == pytest.approx(200.0)
    assert float(preferences.bradley_terry_loss(np.array([200.0]), np.array([0.0]))) == pytest.approx(0.0, abs=1e-30)
    grad = jax.grad(preferences.bradley_terry_loss)(jnp.array([0.0]), jnp.array([200.0]))
    assert np.all(np.isfinite(grad)) and float(grad[0]) == pytest.approx(-1.0)


def test_mismatched_pairs_raise():
    with pytest.raises(ValueError, match="matching shapes"):
        preferences.bradley_terry_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="matching shapes"):
        preferences.simulate_preferences(jax.random.key(0), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="matching shapes"):
        preferences.bayes_optimal_accuracy(np.zeros(3), np.zeros((3, 1)))


def test_simulated_raters_prefer_with_bradley_terry_probability():
    n = 200_000
    r_a = np.tile([0.0, 1.0, -2.0, 0.3], n // 4)
    r_b = np.tile([0.0, 0.0, 1.0, 0.3], n // 4)
    prefers_a = np.asarray(preferences.simulate_preferences(jax.random.key(1), r_a, r_b)).reshape(-1, 4)
    p = 1 / (1 + np.exp(-(np.array([0.0, 1.0, -2.0, 0.3]) - np.array([0.0, 0.0, 1.0, 0.3]))))
    standard_error = np.sqrt(p * (1 - p) / (n // 4))
    assert np.all(np.abs(prefers_a.mean(0) - p) < 4 * standard_error)


def test_bayes_optimal_accuracy_by_hand_and_by_simulation():
    # σ(|log 3|) = 3/4 for either order, ½ for a tie
    acc = preferences.bayes_optimal_accuracy(np.array([np.log(3.0), 0.0, 1.0]), np.array([0.0, np.log(3.0), 1.0]))
    assert float(acc) == pytest.approx((0.75 + 0.75 + 0.5) / 3, rel=1e-6)
    key_r, key_l = jax.random.split(jax.random.key(2))
    r_a, r_b = jax.random.normal(key_r, (2, 100_000)) * 2.0
    labels = preferences.simulate_preferences(key_l, r_a, r_b)
    bayes = float(preferences.bayes_optimal_accuracy(r_a, r_b))
    # predicting by r* reaches it on sampled labels; a worse model (a noisy copy of r*) does not
    assert float(preferences.preference_accuracy(r_a, r_b, labels)) == pytest.approx(bayes, abs=4 * 0.5 / np.sqrt(1e5))
    assert float(preferences.expected_accuracy(r_a, r_b, r_a, r_b)) == pytest.approx(bayes, rel=1e-5)
    noisy_a = r_a + 2.0 * jax.random.normal(jax.random.key(3), r_a.shape)
    assert float(preferences.expected_accuracy(noisy_a, r_b, r_a, r_b)) < bayes - 0.02


def test_order_pairs_picks_chosen_and_rejected():
    a = np.array([[1, 1], [2, 2], [3, 3]])
    b = np.array([[7, 7], [8, 8], [9, 9]])
    chosen, rejected = preferences.order_pairs(a, b, np.array([True, False, True]))
    np.testing.assert_array_equal(chosen, [[1, 1], [8, 8], [3, 3]])
    np.testing.assert_array_equal(rejected, [[7, 7], [2, 2], [9, 9]])


def test_linear_reward_model_recovers_the_ordering_of_a_linear_true_reward():
    d, n = 5, 2000
    keys = jax.random.split(jax.random.key(4), 4)
    w_star = jnp.array([2.0, -1.0, 0.5, 0.0, 1.5])
    x_a, x_b = jax.random.normal(keys[0], (2, n, d))
    prefers_a = preferences.simulate_preferences(keys[1], x_a @ w_star, x_b @ w_star)
    chosen, rejected = preferences.order_pairs(x_a, x_b, prefers_a)

    def loss(w):
        return preferences.bradley_terry_loss(chosen @ w, rejected @ w)

    @jax.jit
    def fit(w):
        return jax.lax.fori_loop(0, 500, lambda _, w: w - 1.0 * jax.grad(loss)(w), w)

    w = fit(jnp.zeros(d))
    assert float(loss(w)) < float(loss(jnp.zeros(d))) - 0.1  # it learned something
    cosine = float(w @ w_star / (jnp.linalg.norm(w) * jnp.linalg.norm(w_star)))
    assert cosine > 0.98
    # held-out items: the learned reward orders almost every pair as r* does
    x_test = jax.random.normal(keys[2], (300, d))
    true, learned = np.asarray(x_test @ w_star), np.asarray(x_test @ w)
    concordant = np.sign(true[:, None] - true[None, :]) == np.sign(learned[:, None] - learned[None, :])
    off_diagonal = ~np.eye(300, dtype=bool)
    assert concordant[off_diagonal].mean() > 0.95


def test_calibration_bins_by_hand_and_for_a_calibrated_model():
    predicted = np.array([0.05, 0.15, 0.12, 0.95, 1.0])
    prefers_a = np.array([False, True, False, True, True])
    bins = preferences.calibration_bins(predicted, prefers_a, num_bins=10)
    np.testing.assert_allclose(bins.count, [1, 2, 0, 0, 0, 0, 0, 0, 0, 2])
    filled = np.array([0, 1, 9])
    np.testing.assert_allclose(np.asarray(bins.mean_predicted)[filled], [0.05, (0.15 + 0.12) / 2, (0.95 + 1.0) / 2],
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(bins.frequency)[filled], [0.0, 0.5, 1.0])
    # labels drawn from the predicted probabilities themselves: every bin near the diagonal
    key_p, key_l = jax.random.split(jax.random.key(5))
    p = jax.random.uniform(key_p, (200_000,))
    labels = jax.random.bernoulli(key_l, p)
    bins = preferences.calibration_bins(p, labels, num_bins=5)
    np.testing.assert_allclose(bins.frequency, bins.mean_predicted, atol=0.01)
    with pytest.raises(ValueError, match="num_bins"):
        preferences.calibration_bins(p, labels, num_bins=0)
