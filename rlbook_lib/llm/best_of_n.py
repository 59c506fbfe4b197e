r"""Best-of-n sampling: draw n replies from π_ref, keep the one a reward ranks highest.

The simplest use of a reward model r, and the baseline every RL method must beat
(Nakano et al., 2021; Gao et al., 2022). On a discrete set of replies y with reference
probabilities p(y) the distribution of the kept reply is known exactly. With the
cumulative masses below and up to the reward of y,

.. math::

    F^-(y) = \sum_{y':\, r(y') < r(y)} p(y'), \qquad F^+(y) = \sum_{y':\, r(y') \le r(y)} p(y'),

the best of n independent draws has a reward at most r(y) with probability (F^+)^n, so
its reward *equals* r(y) with probability (F^+)^n − (F^-)^n. Within a group of tied
replies the kept one (chosen uniformly among the tied draws) is distributed as p
restricted to the group, so

.. math::

    \pi_{\text{bon}}(y) = p(y)\, \frac{F^+(y)^n - F^-(y)^n}{F^+(y) - F^-(y)}.
    \qquad\qquad (\text{:func:`probabilities`})

Its KL to the reference, Σ π_bon log(π_bon/p), is :func:`kl`. The formula often quoted,
log n − (n−1)/n (:func:`kl_bound`), is the value for a continuous distribution without
ties; on a discrete set it is only an upper bound (Beirami et al., 2024), far from tight
when a few replies carry much of the mass or many replies tie.

Everything here is exact arithmetic in float64 numpy on a distribution given as arrays
``[K]``; :func:`select` is the sampling side, a JAX function for use under jit.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


def _check(probs, rewards, n):
    probs, rewards = np.asarray(probs, np.float64), np.asarray(rewards, np.float64)
    if probs.ndim != 1 or probs.shape != rewards.shape or probs.size == 0:
        raise ValueError(f"probs and rewards must have the same shape [K], K >= 1, got {probs.shape} "
                         f"and {rewards.shape}")
    if np.any(probs < 0) or not np.isclose(probs.sum(), 1.0, atol=1e-6):
        raise ValueError(f"probs must be a distribution (non-negative, summing to 1), sum={probs.sum()}")
    if not np.all(np.isfinite(rewards)):
        raise ValueError("rewards must be finite")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return probs / probs.sum(), rewards


def log_ratio(probs: Float[Array, "K"], rewards: Float[Array, "K"], n: int) -> np.ndarray:
    r"""log(π_bon(y)/p(y)) = log[(F⁺ⁿ − F⁻ⁿ)/(F⁺ − F⁻)] for every outcome (−inf where π_bon is 0).

    Computed from the survival masses G = 1 − F (accurate near F = 1, where best-of-n puts its
    mass) as (n − 1) log F⁺ + log[expm1(n x)/expm1(x)] with x = log F⁻ − log F⁺ ≤ 0.
    """
    probs, rewards = _check(probs, rewards, n)
    order = np.argsort(-rewards, kind="stable")
    r_sorted, p_sorted = rewards[order], probs[order]
    above = np.concatenate([[0.0], np.cumsum(p_sorted)])  # mass of the first i outcomes (highest r)
    # For each outcome: mass strictly above its reward, and at or above it (its tie group included).
    first = np.searchsorted(-r_sorted, -r_sorted, side="left")
    last = np.searchsorted(-r_sorted, -r_sorted, side="right")
    g_gt, g_ge = above[first], np.minimum(above[last], 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_hi, log_lo = np.log1p(-g_gt), np.log1p(-g_ge)  # log F⁺, log F⁻ (−inf at the bottom)
        x = log_lo - log_hi
        factor = np.where(x == 0, np.log(n), np.log(-np.expm1(n * x)) - np.log(-np.expm1(x)))
        out_sorted = (n - 1) * log_hi + factor
    out_sorted = np.where(np.isnan(out_sorted), -np.inf, out_sorted)  # zero-mass outcomes at the bottom
    out = np.empty_like(out_sorted)
    out[order] = out_sorted
    return out


def probabilities(probs: Float[Array, "K"], rewards: Float[Array, "K"], n: int) -> np.ndarray:
    """π_bon(y), the distribution of the best of n draws from ``probs`` ranked by ``rewards`` (ties
    broken uniformly among the tied draws)."""
    probs, _ = _check(probs, rewards, n)
    return probs * np.exp(log_ratio(probs, rewards, n))


def kl(probs: Float[Array, "K"], rewards: Float[Array, "K"], n: int) -> float:
    """KL(π_bon ‖ p) = Σ_y π_bon(y) log(π_bon(y)/p(y)), exactly (nats)."""
    probs, _ = _check(probs, rewards, n)
    ratio = log_ratio(probs, rewards, n)
    bon = probs * np.exp(ratio)
    return float(np.sum(np.where(bon > 0, bon * ratio, 0.0)))


def kl_bound(n) -> np.ndarray:
    """log n − (n − 1)/n: the KL of best-of-n for a continuous reward without ties, an upper bound otherwise."""
    n = np.asarray(n, np.float64)
    if np.any(n < 1):
        raise ValueError(f"n must be >= 1, got {n}")
    return np.log(n) - (n - 1) / n


def select(candidates: Int[Array, "n L"], scores: Float[Array, "n"]) -> Int[Array, "L"]:
    """The candidate with the highest score (the first one on ties); vmap for a batch of prompts."""
    if np.ndim(scores) != 1 or np.shape(candidates)[:1] != np.shape(scores):
        raise ValueError(f"candidates [n, ...] and scores [n] must share n, got {np.shape(candidates)} "
                         f"and {np.shape(scores)}")
    return jnp.asarray(candidates)[jnp.argmax(jnp.asarray(scores))]
