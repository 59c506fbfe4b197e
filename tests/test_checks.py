"""Tests for rlbook_lib.checks: each check accepts good arguments, rejects bad ones with
a ValueError naming the argument, and lets traced values (under vmap) through."""

import numpy as np
import pytest

from rlbook_lib import checks, mdp  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import random_walk  # noqa: E402


def two_state_mdp():
    P = np.zeros((2, 3, 2))
    P[:, :, 1] = 1.0
    return mdp.make_mdp(P, np.zeros((2, 3)), gamma=0.9, initial=np.array([1.0, 0.0]))


# ------------------------------------------------------------------ hyperparameters


def test_good_hyperparameters_pass():
    checks.check_hyperparameters(gamma=1.0, epsilon=0.0, step_size=0.5, step_size_power=0.0, epsilon_decay=0.0)
    checks.check_hyperparameters(gamma=np.float32(0.9), epsilon=jnp.array(1.0))


@pytest.mark.parametrize("name, value, expected", [
    ("gamma", 1.5, r"gamma must be a scalar in \[0, 1\]"),
    ("gamma", -0.1, "gamma"),
    ("epsilon", 1.01, r"epsilon must be a scalar in \[0, 1\]"),
    ("step_size", 0.0, "step_size must be a scalar > 0"),
    ("step_size_power", -0.5, "step_size_power must be a scalar >= 0"),
    ("epsilon_decay", -1.0, "epsilon_decay must be a scalar >= 0"),
    ("gamma", [0.5, 0.9], "gamma must be a scalar"),
    ("epsilon", float("nan"), "epsilon"),
])
def test_bad_hyperparameters_are_named(name, value, expected):
    with pytest.raises(ValueError, match=expected):
        checks.check_hyperparameters(**{name: value})


def test_unknown_hyperparameter_is_rejected():
    with pytest.raises(ValueError, match="learning_rate"):
        checks.check_hyperparameters(learning_rate=0.1)


def test_traced_hyperparameters_are_skipped_under_vmap():
    def f(gamma):
        checks.check_hyperparameters(gamma=gamma)
        checks.check_entropy_coef(gamma)
        return gamma

    np.testing.assert_allclose(jax.vmap(f)(jnp.array([0.5, 2.0])), [0.5, 2.0])


# ---------------------------------------------------------------------- integers


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_ints_pass(value):
    checks.check_positive_int("num_episodes", value)


@pytest.mark.parametrize("value", [0, -2, 1.0, True, "3", np.float32(2.0)])
def test_non_positive_ints_are_named(value):
    with pytest.raises(ValueError, match="num_episodes must be a positive int"):
        checks.check_positive_int("num_episodes", value)


# -------------------------------------------------------------------- entropy coef


def test_entropy_coef():
    checks.check_entropy_coef(0.0)
    checks.check_entropy_coef(np.float32(0.3))
    with pytest.raises(ValueError, match="entropy_coef must be a non-negative number"):
        checks.check_entropy_coef(-0.1)
    with pytest.raises(ValueError, match="entropy_coef must be a non-negative number"):
        checks.check_entropy_coef(float("nan"))
    with pytest.raises(ValueError, match="entropy_coef must be a scalar"):
        checks.check_entropy_coef(jnp.zeros(2))


# ------------------------------------------------------------- environments, MDPs


def test_environment():
    checks.check_environment(random_walk.RandomWalk())
    with pytest.raises(ValueError, match="env must be an rlbook_lib.envs.base.Environment"):
        checks.check_environment("RandomWalk")


def test_mdp_and_policy_parameters():
    m = two_state_mdp()
    checks.check_mdp(m)
    checks.check_mdp_and_policy_parameters(m, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mdp must be an MDP"):
        checks.check_mdp((m.P, m.R))
    with pytest.raises(ValueError, match=r"theta must have shape \[S, A\] = \(2, 3\)"):
        checks.check_mdp_and_policy_parameters(m, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="theta contains NaN"):
        checks.check_policy_parameters(np.array([[0.0, np.inf, 0.0], [0.0, 0.0, 0.0]]), 2, 3)
    # traced θ (under vmap): only the shape is checked
    jax.vmap(lambda th: checks.check_policy_parameters(th, 2, 3))(jnp.full((4, 2, 3), jnp.nan))


def test_policy_matrix():
    checks.check_policy(np.full((2, 3), 1 / 3), 2, 3)
    with pytest.raises(ValueError, match=r"pi must have shape \[S, A\] = \(2, 3\)"):
        checks.check_policy(np.full((3, 2), 0.5), 2, 3)
    with pytest.raises(ValueError, match="every row pi"):
        checks.check_policy(np.array([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]]), 2, 3)
    with pytest.raises(ValueError, match="every row pi"):
        checks.check_policy(np.array([[1.5, -0.5, 0.0], [1.0, 0.0, 0.0]]), 2, 3)


# --------------------------------------------------------------------- sequences


def test_sequences_return_their_shared_length():
    assert checks.check_sequences(rewards=np.zeros(5), discounts=jnp.ones(5)) == 5
    assert checks.check_sequences() == 0


def test_sequences_of_different_lengths_are_listed():
    with pytest.raises(ValueError, match="rewards: 5, discounts: 4"):
        checks.check_sequences(rewards=np.zeros(5), discounts=np.zeros(4))
    with pytest.raises(ValueError, match=r"rewards must have shape \[T\]"):
        checks.check_sequences(rewards=np.zeros((2, 5)))


def test_sequences_are_checked_on_tracers():
    with pytest.raises(ValueError, match="discounts: 4"):
        jax.jit(lambda r, d: checks.check_sequences(rewards=r, discounts=d))(jnp.zeros(5), jnp.zeros(4))
