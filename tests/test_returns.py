"""Discounted returns: hand calculations, an lfilter oracle, episode ends, transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from rlbook_lib import returns


def lfilter_returns(rewards, gamma):
    """G_t = Σ_k γ^k r_{t+1+k} as a linear filter run over the reversed rewards."""
    return scipy.signal.lfilter([1.0], [1.0, -gamma], np.asarray(rewards, np.float64)[::-1])[::-1]


def test_by_hand():
    G = returns.discounted_returns(jnp.array([1.0, 0.0, 2.0]), jnp.full(3, 0.9))
    expected = [1 + 0.9 * (0 + 0.9 * 2), 0 + 0.9 * 2, 2]
    np.testing.assert_allclose(G, expected, rtol=1e-6)
    assert G.dtype == jnp.float32


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_constant_discount_equals_lfilter(gamma):
    rewards = jax.random.normal(jax.random.key(0), (200,))
    G = returns.discounted_returns(rewards, jnp.full(200, gamma))
    expected = lfilter_returns(rewards, gamma)
    np.testing.assert_allclose(G, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_zero_discount_cuts_the_sum_between_episodes():
    # Two episodes back to back: the first terminates on its second step.
    rewards = jnp.array([1.0, 2.0, 3.0, 4.0])
    discounts = jnp.array([0.9, 0.0, 0.9, 0.9])
    G = returns.discounted_returns(rewards, discounts)
    expected = [1 + 0.9 * 2, 2, 3 + 0.9 * 4, 4]
    np.testing.assert_allclose(G, expected, rtol=1e-6)
    # Each episode's returns equal the returns of that episode alone.
    np.testing.assert_allclose(G[:2], lfilter_returns(rewards[:2], 0.9), rtol=1e-6)
    np.testing.assert_allclose(G[2:], lfilter_returns(rewards[2:], 0.9), rtol=1e-6)


def test_bootstrap_value_enters_with_gamma_to_the_remaining_steps():
    T, gamma, bootstrap = 6, 0.8, 5.0
    rewards = jax.random.normal(jax.random.key(1), (T,))
    discounts = jnp.full(T, gamma)
    with_bootstrap = returns.discounted_returns(rewards, discounts, bootstrap)
    without = returns.discounted_returns(rewards, discounts)
    remaining = T - np.arange(T)  # T − t steps to the cut
    np.testing.assert_allclose(with_bootstrap - without, gamma**remaining * bootstrap, rtol=1e-5)


def test_bootstrap_value_is_ignored_after_termination():
    rewards, discounts = jnp.array([1.0, 2.0]), jnp.array([0.9, 0.0])
    np.testing.assert_array_equal(returns.discounted_returns(rewards, discounts, 100.0),
                                  returns.discounted_returns(rewards, discounts, 0.0))


def test_jit_equals_eager():
    key_r, key_d = jax.random.split(jax.random.key(2))
    rewards = jax.random.normal(key_r, (50,))
    discounts = 0.95 * jax.random.bernoulli(key_d, 0.9, (50,))
    jitted = jax.jit(returns.discounted_returns)(rewards, discounts, 1.5)
    with jax.disable_jit():
        eager = returns.discounted_returns(rewards, discounts, 1.5)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)


def test_vmap_equals_loop():
    B, T = 5, 30
    key_r, key_d, key_b = jax.random.split(jax.random.key(3), 3)
    rewards = jax.random.normal(key_r, (B, T))
    discounts = 0.9 * jax.random.bernoulli(key_d, 0.8, (B, T))
    bootstrap = jax.random.normal(key_b, (B,))
    batched = jax.vmap(returns.discounted_returns)(rewards, discounts, bootstrap)
    looped = [returns.discounted_returns(rewards[i], discounts[i], bootstrap[i]) for i in range(B)]
    np.testing.assert_allclose(batched, np.stack(looped), rtol=1e-6, atol=1e-6)


def test_empty_trajectory():
    assert returns.discounted_returns(jnp.zeros(0), jnp.zeros(0)).shape == (0,)


@pytest.mark.parametrize(
    "rewards, discounts, bootstrap, match",
    [
        (jnp.ones(3), jnp.ones(4), 0.0, "rewards: 3, discounts: 4"),
        (jnp.ones((2, 3)), jnp.ones((2, 3)), 0.0, r"rewards must have shape \[T\]"),
        (jnp.ones(3), 0.9, 0.0, r"discounts must have shape \[T\]"),
        (jnp.ones(3), jnp.ones(3), jnp.zeros(3), "bootstrap_value must be a scalar"),
    ],
)
def test_errors(rewards, discounts, bootstrap, match):
    with pytest.raises(ValueError, match=match):
        returns.discounted_returns(rewards, discounts, bootstrap)
