"""Natural-gradient pieces of TRPO: Fisher-vector products against the explicit Fisher matrix,
conjugate gradient against a direct solve, and the line search against its definition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from rlbook_lib import distributions, natural_gradient, networks

OBS = jax.random.normal(jax.random.key(0), (6, 3))


def categorical_setup():
    net = networks.Policy(num_actions=3, hidden_sizes=(4,))
    params = net.init(jax.random.key(1), OBS[0])
    params = jax.tree.map(lambda x: x * 30.0, params)  # away from the uniform policy
    theta, unravel = ravel_pytree(params)

    def dist(t):
        return distributions.Categorical(net.apply(unravel(t), OBS))

    return theta, dist


def gaussian_setup():
    net = networks.MLP(out_features=2, hidden_sizes=(4,))
    mlp_params = net.init(jax.random.key(2), OBS[0])
    theta, unravel = ravel_pytree({"mlp": mlp_params, "log_std": jnp.array([0.3, -0.5])})

    def dist(t):
        p = unravel(t)
        return distributions.DiagGaussian(net.apply(p["mlp"], OBS), jnp.broadcast_to(p["log_std"], (6, 2)))

    return theta, dist


def mean_kl_from(dist, theta_old):
    old = jax.lax.stop_gradient(dist(theta_old))
    return lambda t: jnp.mean(old.kl(dist(t)))


def test_fisher_vector_product_equals_the_explicit_fisher_categorical():
    """F = mean_s Σ_a π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ, each score from jax.jacobian."""
    theta, dist = categorical_setup()
    probs = jnp.exp(dist(theta).log_probs)  # [S, A]
    scores = jax.jacobian(lambda t: dist(t).log_probs)(theta)  # [S, A, P]
    fisher = jnp.einsum("sa,sap,saq->pq", probs, scores, scores) / OBS.shape[0]
    v = jax.random.normal(jax.random.key(3), theta.shape)
    fvp = natural_gradient.fisher_vector_product(mean_kl_from(dist, theta), theta, v)
    np.testing.assert_allclose(fvp, fisher @ v, rtol=1e-4, atol=1e-5 * float(jnp.abs(fisher @ v).max()))
    damped = natural_gradient.fisher_vector_product(mean_kl_from(dist, theta), theta, v, damping=0.1)
    np.testing.assert_allclose(damped, fisher @ v + 0.1 * v, rtol=1e-4, atol=1e-5)


def test_fisher_vector_product_equals_the_explicit_fisher_gaussian():
    """F = mean_s J_sᵀ M J_s, J_s the Jacobian of (μ(s), log σ), M = diag(1/σ², 2): the
    Fisher information of a Gaussian in those coordinates."""
    theta, dist = gaussian_setup()
    jac_mean = jax.jacobian(lambda t: dist(t).mean)(theta)  # [S, D, P]
    jac_log_std = jax.jacobian(lambda t: dist(t).log_std)(theta)  # [S, D, P]
    inv_var = jnp.exp(-2 * dist(theta).log_std)  # [S, D]
    fisher = (jnp.einsum("sd,sdp,sdq->pq", inv_var, jac_mean, jac_mean)
              + 2 * jnp.einsum("sdp,sdq->pq", jac_log_std, jac_log_std)) / OBS.shape[0]
    v = jax.random.normal(jax.random.key(4), theta.shape)
    fvp = natural_gradient.fisher_vector_product(mean_kl_from(dist, theta), theta, v)
    np.testing.assert_allclose(fvp, fisher @ v, rtol=1e-4, atol=1e-5 * float(jnp.abs(fisher @ v).max()))


def test_conjugate_gradient_solves_a_random_spd_system():
    n = 20
    m = jax.random.normal(jax.random.key(5), (n, n))
    a = m @ m.T / n + 0.5 * jnp.eye(n)  # SPD, condition number of a few tens
    b = jax.random.normal(jax.random.key(6), (n,))
    x = natural_gradient.conjugate_gradient(lambda v: a @ v, b, iterations=n)
    np.testing.assert_allclose(x, np.linalg.solve(np.asarray(a, np.float64), np.asarray(b, np.float64)),
                               rtol=1e-3, atol=1e-4)
    few = natural_gradient.conjugate_gradient(lambda v: a @ v, b, iterations=3)
    assert jnp.linalg.norm(a @ few - b) < jnp.linalg.norm(b)  # fewer iterations: a worse but useful x
    jitted = jax.jit(lambda b: natural_gradient.conjugate_gradient(lambda v: a @ v, b, iterations=n))
    np.testing.assert_allclose(jitted(b), x, rtol=1e-4, atol=1e-5)


def test_conjugate_gradient_is_exact_on_a_diagonal_system_in_one_step_per_distinct_eigenvalue():
    a = jnp.diag(jnp.array([2.0, 2.0, 5.0, 5.0]))
    b = jnp.array([1.0, -1.0, 2.0, 3.0])
    x = natural_gradient.conjugate_gradient(lambda v: a @ v, b, iterations=2)
    np.testing.assert_allclose(x, b / jnp.diag(a), rtol=1e-5)


def test_natural_step_lies_on_the_quadratic_trust_region_boundary():
    theta, dist = categorical_setup()
    mean_kl = mean_kl_from(dist, theta)
    g = jax.random.normal(jax.random.key(7), theta.shape)
    fvp = lambda v: natural_gradient.fisher_vector_product(mean_kl, theta, v, damping=1e-3)  # noqa: E731
    step = natural_gradient.natural_step(fvp, g, max_kl=0.01, cg_iterations=theta.size)
    np.testing.assert_allclose(0.5 * step.step @ fvp(step.step), 0.01, rtol=1e-3)
    np.testing.assert_allclose(step.expected_improvement, g @ step.step, rtol=1e-6)
    assert step.expected_improvement > 0


@pytest.mark.parametrize("max_kl", [1e-3, 1e-2, 0.1])
def test_line_search_returns_a_step_inside_the_trust_region_that_improves(max_kl):
    theta, dist = categorical_setup()
    mean_kl = mean_kl_from(dist, theta)
    actions = jnp.array([0, 1, 2, 0, 1, 2])
    advantages = jnp.array([1.0, -0.5, 2.0, -1.0, 0.3, 0.7])
    old_log_prob = dist(theta).log_prob(actions)

    def surrogate(t):
        return jnp.mean(jnp.exp(dist(t).log_prob(actions) - old_log_prob) * advantages)

    fvp = lambda v: natural_gradient.fisher_vector_product(mean_kl, theta, v, damping=0.01)  # noqa: E731
    step = natural_gradient.natural_step(fvp, jax.grad(surrogate)(theta), max_kl)
    result = jax.jit(lambda: natural_gradient.backtracking_line_search(
        surrogate, mean_kl, theta, step.step * 8.0, step.expected_improvement * 8.0, max_kl))()
    assert bool(result.accepted)
    assert float(mean_kl(result.theta)) <= max_kl and float(result.kl) <= max_kl
    assert float(surrogate(result.theta)) > float(surrogate(theta))
    assert float(result.step_fraction) <= 0.5  # 8 times too long: some halving was needed
    # The first accepted fraction: one halving fewer breaks a condition.
    bigger = theta + 2 * result.step_fraction * step.step * 8.0
    assert (mean_kl(bigger) > max_kl) or (surrogate(bigger) <= surrogate(theta))


def test_line_search_keeps_theta_when_no_step_improves():
    theta, dist = categorical_setup()
    mean_kl = mean_kl_from(dist, theta)
    surrogate = lambda t: -jnp.sum(jnp.square(t - theta))  # noqa: E731  every step makes it worse
    result = natural_gradient.backtracking_line_search(surrogate, mean_kl, theta, jnp.ones_like(theta),
                                                       jnp.float32(1.0), 0.01)
    assert not bool(result.accepted) and float(result.step_fraction) == 0.0
    np.testing.assert_array_equal(result.theta, theta)
