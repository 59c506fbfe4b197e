"""Best-of-n: the exact distribution against brute-force enumeration of all n draws (with ties),
its KL against the bound log n − (n−1)/n, and selection of the best candidate."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import best_of_n


def brute_force(probs, rewards, n):
    """Enumerate every tuple of n draws; the kept draw is uniform among those with the highest reward."""
    out = np.zeros(len(probs))
    for draws in itertools.product(range(len(probs)), repeat=n):
        weight = np.prod([probs[i] for i in draws])
        best = max(rewards[i] for i in draws)
        winners = [i for i in draws if rewards[i] == best]
        for i in winners:
            out[i] += weight / len(winners)
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("rewards", [[0.0, 1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 1.0, 2.0, 0.0], [1.0] * 5])
def test_probabilities_match_brute_force_with_and_without_ties(n, rewards):
    probs = np.array([0.1, 0.3, 0.05, 0.25, 0.3])
    expected = brute_force(probs, rewards, n)
    np.testing.assert_allclose(best_of_n.probabilities(probs, rewards, n), expected, atol=1e-12)
    kl = np.sum(np.where(expected > 0, expected * np.log(expected / probs), 0.0))
    np.testing.assert_allclose(best_of_n.kl(probs, rewards, n), kl, atol=1e-12)


def test_n_equal_one_and_all_tied_give_the_reference():
    probs, rewards = np.array([0.2, 0.5, 0.3]), np.array([3.0, 1.0, 2.0])
    np.testing.assert_allclose(best_of_n.probabilities(probs, rewards, 1), probs)
    np.testing.assert_allclose(best_of_n.probabilities(probs, np.zeros(3), 16), probs)
    assert best_of_n.kl(probs, np.zeros(3), 16) == pytest.approx(0.0, abs=1e-12)


def test_kl_is_below_the_bound_and_approaches_it_as_atoms_vanish():
    for n in (2, 8, 64):
        gaps = []
        for k in (4, 64, 4096):  # uniform over k outcomes with distinct rewards
            probs = np.full(k, 1.0 / k)
            kl = best_of_n.kl(probs, np.arange(k, dtype=float), n)
            assert kl < best_of_n.kl_bound(n)
            gaps.append(best_of_n.kl_bound(n) - kl)
        assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.02 * best_of_n.kl_bound(n)
    # ties lower it further: merging outcomes into groups of equal reward
    probs = np.full(64, 1 / 64)
    assert best_of_n.kl(probs, np.arange(64) // 8, 8) < best_of_n.kl(probs, np.arange(64.0), 8)
    assert best_of_n.kl_bound(1) == 0.0


def test_large_n_stays_accurate_on_a_long_tail():
    """Mass near the top is tiny; survival sums keep π_bon a distribution for n = 10⁴."""
    probs = np.exp(-np.arange(2000) / 50.0)
    probs /= probs.sum()
    bon = best_of_n.probabilities(probs, -np.arange(2000.0), 10_000)  # the likeliest is the worst
    assert bon.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(bon >= 0)
    assert best_of_n.kl(probs, -np.arange(2000.0), 10_000) <= best_of_n.kl_bound(10_000)


def test_select_keeps_the_highest_score_under_vmap():
    candidates = jnp.arange(12).reshape(2, 3, 2)  # 2 prompts, 3 candidates of 2 tokens
    scores = jnp.array([[0.1, 0.9, 0.5], [2.0, -1.0, 2.0]])
    chosen = jax.jit(jax.vmap(best_of_n.select))(candidates, scores)
    np.testing.assert_array_equal(chosen, [[2, 3], [6, 7]])


def test_bad_input():
    with pytest.raises(ValueError, match="distribution"):
        best_of_n.kl([0.5, 0.6], [0.0, 1.0], 2)
    with pytest.raises(ValueError, match="same shape"):
        best_of_n.kl([0.5, 0.5], [0.0], 2)
    with pytest.raises(ValueError, match="positive int"):
        best_of_n.probabilities([1.0], [0.0], 0)
    with pytest.raises(ValueError, match="share n"):
        best_of_n.select(jnp.zeros((3, 2)), jnp.zeros(2))
