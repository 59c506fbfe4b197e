r"""Pairwise preferences under the Bradley–Terry model: simulated raters, the reward-model loss, accuracy.

A rater shown two responses a and b to the same prompt prefers a with probability

.. math::

    P(a \succ b) = \sigma\big(r(a) - r(b)\big) = \frac{1}{1 + e^{-(r(a) - r(b))}}

(Bradley and Terry, 1952), where r is the rater's (hidden, "true") reward r* and σ the
logistic function. Only reward *differences* matter: r and r + c give the same preferences.

* :func:`simulate_preferences` samples such raters from a known r*, so every later
  experiment can compare what was learned with the truth.
* :func:`bradley_terry_loss` is the negative log-likelihood of a reward model r_φ on
  comparisons (chosen y_c, rejected y_r),
  :math:`\mathcal L(\phi) = -\mathbb{E}\big[\log \sigma(r_\phi(y_c) - r_\phi(y_r))\big]`,
  i.e. logistic regression on score differences (Ziegler et al., 2019; Ouyang et al., 2022).
* :func:`calibration_bins` gives the points of a reliability diagram: is P_φ(a ≻ b) =
  σ(r_φ(a) − r_φ(b)) right as a probability, not only as a ranking?
* :func:`bayes_optimal_accuracy` is the best held-out accuracy any reward model can reach
  on labels drawn from the Bradley–Terry model: predicting the response with the higher
  r* is right with probability σ(|r*(a) − r*(b)|), so noisy raters cap accuracy below 1.

Arrays of scores are [N] (one entry per comparison) or scalars; every function works
elementwise and the losses and accuracies average over the N comparisons.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray


def _check_pairs(**arrays) -> None:
    shapes = {name: np.shape(x) for name, x in arrays.items()}
    if len(set(shapes.values())) > 1:
        shown = ", ".join(f"{name}: {shape}" for name, shape in shapes.items())
        raise ValueError(f"preference pairs must have matching shapes (one entry per comparison), got {shown}")


def bradley_terry_probability(reward_a: Float[Array, "*N"], reward_b: Float[Array, "*N"]) -> Float[Array, "*N"]:
    """P(a ≻ b) = σ(r(a) − r(b)), elementwise."""
    _check_pairs(reward_a=reward_a, reward_b=reward_b)
    return jax.nn.sigmoid(jnp.asarray(reward_a, jnp.float32) - jnp.asarray(reward_b, jnp.float32))


def bradley_terry_loss(chosen_scores: Float[Array, "*N"], rejected_scores: Float[Array, "*N"]) -> Float[Array, ""]:
    r"""Mean negative log-likelihood −log σ(r_φ(y_c) − r_φ(y_r)) over the comparisons.

    Computed as softplus(−(r_c − r_r)) = log(1 + e^{−(r_c − r_r)}), finite for any margin.
    ``ValueError`` if the chosen and rejected scores differ in shape.
    """
    _check_pairs(chosen_scores=chosen_scores, rejected_scores=rejected_scores)
    margin = jnp.asarray(chosen_scores, jnp.float32) - jnp.asarray(rejected_scores, jnp.float32)
    return jnp.mean(jax.nn.softplus(-margin))


def simulate_preferences(key: PRNGKeyArray, true_reward_a: Float[Array, "*N"], true_reward_b: Float[Array, "*N"]
                         ) -> Bool[Array, "*N"]:
    """Simulated raters: ``True`` where a is preferred, sampled with probability σ(r*(a) − r*(b)).

    Each comparison is an independent Bernoulli draw; the same key gives the same labels.
    """
    return jax.random.bernoulli(key, bradley_terry_probability(true_reward_a, true_reward_b))


def order_pairs(a, b, prefers_a: Bool[Array, "N"]):
    """(chosen, rejected) from a pair and its labels: chosen[i] = a[i] if prefers_a[i] else b[i].

    ``a`` and ``b`` have a leading axis [N] and any trailing shape (scores, token arrays,
    masks); ``prefers_a`` is [N].
    """
    _check_pairs(a=a, b=b)
    if np.shape(prefers_a) != np.shape(a)[:1]:
        raise ValueError(f"prefers_a must have shape [N] = {np.shape(a)[:1]}, got {np.shape(prefers_a)}")
    a, b = jnp.asarray(a), jnp.asarray(b)
    pick = jnp.reshape(jnp.asarray(prefers_a, bool), np.shape(prefers_a) + (1,) * (a.ndim - 1))
    return jnp.where(pick, a, b), jnp.where(pick, b, a)


def preference_accuracy(score_a: Float[Array, "*N"], score_b: Float[Array, "*N"], prefers_a: Bool[Array, "*N"]
                        ) -> Float[Array, ""]:
    """Share of comparisons where the model's choice (a if r_φ(a) > r_φ(b)) agrees with the label.

    Ties (r_φ(a) = r_φ(b)) count one half.
    """
    _check_pairs(score_a=score_a, score_b=score_b, prefers_a=prefers_a)
    diff = jnp.asarray(score_a, jnp.float32) - jnp.asarray(score_b, jnp.float32)
    label = jnp.where(jnp.asarray(prefers_a, bool), 1.0, -1.0)
    return jnp.mean(jnp.where(diff == 0, 0.5, (jnp.sign(diff) == label).astype(jnp.float32)))


def expected_accuracy(score_a: Float[Array, "*N"], score_b: Float[Array, "*N"],
                      true_reward_a: Float[Array, "*N"], true_reward_b: Float[Array, "*N"]) -> Float[Array, ""]:
    r"""Accuracy of a reward model r_φ in expectation over Bradley–Terry labels from r*:

    mean over comparisons of P*(a ≻ b) where r_φ picks a, 1 − P*(a ≻ b) where it picks b
    (½ on ties). The noise-free counterpart of :func:`preference_accuracy`.
    """
    _check_pairs(score_a=score_a, score_b=score_b, true_reward_a=true_reward_a, true_reward_b=true_reward_b)
    p_star = bradley_terry_probability(true_reward_a, true_reward_b)
    diff = jnp.asarray(score_a, jnp.float32) - jnp.asarray(score_b, jnp.float32)
    return jnp.mean(jnp.where(diff > 0, p_star, jnp.where(diff < 0, 1.0 - p_star, 0.5)))


def bayes_optimal_accuracy(true_reward_a: Float[Array, "*N"], true_reward_b: Float[Array, "*N"]
                           ) -> Float[Array, ""]:
    r"""The highest expected accuracy of any predictor on Bradley–Terry labels from r*:

    .. math:: \frac1N \sum_i \max(p_i, 1 - p_i) = \frac1N \sum_i \sigma\big(|r^*(a_i) - r^*(b_i)|\big),

    reached by predicting the response with the higher r* (:func:`expected_accuracy` with
    r_φ = r*). ½ for pairs of equal true reward, → 1 for pairs far apart.
    """
    _check_pairs(true_reward_a=true_reward_a, true_reward_b=true_reward_b)
    diff = jnp.asarray(true_reward_a, jnp.float32) - jnp.asarray(true_reward_b, jnp.float32)
    return jnp.mean(jax.nn.sigmoid(jnp.abs(diff)))


class CalibrationBins(NamedTuple):
    """A reliability diagram: one entry per bin of predicted probability (0 where ``count`` is 0)."""

    mean_predicted: Float[Array, "M"]
    """Mean predicted P(a ≻ b) of the comparisons in the bin."""
    frequency: Float[Array, "M"]
    """Share of those comparisons where a was preferred."""
    count: Float[Array, "M"]
    """Number of comparisons in the bin."""


def calibration_bins(predicted: Float[Array, "N"], prefers_a: Bool[Array, "N"], num_bins: int = 10
                     ) -> CalibrationBins:
    """Bin the predictions P_φ(a ≻ b) into ``num_bins`` equal-width bins of [0, 1] (the last bin
    closed) and compare each bin's mean prediction with the observed frequency of a ≻ b; a
    calibrated model lies on the diagonal. Plot only bins with ``count > 0``."""
    _check_pairs(predicted=predicted, prefers_a=prefers_a)
    if not isinstance(num_bins, (int, np.integer)) or isinstance(num_bins, bool) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}")
    predicted = jnp.ravel(jnp.asarray(predicted, jnp.float32))
    labels = jnp.ravel(jnp.asarray(prefers_a, jnp.float32))
    index = jnp.clip(jnp.floor(predicted * num_bins).astype(jnp.int32), 0, num_bins - 1)
    count = jnp.zeros(num_bins).at[index].add(1.0)
    total_predicted = jnp.zeros(num_bins).at[index].add(predicted)
    total_preferred = jnp.zeros(num_bins).at[index].add(labels)
    safe = jnp.maximum(count, 1.0)
    return CalibrationBins(total_predicted / safe, total_preferred / safe, count)
