"""KL divergences: exact forms against scipy, and the k1/k2/k3 estimators against the exact values.

The unbiasedness tests average 10^6 samples and accept the mean within 4 standard
errors of the closed form, so they hold for any random stream (JAX versions differ).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

from rlbook_lib import kl

N = 1_000_000


def random_distribution(key, K, temperature=1.0):
    logits = temperature * jax.random.normal(key, (K,))
    return logits, np.asarray(jax.nn.softmax(logits), np.float64)


def test_categorical_kl_equals_scipy():
    for seed, K in [(0, 2), (1, 10), (2, 1000)]:
        k_p, k_q = jax.random.split(jax.random.key(seed))
        p_logits, p = random_distribution(k_p, K)
        q_logits, q = random_distribution(k_q, K, temperature=2.0)
        expected = scipy.special.rel_entr(p, q).sum()
        assert float(kl.categorical_kl_from_logits(p_logits, q_logits)) == pytest.approx(expected, rel=1e-4)
        assert float(kl.categorical_kl(p, q)) == pytest.approx(expected, rel=1e-4)
        assert float(kl.categorical_kl(p, p)) == pytest.approx(0.0, abs=1e-6)


def test_categorical_kl_by_hand_and_zero_probabilities():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert float(kl.categorical_kl(p, q)) == pytest.approx(0.5 * np.log(2) + 0.5 * np.log(2), rel=1e-6)
    assert float(kl.categorical_kl(q, p)) == np.inf  # q puts mass where p has none
    logits = jnp.log(jnp.array([0.5, 0.5, 0.0]))  # a −∞ logit: probability 0
    assert float(kl.categorical_kl_from_logits(logits, jnp.log(q))) == pytest.approx(np.log(2), rel=1e-6)


def test_categorical_kl_broadcasts_over_leading_axes():
    p_logits = jax.random.normal(jax.random.key(3), (4, 6))
    q_logits = jax.random.normal(jax.random.key(4), (4, 6))
    batched = kl.categorical_kl_from_logits(p_logits, q_logits)
    looped = [kl.categorical_kl_from_logits(p_logits[i], q_logits[i]) for i in range(4)]
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(kl.categorical_kl_from_logits)(p_logits, q_logits), looped, rtol=1e-6)


@pytest.mark.parametrize("mq, sq, mp, sp", [(0.0, 1.0, 0.0, 1.0), (0.0, 1.0, 0.3, 1.0), (1.0, 0.5, -1.0, 2.0)])
def test_gaussian_kl_equals_numerical_integration(mq, sq, mp, sp):
    q, p = scipy.stats.norm(mq, sq), scipy.stats.norm(mp, sp)
    integrand = lambda x: q.pdf(x) * (q.logpdf(x) - p.logpdf(x))  # noqa: E731
    expected, _ = scipy.integrate.quad(integrand, -30, 30, points=[mq, mp], limit=200)
    assert float(kl.gaussian_kl(mq, sq, mp, sp)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def gaussian_log_ratios(key, mq, sq, mp, sp):
    """log p(x) − log q(x) for N samples x ~ q = N(mq, sq²), p = N(mp, sp²)."""
    x = mq + sq * jax.random.normal(key, (N,))
    norm = jax.scipy.stats.norm
    return norm.logpdf(x, mp, sp) - norm.logpdf(x, mq, sq)


def categorical_log_ratios(key, K=1000):
    """A vocabulary of K tokens: q = π_θ, p = π_ref, N tokens sampled from q."""
    k_q, k_p, k_x = jax.random.split(key, 3)
    q_logits = jax.random.normal(k_q, (K,))
    p_logits = q_logits + 0.5 * jax.random.normal(k_p, (K,))
    # Inverse-CDF sampling: categorical(shape=(N,)) would draw N × K Gumbel numbers.
    x = jnp.searchsorted(jnp.cumsum(jax.nn.softmax(q_logits)), jax.random.uniform(k_x, (N,)))
    x = jnp.minimum(x, K - 1)
    log_q, log_p = jax.nn.log_softmax(q_logits), jax.nn.log_softmax(p_logits)
    return log_p[x] - log_q[x], kl.categorical_kl_from_logits(q_logits, p_logits)


CASES = {
    "gaussian, small KL": lambda key: (gaussian_log_ratios(key, 0.0, 1.0, 0.1, 1.0), kl.gaussian_kl(0.0, 1.0, 0.1, 1.0)),
    "gaussian, large KL": lambda key: (gaussian_log_ratios(key, 0.0, 1.0, 1.5, 1.3), kl.gaussian_kl(0.0, 1.0, 1.5, 1.3)),
    "categorical vocabulary": categorical_log_ratios,
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("estimator", [kl.k1, kl.k3])
def test_k1_and_k3_are_unbiased(case, estimator):
    log_ratio, exact = CASES[case](jax.random.key(5))
    samples = np.asarray(estimator(log_ratio), np.float64)
    standard_error = samples.std(ddof=1) / np.sqrt(N)
    assert abs(samples.mean() - float(exact)) <= 4 * standard_error


def test_k2_is_biased_at_large_kl_and_close_at_small():
    small, exact_small = CASES["gaussian, small KL"](jax.random.key(6))
    large, exact_large = CASES["gaussian, large KL"](jax.random.key(7))
    # For two Gaussians of equal variance k2 happens to be unbiased; not for unequal ones.
    assert float(kl.k2(small).mean()) == pytest.approx(float(exact_small), rel=0.05)
    samples = np.asarray(kl.k2(large), np.float64)
    standard_error = samples.std(ddof=1) / np.sqrt(N)
    assert abs(samples.mean() - float(exact_large)) > 10 * standard_error


def test_k3_is_never_negative_and_k1_can_be():
    log_ratio = jnp.concatenate([jnp.linspace(-50.0, 50.0, 100_001), jnp.array([0.0, 1e-8, -1e-8, 1e-30, -1e-30])])
    assert float(jnp.min(kl.k3(log_ratio))) >= 0.0
    assert float(jnp.min(kl.k2(log_ratio))) >= 0.0
    assert float(jnp.min(kl.k1(log_ratio))) < 0.0


def test_estimators_by_hand():
    log_r = jnp.array([np.log(2.0), 0.0, np.log(0.5)])
    np.testing.assert_allclose(kl.k1(log_r), [-np.log(2), 0.0, np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(kl.k2(log_r), [0.5 * np.log(2) ** 2, 0.0, 0.5 * np.log(2) ** 2], rtol=1e-6)
    np.testing.assert_allclose(kl.k3(log_r), [(2 - 1) - np.log(2), 0.0, (0.5 - 1) + np.log(2)], rtol=1e-6)
    # Near r = 1 the two terms of k3 nearly cancel; expm1 keeps the ½ (log r)² leading term.
    assert float(kl.k3(jnp.float32(1e-4))) == pytest.approx(0.5e-8, rel=1e-3)


def test_jit_equals_eager():
    p_logits, q_logits = jax.random.normal(jax.random.key(8), (2, 50))
    jitted = jax.jit(kl.categorical_kl_from_logits)(p_logits, q_logits)
    assert float(jitted) == pytest.approx(float(kl.categorical_kl_from_logits(p_logits, q_logits)), rel=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda: kl.categorical_kl_from_logits(jnp.zeros(3), jnp.zeros(4)), "same shape"),
    (lambda: kl.categorical_kl(np.array([0.5, 0.6]), np.array([0.5, 0.5])), "p must be a probability"),
    (lambda: kl.categorical_kl(np.array([0.5, 0.5]), np.array([-0.5, 1.5])), "q must be a probability"),
    (lambda: kl.categorical_kl(0.5, 0.5), "p must have a category axis"),
    (lambda: kl.gaussian_kl(0.0, 0.0, 0.0, 1.0), "std_q must be positive"),
    (lambda: kl.gaussian_kl(0.0, 1.0, 0.0, -1.0), "std_p must be positive"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
