"""Categorical and diagonal Gaussian distributions against scipy.stats, hand formulas
and Monte Carlo."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rlbook_lib import distributions
from rlbook_lib.distributions import Categorical, DiagGaussian

LOGITS = np.float32([[0.3, -1.2, 2.0], [0.0, 0.0, 0.0], [5.0, -5.0, 1.0]])
LOGITS_Q = np.float32([[1.0, 0.5, -0.5], [2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
MEAN, LOG_STD = np.float32([[0.5, -1.0], [2.0, 0.0]]), np.float32([[0.0, -0.7], [0.4, 1.1]])
MEAN_Q, LOG_STD_Q = np.float32([[0.0, 0.0], [1.0, 1.0]]), np.float32([[0.3, 0.2], [-0.5, 0.0]])


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_categorical_log_prob_entropy_kl_against_scipy():
    p, q = softmax(LOGITS.astype(np.float64)), softmax(LOGITS_Q.astype(np.float64))
    pi = Categorical(jnp.asarray(LOGITS))
    actions = np.array([2, 0, 1])
    np.testing.assert_allclose(pi.log_prob(actions), np.log(p[np.arange(3), actions]), rtol=1e-5)
    np.testing.assert_allclose(pi.entropy(), stats.entropy(p, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(pi.kl(Categorical(jnp.asarray(LOGITS_Q))), stats.entropy(p, q, axis=-1),
                               rtol=1e-5)
    np.testing.assert_array_equal(pi.mode(), [2, 0, 0])


def test_categorical_by_hand():
    pi = Categorical(jnp.log(jnp.array([0.5, 0.25, 0.25])))
    assert math.isclose(float(pi.entropy()), -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)), rel_tol=1e-6)
    uniform = Categorical(jnp.zeros(3))
    assert math.isclose(float(uniform.entropy()), math.log(3), rel_tol=1e-6)
    expected_kl = 0.5 * math.log(0.5 * 3) + 2 * 0.25 * math.log(0.25 * 3)
    assert math.isclose(float(pi.kl(uniform)), expected_kl, rel_tol=1e-5)
    assert abs(float(pi.kl(pi))) < 1e-7
    shifted = Categorical(pi.logits + 7.0)  # a constant shift is the same distribution
    assert abs(float(pi.kl(shifted))) < 1e-6


def test_gaussian_log_prob_and_entropy_against_scipy():
    g = DiagGaussian(jnp.asarray(MEAN), jnp.asarray(LOG_STD))
    action = np.float32([[0.1, 0.2], [-3.0, 4.0]])
    std = np.exp(LOG_STD.astype(np.float64))
    expected = stats.norm.logpdf(action, MEAN, std).sum(-1)
    np.testing.assert_allclose(g.log_prob(action), expected, rtol=1e-5)
    for i in range(2):
        entropy = stats.multivariate_normal(MEAN[i], np.diag(std[i] ** 2)).entropy()
        np.testing.assert_allclose(g.entropy()[i], entropy, rtol=1e-5)
    np.testing.assert_array_equal(g.mode(), MEAN)


def test_gaussian_kl_closed_form_against_the_multivariate_formula():
    """KL of two Gaussians, ½[tr(Σ'⁻¹Σ) + (μ'−μ)ᵀΣ'⁻¹(μ'−μ) − D + log det Σ'/det Σ], in float64."""
    p = DiagGaussian(jnp.asarray(MEAN), jnp.asarray(LOG_STD))
    q = DiagGaussian(jnp.asarray(MEAN_Q), jnp.asarray(LOG_STD_Q))
    for i in range(2):
        cov = np.diag(np.exp(2 * LOG_STD[i].astype(np.float64)))
        cov_q = np.diag(np.exp(2 * LOG_STD_Q[i].astype(np.float64)))
        inv_q, diff = np.linalg.inv(cov_q), MEAN_Q[i] - MEAN[i]
        expected = 0.5 * (np.trace(inv_q @ cov) + diff @ inv_q @ diff - 2
                          + np.log(np.linalg.det(cov_q) / np.linalg.det(cov)))
        np.testing.assert_allclose(p.kl(q)[i], expected, rtol=1e-5)
    np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-6)


@pytest.mark.parametrize("family", ["categorical", "gaussian"])
def test_kl_and_entropy_agree_with_monte_carlo(family):
    if family == "categorical":
        p, q = Categorical(jnp.asarray(LOGITS[0])), Categorical(jnp.asarray(LOGITS_Q[0]))
    else:
        p, q = (DiagGaussian(jnp.asarray(MEAN[1]), jnp.asarray(LOG_STD[1])),
                DiagGaussian(jnp.asarray(MEAN_Q[1]), jnp.asarray(LOG_STD_Q[1])))
    keys = jax.random.split(jax.random.key(0), 200_000)
    actions = jax.vmap(p.sample)(keys)
    log_ratio = jax.vmap(p.log_prob)(actions) - jax.vmap(q.log_prob)(actions)
    neg_log_p = -jax.vmap(p.log_prob)(actions)
    for estimate, exact in ((log_ratio, p.kl(q)), (neg_log_p, p.entropy())):
        standard_error = float(jnp.std(estimate)) / math.sqrt(estimate.size)
        assert abs(float(jnp.mean(estimate)) - float(exact)) < 4 * standard_error


def test_samples_have_the_right_moments():
    keys = jax.random.split(jax.random.key(1), 100_000)
    counts = np.bincount(np.asarray(jax.vmap(Categorical(jnp.asarray(LOGITS[0])).sample)(keys)), minlength=3)
    p = softmax(LOGITS[0].astype(np.float64))
    assert stats.chisquare(counts, p * counts.sum()).pvalue > 1e-3
    g = DiagGaussian(jnp.asarray(MEAN[1]), jnp.asarray(LOG_STD[1]))
    x = np.asarray(jax.vmap(g.sample)(keys))
    assert (np.abs(x.mean(0) - MEAN[1]) < 4 * np.exp(LOG_STD[1]) / math.sqrt(len(x))).all()
    np.testing.assert_allclose(x.std(0), np.exp(LOG_STD[1]), rtol=0.01)


def test_batched_methods_equal_vmap_and_state_independent_log_std_broadcasts():
    pi = Categorical(jnp.asarray(LOGITS))
    actions = jnp.array([1, 2, 0])
    np.testing.assert_allclose(pi.log_prob(actions), jax.vmap(lambda d, a: d.log_prob(a))(pi, actions),
                               rtol=1e-6)
    g = DiagGaussian(jnp.asarray(MEAN), jnp.broadcast_to(jnp.asarray(LOG_STD[0]), MEAN.shape))
    shared = DiagGaussian(jnp.asarray(MEAN), jnp.asarray(LOG_STD[0]))  # one log σ for the batch
    np.testing.assert_allclose(shared.entropy(), g.entropy(), rtol=1e-6)
    np.testing.assert_allclose(shared.kl(g), 0.0, atol=1e-6)
    assert shared.entropy().shape == (2,)
    assert isinstance(jax.jit(lambda d: d)(g), distributions.DiagGaussian)
