"""Tests for rlbook_lib.off_policy_evaluation: hand-computed estimates, IPS unbiased within a
standard error of the exact value, DR with a perfect model and no noise exact on every log,
DR unbiased with a wrong model, and bad propensities."""

import numpy as np
import pytest

from rlbook_lib import off_policy_evaluation as ope  # sets the XLA flags  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

# One user, two items: q = (1, 3); μ = (0.8, 0.2); π = (0.5, 0.5); V(π) = 0.5 * 1 + 0.5 * 3 = 2.
Q = jnp.array([[1.0, 3.0]])
MU = jnp.array([[0.8, 0.2]])
PI = jnp.array([[0.5, 0.5]])


def test_estimates_by_hand():
    data = ope.LoggedData(users=jnp.array([0, 0, 0]), actions=jnp.array([0, 1, 0]),
                          propensities=jnp.array([0.8, 0.2, 0.8]), rewards=jnp.array([1.5, 2.0, 0.5]))
    w = [0.5 / 0.8, 0.5 / 0.2, 0.5 / 0.8]
    r = [1.5, 2.0, 0.5]
    assert ope.ips(data, PI) == pytest.approx((w[0] * r[0] + w[1] * r[1] + w[2] * r[2]) / 3, rel=1e-6)
    assert ope.snips(data, PI) == pytest.approx((w[0] * r[0] + w[1] * r[1] + w[2] * r[2]) / sum(w), rel=1e-6)
    q_hat = jnp.array([[1.0, 2.0]])  # wrong for item 1
    dm = 0.5 * 1.0 + 0.5 * 2.0
    assert ope.direct_method(data, PI, q_hat) == pytest.approx(dm, rel=1e-6)
    correction = (w[0] * (1.5 - 1.0) + w[1] * (2.0 - 2.0) + w[2] * (0.5 - 1.0)) / 3
    assert ope.doubly_robust(data, PI, q_hat) == pytest.approx(dm + correction, rel=1e-6)
    assert ope.true_value(Q, PI) == pytest.approx(0.5 * 1 + 0.5 * 3)


def many_logs(q, mu, pi, q_hat, noise_std, num_logs=2000, n=50, seed=0):
    def one(key):
        return ope.estimate_all(ope.log_data(key, q, mu, noise_std, n), pi, q_hat)
    return jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seed), num_logs))


def test_ips_and_dr_are_unbiased_and_dm_is_not():
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(20, 4)), jnp.float32)
    mu = jax.nn.softmax(jnp.asarray(rng.normal(size=(20, 4))), axis=1)
    pi = jax.nn.softmax(3 * q, axis=1)
    wrong = q + 0.5  # a biased reward model
    est = many_logs(q, mu, pi, wrong, noise_std=1.0)
    truth = float(ope.true_value(q, pi))
    for name in ("ips", "dr"):
        x = np.asarray(getattr(est, name))
        standard_error = x.std() / np.sqrt(len(x))
        assert abs(x.mean() - truth) < 3 * standard_error, name
    dm = np.asarray(est.dm)
    assert abs(dm.mean() - truth - 0.5) < 3 * dm.std() / np.sqrt(len(dm))  # DM inherits the model's bias


def test_dr_with_a_perfect_model_has_no_variance_from_the_model_term():
    # One user, no reward noise: each DR term is Σ_a π q + w (r − q(a)) = V(π) exactly.
    est = many_logs(Q, MU, PI, Q, noise_std=0.0, num_logs=200)
    np.testing.assert_allclose(est.dr, 2.0, rtol=1e-6)
    assert np.std(np.asarray(est.ips)) > 0.1  # while IPS varies from log to log


def test_zero_propensity_raises():
    data = ope.LoggedData(jnp.array([0, 0]), jnp.array([0, 1]), jnp.array([0.5, 0.0]), jnp.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="propensities must lie in"):
        ope.ips(data, PI)
    with pytest.raises(ValueError, match="propensities must lie in"):
        ope.doubly_robust(data, PI, Q)


def test_bad_policy_matrices_raise():
    with pytest.raises(ValueError, match="behaviour"):
        ope.log_data(jax.random.key(0), Q, jnp.array([[0.5, 0.6]]), 1.0, 10)
    with pytest.raises(ValueError, match="pi"):
        ope.true_value(Q, jnp.array([[1.0, 0.0, 0.0]]))


def test_fitted_reward_model_recovers_a_linear_world():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    theta = rng.normal(size=(4, 3))
    q = jnp.asarray(x @ theta.T, jnp.float32)
    mu = jnp.full((30, 4), 0.25)
    data = ope.log_data(jax.random.key(2), q, mu, 0.0, 2000)
    np.testing.assert_allclose(ope.fit_reward_model(data, x, 4, regularization=1e-4), q, atol=1e-3)
