"""The surrogate objective against the exact J: first-order agreement, and the lower bound."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import dp, kl
from rlbook_lib import mdp as mdp_lib
from rlbook_lib import policy_gradient as pg
from rlbook_lib import surrogate

from _pg_models import episodic_mdp, random_theta


def test_advantages_by_hand_on_a_one_step_mdp():
    # One state, two actions, both end the episode: q = r, v = Σ π r, A = r − v.
    P = np.zeros((2, 2, 2))
    P[:, :, 1] = 1.0
    m = mdp_lib.make_mdp(P, [[1.0, 3.0], [0.0, 0.0]], 0.9, initial=[1.0, 0.0], terminal=[False, True])
    theta = jnp.log(jnp.array([[0.25, 0.75], [0.5, 0.5]]))
    v = 0.25 * 1.0 + 0.75 * 3.0
    np.testing.assert_allclose(surrogate.advantages(m, theta), [[1.0 - v, 3.0 - v], [0.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("make", [lambda: mdp_lib.random_mdp(jax.random.key(3), 6, 3, 0.9), episodic_mdp])
def test_value_and_gradient_equal_those_of_j_at_theta_old(make):
    m = make()
    S, A = m.R.shape
    theta_old = random_theta(jax.random.key(4), S, A)
    J = pg.exact_objective(m, theta_old)
    np.testing.assert_allclose(surrogate.surrogate_objective(m, theta_old, theta_old), J, atol=1e-5)
    grad_L = jax.grad(surrogate.surrogate_objective, argnums=2)(m, theta_old, theta_old)
    grad_J = jax.grad(pg.exact_objective, argnums=1)(m, theta_old)
    np.testing.assert_allclose(grad_L, grad_J, atol=1e-5)
    # ... but not beyond first order: a finite step separates them.
    theta = theta_old + 2.0 * random_theta(jax.random.key(5), S, A)
    assert abs(float(surrogate.surrogate_objective(m, theta_old, theta) - pg.exact_objective(m, theta))) > 1e-3


def test_surrogate_equals_the_importance_weighted_expectation_by_enumeration():
    m = mdp_lib.random_mdp(jax.random.key(6), 4, 2, 0.8)
    theta_old, theta = random_theta(jax.random.key(7), 4, 2), random_theta(jax.random.key(8), 4, 2)
    pi_old, pi = pg.softmax_policy(theta_old), pg.softmax_policy(theta)
    d_old = pg.discounted_visitation(m, pi_old)
    v = dp.policy_evaluation_exact(m, pi_old)
    adv = dp.q_from_v(m, v) - v[:, None]
    expected = float(m.initial @ v) + sum(d_old[s] * pi_old[s, a] * (pi[s, a] / pi_old[s, a]) * adv[s, a]
                                          for s in range(4) for a in range(2))
    np.testing.assert_allclose(surrogate.surrogate_objective(m, theta_old, theta), expected, rtol=1e-5)


def test_the_lower_bound_holds_on_random_policies():
    keys = jax.random.split(jax.random.key(9), 60)
    for i, key in enumerate(keys):
        k_mdp, k_old, k_new = jax.random.split(key, 3)
        m = mdp_lib.random_mdp(k_mdp, 5, 3, [0.5, 0.9, 0.99][i % 3])
        theta_old = 2.0 * random_theta(k_old, 5, 3)
        theta = theta_old + [0.05, 0.5, 3.0][i % 3] * random_theta(k_new, 5, 3)
        assert float(pg.exact_objective(m, theta)) >= float(surrogate.lower_bound(m, theta_old, theta)) - 1e-4
        # The penalty is KL-based: it vanishes with the step.
    m = mdp_lib.random_mdp(keys[0], 5, 3, 0.9)
    np.testing.assert_allclose(surrogate.max_kl(m, theta_old, theta_old), 0.0, atol=1e-6)


def test_max_kl_by_hand_and_bad_gamma():
    m = mdp_lib.random_mdp(jax.random.key(10), 2, 2, 0.9)
    old = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
    new = jnp.log(jnp.array([[0.5, 0.5], [0.5, 0.5]]))
    expected = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    np.testing.assert_allclose(surrogate.max_kl(m, old, new), expected, rtol=1e-5)
    np.testing.assert_allclose(kl.categorical_kl(jnp.exp(old[1]), jnp.exp(new[1])), expected, rtol=1e-5)
    undiscounted = episodic_mdp(gamma=1.0)
    with pytest.raises(ValueError, match="gamma < 1"):
        surrogate.penalty_coefficient(undiscounted, jnp.zeros((5, 3)))
