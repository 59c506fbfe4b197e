r"""PPO's losses and diagnostics (Schulman et al., 2017), as pure functions of per-sample arrays.

With the probability ratio ρ_t(θ) = π_θ(a_t | s_t) / π_θold(a_t | s_t) and an advantage
estimate Â_t, the **clipped surrogate** (to maximise) is

.. math::

    L^{CLIP}(\theta) = \mathbb{E}_t\Big[\min\big(\rho_t \hat A_t,\
        \operatorname{clip}(\rho_t, 1-\epsilon, 1+\epsilon)\, \hat A_t\big)\Big],

a pessimistic (lower) bound on the unclipped surrogate ρ_t Â_t: for Â > 0 it stops
rewarding ρ above 1 + ε, for Â < 0 below 1 − ε, and it never hides a loss. At ρ = 1
its gradient is the vanilla policy gradient E[Â_t ∇ log π_θ(a_t | s_t)].
The **KL-penalised surrogate** of the paper's §4 is

.. math::

    L^{KLPEN}(\theta) = \mathbb{E}_t\big[\rho_t \hat A_t - \beta\, \mathrm{KL}(\pi_{\theta_\text{old}}(\cdot\mid s_t)\,
        \|\, \pi_\theta(\cdot\mid s_t))\big],

with β adapted after every policy update from the measured d = E_t[KL]: halved
when d < d_targ / 1.5, doubled when d > 1.5 d_targ (:func:`adaptive_kl_beta`).

The **clipped value loss** (Huang et al., 2022, detail 9) keeps the new value within
ε of the old one in the same pessimistic way:
½ max((v − G)², (v_old + clip(v − v_old, −ε, ε) − G)²).

**Diagnostics.** k₃ = (ρ − 1) − log ρ is an unbiased, non-negative estimate of
KL(π_old ‖ π_θ) from samples of π_old (Schulman, 2020, "Approximating KL divergence");
the clip fraction is the share of samples with |ρ − 1| > ε.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float

from rlbook_lib import kl as kl_divergence


def clipped_surrogate(ratio: Float[Array, "*B"], advantage: Float[Array, "*B"],
                      clip_eps: Float[Array, ""] | float) -> Float[Array, "*B"]:
    """min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â) per sample (to maximise)."""
    return jnp.minimum(ratio * advantage, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage)


def kl_penalized_surrogate(ratio: Float[Array, "*B"], advantage: Float[Array, "*B"], kl: Float[Array, "*B"],
                           beta: Float[Array, ""] | float) -> Float[Array, "*B"]:
    """ρ Â − β KL(π_old ‖ π_θ) per sample (to maximise)."""
    return ratio * advantage - beta * kl


def value_loss(value: Float[Array, "*B"], old_value: Float[Array, "*B"], target: Float[Array, "*B"],
               clip_eps: Float[Array, ""] | float | None) -> Float[Array, "*B"]:
    """½ (v − G)², or with ``clip_eps`` ε the clipped ½ max((v − G)², (v_old + clip(v − v_old, ±ε) − G)²)."""
    unclipped = jnp.square(value - target)
    if clip_eps is None:
        return 0.5 * unclipped
    clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    return 0.5 * jnp.maximum(unclipped, jnp.square(clipped - target))


def adaptive_kl_beta(beta: Float[Array, ""], kl: Float[Array, ""], kl_target: Float[Array, ""] | float
                     ) -> Float[Array, ""]:
    """β/2 if d < d_targ/1.5, 2β if d > 1.5 d_targ, else β (Schulman et al., 2017, §4)."""
    return jnp.where(kl < kl_target / 1.5, beta / 2, jnp.where(kl > 1.5 * kl_target, beta * 2, beta))


def approx_kl_k3(log_ratio: Float[Array, "*B"]) -> Float[Array, ""]:
    """mean of k₃ = (ρ − 1) − log ρ (:func:`rlbook_lib.kl.k3`), with log ρ = log π_θ − log π_old on
    actions drawn from π_old: an estimate of KL(π_old ‖ π_θ)."""
    return jnp.mean(kl_divergence.k3(log_ratio))


def clip_fraction(ratio: Float[Array, "*B"], clip_eps: Float[Array, ""] | float) -> Float[Array, ""]:
    """Share of samples whose ratio lies outside [1 − ε, 1 + ε]."""
    return jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))


class LossInfo(NamedTuple):
    """Per gradient step; averaged over an update's steps in the algorithms' Metrics."""

    policy_loss: Float[Array, ""]
    """−L^{CLIP} (or −L^{KLPEN}) on the minibatch."""
    value_loss: Float[Array, ""]
    """Mean (clipped) ½ (v − G)²."""
    entropy: Float[Array, ""]
    """Mean entropy of π_θ(· | s_t), nats."""
    approx_kl: Float[Array, ""]
    """Mean k₃ estimate of KL(π_old ‖ π_θ)."""
    clip_fraction: Float[Array, ""]
    """Share of ratios outside [1 − ε, 1 + ε]."""
