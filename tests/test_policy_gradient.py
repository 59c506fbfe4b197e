"""Policy gradients on tabular MDPs: the theorem against autodiff, estimators against the theorem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import dp
from rlbook_lib import mdp as mdp_lib
from rlbook_lib import policy_gradient as pg
from rlbook_lib import score_function as sf

from _pg_models import chain_with_terminal, episodic_mdp, random_theta


# --- the score -------------------------------------------------------------------------


def test_grad_log_policy_equals_autodiff():
    S, A = 3, 4
    theta = random_theta(jax.random.key(0), S, A)
    for s in range(S):
        for a in range(A):
            autodiff = jax.grad(lambda th: jax.nn.log_softmax(th[s])[a])(theta)
            np.testing.assert_allclose(pg.grad_log_policy(theta, s, a), autodiff, atol=1e-6)


def test_score_has_mean_zero_so_a_baseline_adds_nothing():
    # Σ_a π(a|s) ∇log π(a|s) = ∇ Σ_a π(a|s) = 0, hence E[b(s) ∇log π(A|s)] = b(s) · 0 exactly.
    S, A = 4, 3
    theta = 3.0 * random_theta(jax.random.key(1), S, A)
    pi = pg.softmax_policy(theta)
    np.testing.assert_allclose(pi.sum(axis=-1), 1.0, rtol=1e-6)
    for s in range(S):
        mean_score = sum(pi[s, a] * pg.grad_log_policy(theta, s, a) for a in range(A))
        np.testing.assert_allclose(mean_score, 0.0, atol=1e-6)


def test_theorem_by_enumeration_with_any_baseline():
    # Σ_s d(s) Σ_a π(a|s) (q(s,a) − b(s)) ∇log π(a|s) is ∇J for every b, by exact enumeration.
    m = mdp_lib.random_mdp(jax.random.key(16), 4, 3, 0.8)
    theta = random_theta(jax.random.key(17), 4, 3)
    pi = pg.softmax_policy(theta)
    q = dp.q_from_v(m, dp.policy_evaluation_exact(m, pi))
    d = pg.discounted_visitation(m, pi)
    for b in [jnp.zeros(4), 10.0 * random_theta(jax.random.key(18), 4, 1)[:, 0]]:
        enumerated = sum(d[s] * pi[s, a] * (q[s, a] - b[s]) * pg.grad_log_policy(theta, s, a)
                         for s in range(4) for a in range(3))
        np.testing.assert_allclose(enumerated, pg.exact_gradient(m, theta), atol=1e-5)


def test_entropy_by_hand_and_its_gradient_equals_autodiff():
    theta = jnp.log(jnp.array([[1.0, 1.0, 1.0], [1.0, 3.0, 0.0 + 1e-30], [2.0, 1.0, 1.0]]))
    pi1 = np.array([1 / 4, 3 / 4])  # the third action of state 1 has probability 1e-30: it adds nothing
    np.testing.assert_allclose(pg.entropy(theta), [np.log(3), -np.sum(pi1 * np.log(pi1)),
                                                   -(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25))], rtol=1e-5)
    theta = 2.0 * random_theta(jax.random.key(19), 4, 3)
    weights = jnp.array([1.0, -2.0, 0.5, 3.0])
    autodiff = jax.grad(lambda th: jnp.sum(weights * pg.entropy(th)))(theta)
    np.testing.assert_allclose(weights[:, None] * pg.entropy_gradient(theta), autodiff, atol=1e-6)
    np.testing.assert_allclose(pg.entropy_gradient(jnp.zeros((2, 3))), 0.0, atol=1e-7)  # the uniform maximises it


# --- exact quantities ------------------------------------------------------------------


@pytest.mark.parametrize("S, A, gamma", [(2, 2, 0.5), (5, 3, 0.9), (8, 4, 0.95)])
def test_exact_gradient_equals_autodiff_of_the_objective(S, A, gamma):
    def both(key):
        key_mdp, key_theta = jax.random.split(key)
        m = mdp_lib.random_mdp(key_mdp, S, A, gamma)
        theta = 2.0 * random_theta(key_theta, S, A)
        return pg.exact_gradient(m, theta), jax.grad(pg.exact_objective, argnums=1)(m, theta)

    theorem, autodiff = jax.jit(jax.vmap(both))(jax.random.split(jax.random.key(S), 4))
    scale = np.abs(autodiff).max(axis=(1, 2), keepdims=True)
    assert np.all(np.abs(theorem - autodiff) <= 2e-5 * scale + 1e-6)


def test_exact_gradient_equals_autodiff_with_termination_and_gamma_one():
    for gamma in [1.0, 0.9]:
        m = episodic_mdp(gamma)
        theta = random_theta(jax.random.key(2), 5, 3)
        autodiff = jax.grad(pg.exact_objective, argnums=1)(m, theta)
        np.testing.assert_allclose(pg.exact_gradient(m, theta), autodiff, atol=1e-5 * np.abs(autodiff).max())


@pytest.mark.parametrize("gamma, entropy_coef", [(0.9, 0.5), (1.0, 2.0)])
def test_entropy_regularised_gradient_equals_autodiff(gamma, entropy_coef):
    # The theorem with the bonus (d^π-weighted direct term) against jax.grad through the linear solve.
    m = episodic_mdp(gamma)
    theta = 2.0 * random_theta(jax.random.key(20), 5, 3)
    autodiff = jax.grad(pg.exact_objective, argnums=1)(m, theta, entropy_coef)
    np.testing.assert_allclose(pg.exact_gradient(m, theta, entropy_coef), autodiff,
                               atol=2e-5 * np.abs(autodiff).max())
    # J_H = Σ_s d^π(s) (r_π(s) + c_H H(π(·|s))), by the visitation instead of the value.
    pi = pg.softmax_policy(theta)
    by_visitation = pg.discounted_visitation(m, pi) @ (mdp_lib.policy_rewards(m, pi) + entropy_coef * pg.entropy(theta))
    np.testing.assert_allclose(pg.exact_objective(m, theta, entropy_coef), by_visitation, rtol=1e-5)
    assert not np.allclose(pg.exact_gradient(m, theta, entropy_coef), pg.exact_gradient(m, theta), atol=1e-3)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
def test_visitation_sums_to_one_over_one_minus_gamma_without_terminals(gamma):
    m = mdp_lib.random_mdp(jax.random.key(3), 6, 3, gamma)
    pi = pg.softmax_policy(random_theta(jax.random.key(4), 6, 3))
    d = pg.discounted_visitation(m, pi)
    assert np.all(d >= 0)
    np.testing.assert_allclose(d.sum(), 1 / (1 - gamma), rtol=1e-4)


def test_visitation_equals_power_series_and_gives_the_objective():
    m = episodic_mdp(0.9)
    theta = random_theta(jax.random.key(5), 5, 3)
    pi = pg.softmax_policy(theta)
    # Independent reference in float64: d = Σ_t μ0ᵀ M^t with M = P_π diag(γ (1 − terminal)).
    M = np.einsum("sa,sat->st", np.asarray(pi, np.float64), np.asarray(m.P, np.float64))
    M = M * 0.9 * (1.0 - np.asarray(m.terminal, np.float64))[None, :]
    term, series = np.asarray(m.initial, np.float64), np.zeros(5)
    for _ in range(2000):
        series, term = series + term, term @ M
    d = pg.discounted_visitation(m, pi)
    np.testing.assert_allclose(d, series, rtol=1e-5, atol=1e-6)
    assert d[4] == 0.0  # arriving in the terminal state ends the episode: no step is taken there
    # J = Σ_s μ0(s) v_π(s) = Σ_s d^π(s) r_π(s).
    np.testing.assert_allclose(pg.exact_objective(m, theta), d @ mdp_lib.policy_rewards(m, pi), rtol=1e-5)


def test_visitation_with_gamma_one_counts_expected_steps():
    m = chain_with_terminal(1.0)  # steps are taken in 0 and in 1, then the episode ends in 2
    np.testing.assert_allclose(pg.discounted_visitation(m, mdp_lib.uniform_policy(m)), [1, 1, 0], atol=1e-6)
    np.testing.assert_allclose(pg.exact_objective(m, jnp.zeros((3, 2))), 1 + 1.0 * 2, rtol=1e-6)


# --- transformations and errors --------------------------------------------------------


def test_jit_equals_eager():
    m = episodic_mdp(0.9)
    theta = random_theta(jax.random.key(13), 5, 3)
    key, baseline = jax.random.key(14), jnp.linspace(-1.0, 1.0, 10)

    def everything(m, theta, key, baseline):
        t = sf.sample_trajectory(m, theta, key, 10)
        return (pg.exact_objective(m, theta), pg.exact_gradient(m, theta), t,
                sf.total_return_estimate(theta, t), sf.reinforce_estimate(theta, t, baseline))

    jitted = jax.jit(everything)(m, theta, key, baseline)
    with jax.disable_jit():
        eager = everything(m, theta, key, baseline)
    for x, y in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(eager)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


def test_errors():
    m = episodic_mdp(0.9)
    theta = jnp.zeros((5, 3))
    with pytest.raises(ValueError, match=r"theta must have shape \[S, A\] = \(5, 3\)"):
        pg.exact_objective(m, jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match="theta contains NaN"):
        pg.exact_gradient(m, theta.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="mdp must be an MDP"):
        pg.exact_gradient(tuple(m), theta)
    with pytest.raises(ValueError, match="horizon must be a positive Python int"):
        sf.sample_trajectory(m, theta, jax.random.key(0), 0)
    with pytest.raises(ValueError, match="horizon must be a positive Python int"):
        sf.sample_trajectory(m, theta, jax.random.key(0), 2.5)
    with pytest.raises(ValueError, match="must sum to 1"):
        pg.discounted_visitation(m, jnp.full((5, 3), 0.5))
    t = sf.sample_trajectory(m, theta, jax.random.key(0), 10)
    with pytest.raises(ValueError, match="states: 10, actions: 10, rewards: 9"):
        sf.reinforce_estimate(theta, t._replace(rewards=t.rewards[:9]))
    with pytest.raises(ValueError, match="baseline: 3"):
        sf.reinforce_estimate(theta, t, jnp.zeros(3))
    with pytest.raises(ValueError, match="trajectory must be a Trajectory"):
        sf.total_return_estimate(theta, tuple(t))
    with pytest.raises(ValueError, match="entropy_coef must be a non-negative number"):
        pg.exact_gradient(m, theta, -1.0)
    with pytest.raises(ValueError, match="entropy_coef must be a scalar"):
        sf.reinforce_estimate(theta, t, None, jnp.ones(2))


def test_gamma_one_without_termination_is_an_error():
    m = mdp_lib.random_mdp(jax.random.key(15), 3, 2, 1.0)
    theta = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="singular"):
        pg.exact_objective(m, theta)
    with pytest.raises(ValueError, match="d\\^pi is infinite"):
        pg.discounted_visitation(m, pg.softmax_policy(theta))


def test_exact_gradient_ascent_climbs_to_the_optimum():
    m = mdp_lib.random_mdp(jax.random.key(11), 4, 3, gamma=0.9)
    exact = lambda theta, key: pg.exact_gradient(m, theta)
    ascent = jax.jit(lambda key: pg.gradient_ascent(m, jnp.zeros((4, 3)), exact, key,
                                                    num_steps=300, step_size=1.0))(jax.random.key(0))
    j_star = float(m.initial @ dp.value_iteration(m, tol=1e-7).v)
    assert np.all(np.diff(np.asarray(ascent.objective)) > -1e-5)  # small steps never go down
    np.testing.assert_allclose(ascent.entropy[0], np.log(3), rtol=1e-6)  # the uniform policy, at step 0
    np.testing.assert_allclose(ascent.entropy[-1], pg.entropy(ascent.theta).mean(), rtol=1e-6)
    assert float(ascent.objective[0]) < j_star - 0.05
    assert abs(float(ascent.objective[-1]) - j_star) < 0.02 * abs(j_star)


def test_sampled_gradient_ascent_improves_over_seeds():
    m = mdp_lib.random_mdp(jax.random.key(12), 4, 3, gamma=0.9)

    def sampled(theta, key):
        keys = jax.random.split(key, 8)
        trajectories = jax.vmap(lambda k: sf.sample_trajectory(m, theta, k, 80))(keys)
        return jax.vmap(lambda t: sf.reinforce_estimate(theta, t))(trajectories).mean(axis=0)

    run = lambda key: pg.gradient_ascent(m, jnp.zeros((4, 3)), sampled, key, num_steps=100, step_size=0.5)
    ascents = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(1), 4))
    gains = np.asarray(ascents.objective[:, -1] - ascents.objective[:, 0])
    assert np.median(gains) > 0.5 * float(
        m.initial @ dp.value_iteration(m, tol=1e-7).v - ascents.objective[0, 0])


def test_gradient_ascent_rejects_bad_steps():
    m = mdp_lib.random_mdp(jax.random.key(13), 3, 2, gamma=0.9)
    with pytest.raises(ValueError, match="num_steps"):
        pg.gradient_ascent(m, jnp.zeros((3, 2)), lambda th, k: th, jax.random.key(0),
                           num_steps=0, step_size=0.1)
