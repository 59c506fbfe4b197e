"""Tests for rlbook_lib.action_selection: probabilities by hand, sampled frequencies
against those probabilities (within standard errors), masks, ties, and jit = eager."""

import math

import numpy as np
import pytest

from rlbook_lib import action_selection  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

N = 40_000  # samples per frequency test; 5 standard errors is < 0.013 for any p


def frequencies(sample, seed: int, num_actions: int) -> np.ndarray:
    """Relative frequencies of N actions drawn by ``sample(key)`` under jit(vmap)."""
    keys = jax.random.split(jax.random.key(seed), N)
    actions = np.asarray(jax.jit(jax.vmap(sample))(keys))
    assert actions.dtype.kind == "i" and actions.min() >= 0 and actions.max() < num_actions
    return np.bincount(actions, minlength=num_actions) / N


def assert_within_standard_errors(freq, probs, z=5.0):
    """|f_a − p_a| ≤ z · sqrt(p_a (1 − p_a) / N) for every action; p_a = 0 means never drawn."""
    probs = np.asarray(probs, np.float64)
    se = np.sqrt(probs * (1 - probs) / N)
    assert np.all(np.abs(freq - probs) <= z * se + 1e-12), (freq, probs)


# --------------------------------------------------------------------------- greedy


def test_greedy_takes_the_argmax():
    assert int(action_selection.greedy(jnp.array([0.5, -1.0, 2.0, 1.9]))) == 2


def test_greedy_breaks_ties_to_the_lowest_index():
    assert int(action_selection.greedy(jnp.array([1.0, 3.0, 0.0, 3.0]))) == 1
    assert int(action_selection.greedy(jnp.zeros(5))) == 0


# ------------------------------------------------------------------------- ε-greedy


def test_epsilon_greedy_probabilities_by_hand():
    probs = action_selection.epsilon_greedy_probabilities(jnp.array([1.0, 3.0, 3.0, 0.0]), 0.2)
    np.testing.assert_allclose(probs, [0.2 / 4, 0.2 / 4 + 0.8 / 2, 0.2 / 4 + 0.8 / 2, 0.2 / 4], rtol=1e-6)


def test_epsilon_greedy_probabilities_extremes():
    q = jnp.array([1.0, 3.0, 0.0])
    np.testing.assert_allclose(action_selection.epsilon_greedy_probabilities(q, 0.0), [0, 1, 0])
    np.testing.assert_allclose(action_selection.epsilon_greedy_probabilities(q, 1.0), [1 / 3] * 3, rtol=1e-6)


def test_masked_epsilon_greedy_probabilities_by_hand():
    # Action 1 has the largest value but does not exist here: the greedy valid action is 2.
    valid = jnp.array([True, False, True, False])
    probs = action_selection.epsilon_greedy_probabilities(jnp.array([1.0, 5.0, 3.0, 0.0]), 0.2, valid)
    np.testing.assert_allclose(probs, [0.2 / 2, 0.0, 0.2 / 2 + 0.8, 0.0], rtol=1e-6)


@pytest.mark.parametrize("q, epsilon, seed", [([1.0, 3.0, 3.0, 0.0], 0.2, 1), ([2.0, 1.0, 0.0, -1.0], 0.5, 2),
                                              ([0.0, 4.0, 1.0, 2.0], 0.05, 3)])
def test_epsilon_greedy_samples_its_probabilities(q, epsilon, seed):
    q = jnp.array(q)
    freq = frequencies(lambda k: action_selection.epsilon_greedy(k, q, epsilon), seed, 4)
    assert_within_standard_errors(freq, action_selection.epsilon_greedy_probabilities(q, epsilon))


def test_epsilon_greedy_breaks_ties_at_random_among_greedy_actions():
    # ε = 0: only the greedy actions 0, 2 and 3 are drawn, each a third of the time.
    q = jnp.array([2.0, 1.0, 2.0, 2.0])
    freq = frequencies(lambda k: action_selection.epsilon_greedy(k, q, 0.0), 4, 4)
    assert freq[1] == 0
    assert_within_standard_errors(freq, [1 / 3, 0.0, 1 / 3, 1 / 3])


def test_masked_epsilon_greedy_samples_valid_actions_only():
    q, valid = jnp.array([1.0, 5.0, 3.0, 3.0]), jnp.array([True, False, True, True])
    freq = frequencies(lambda k: action_selection.epsilon_greedy(k, q, 0.3, valid), 5, 4)
    probs = action_selection.epsilon_greedy_probabilities(q, 0.3, valid)
    assert freq[1] == 0 and float(probs[1]) == 0
    np.testing.assert_allclose(probs, [0.3 / 3, 0, 0.3 / 3 + 0.7 / 2, 0.3 / 3 + 0.7 / 2], rtol=1e-6)
    assert_within_standard_errors(freq, probs)


# -------------------------------------------------------------------------- softmax


def test_softmax_probabilities_by_hand():
    h, tau = jnp.array([1.0, 2.0, 0.0]), 0.5
    z = math.exp(1.0 / 0.5) + math.exp(2.0 / 0.5) + math.exp(0.0 / 0.5)
    expected = [math.exp(1.0 / 0.5) / z, math.exp(2.0 / 0.5) / z, math.exp(0.0 / 0.5) / z]
    np.testing.assert_allclose(action_selection.softmax_probabilities(h, tau), expected, rtol=1e-6)
    np.testing.assert_allclose(action_selection.softmax_probabilities(h), np.exp([1, 2, 0]) / np.exp([1, 2, 0]).sum(),
                               rtol=1e-6)


def test_softmax_probabilities_are_stable_for_large_preferences():
    probs = action_selection.softmax_probabilities(jnp.array([1000.0, 1000.0, 0.0]))
    np.testing.assert_allclose(probs, [0.5, 0.5, 0.0], atol=1e-6)


def test_softmax_temperature_limits():
    h = jnp.array([0.3, 1.0, -2.0])
    np.testing.assert_allclose(action_selection.softmax_probabilities(h, 1e4), [1 / 3] * 3, atol=1e-3)
    np.testing.assert_allclose(action_selection.softmax_probabilities(h, 1e-3), [0, 1, 0], atol=1e-6)


def test_softmax_samples_its_probabilities():
    h, tau = jnp.array([0.5, 1.5, -1.0, 0.0]), 0.8
    freq = frequencies(lambda k: action_selection.softmax(k, h, tau), 6, 4)
    assert_within_standard_errors(freq, action_selection.softmax_probabilities(h, tau))


# -------------------------------------------------------------------- transformations


def test_jit_equals_eager():
    q, valid = jnp.array([1.0, 3.0, 3.0, 0.0]), jnp.array([True, True, False, True])
    keys = jax.random.split(jax.random.key(7), 16)
    calls = [
        (action_selection.greedy, (q,)),
        (action_selection.epsilon_greedy_probabilities, (q, 0.3)),
        (action_selection.epsilon_greedy_probabilities, (q, 0.3, valid)),
        (action_selection.softmax_probabilities, (q, 0.7)),
    ] + [(action_selection.epsilon_greedy, (k, q, 0.5, valid)) for k in keys] \
      + [(action_selection.softmax, (k, q, 0.7)) for k in keys]
    for fn, args in calls:
        eager, jitted = np.asarray(fn(*args)), np.asarray(jax.jit(fn)(*args))
        if eager.dtype.kind == "f":  # XLA may fuse exp/sum differently under jit: last-bit differences
            np.testing.assert_allclose(eager, jitted, rtol=1e-6)
        else:
            np.testing.assert_array_equal(eager, jitted)


def test_vmap_over_states_equals_one_state_at_a_time():
    q = jax.random.normal(jax.random.key(8), (5, 3))
    keys = jax.random.split(jax.random.key(9), 5)
    batched = jax.vmap(action_selection.epsilon_greedy, in_axes=(0, 0, None))(keys, q, 0.4)
    one_by_one = [action_selection.epsilon_greedy(k, row, 0.4) for k, row in zip(keys, q)]
    np.testing.assert_array_equal(batched, one_by_one)
    np.testing.assert_array_equal(jax.vmap(action_selection.greedy)(q), np.argmax(np.asarray(q), -1))


def test_epsilon_may_be_traced_for_sweeps():
    q = jnp.array([1.0, 0.0])
    probs = jax.vmap(action_selection.epsilon_greedy_probabilities, in_axes=(None, 0))(q, jnp.array([0.0, 0.5]))
    np.testing.assert_allclose(probs, [[1, 0], [0.75, 0.25]], rtol=1e-6)
