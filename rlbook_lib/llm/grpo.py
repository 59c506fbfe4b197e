r"""Group relative policy optimisation (GRPO; Shao et al., 2024): advantages, KL term, loss and its averaging.

For one prompt, k responses y_1..y_k are sampled from π_θold and scored r_1..r_k. GRPO
replaces PPO's critic by the group's statistics (:func:`group_advantages`),

.. math:: \hat A_i = \frac{r_i - \operatorname{mean}(r)}{\operatorname{std}(r) + \varepsilon},

given to every token of y_i, and minimises per token t of response i

.. math::

    \ell_{i,t} = -\min\big(\rho_{i,t} \hat A_i,\ \operatorname{clip}(\rho_{i,t}, 1-\epsilon, 1+\epsilon)\hat A_i\big)
                 + \beta\, k_3\big(\rho^{\text{ref}}_{i,t}\big),
    \qquad \rho_{i,t} = \frac{\pi_\theta(y_{i,t}\mid\cdot)}{\pi_{\theta_\text{old}}(y_{i,t}\mid\cdot)},
    \quad \rho^{\text{ref}}_{i,t} = \frac{\pi_{\text{ref}}(y_{i,t}\mid\cdot)}{\pi_\theta(y_{i,t}\mid\cdot)},

with k₃(ρ) = ρ − 1 − log ρ (:func:`rlbook_lib.kl.k3`, computed with ``expm1``) and the
clipped surrogate of :func:`rlbook_lib.ppo_loss.clipped_surrogate`.

**Bias.** Dividing by the group's std makes Â_i depend on y_i's own reward through the
std, so the estimator is no longer an unbiased policy gradient (it reweights prompts:
groups with nearly equal rewards get large advantages); ``normalize_std=False`` gives
r_i − r̄, which is RLOO's advantage times (k − 1)/k (:mod:`rlbook_lib.llm.rloo`), the
form Dr. GRPO (Liu et al., 2025) recommends. We use the population std (ddof 0); TRL's
``std()`` uses ddof 1, which differs by √(k/(k−1)). ε defaults to TRL's 1e-4.

**Averaging tokens** (:func:`aggregate`), a choice that biases response length:

* ``"sequence_mean"`` (original GRPO): (1/B) Σ_i (1/|y_i|) Σ_t ℓ_{i,t}. A token of a
  short response weighs more, so short correct answers are reinforced more strongly and
  long wrong answers are penalised less per token.
* ``"token_mean"`` (DAPO, Yu et al., 2025): Σ_{i,t} ℓ_{i,t} / Σ_i |y_i|, every token of the
  batch equal.
* ``"constant"`` (Dr. GRPO): Σ_{i,t} ℓ_{i,t} / (B · L_max) with a constant L_max (the
  generation budget), so no term depends on lengths.

**One update per batch.** When π_θ = π_θold, ρ = 1 in value, so the surrogate's value is
−(1/B)Σ_i Â_i, which is 0 when the advantages have zero mean (with ``"sequence_mean"``;
not with ``"token_mean"`` when lengths differ): the logged loss is ≈ 0 (plus β·KL). Its
gradient is ∇ρ = ∇ log π_θ, the full policy gradient −(1/B)Σ_i Â_i (1/|y_i|) Σ_t ∇ log π_θ(y_{i,t}).

**The k₃ gradient is biased** (:func:`kl_penalty`). See that function for the derivation
and the corrected form ``kl_form="k3_ratio"``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rlbook_lib import kl as kl_divergence
from rlbook_lib import ppo_loss
from rlbook_lib.checks import check_sequences
from rlbook_lib.mdp import is_traced

AGGREGATIONS = ("sequence_mean", "token_mean", "constant")
KL_FORMS = ("k3", "k3_ratio")


def group_advantages(rewards: Float[Array, "k"], eps: float = 1e-4, normalize_std: bool = True
                     ) -> Float[Array, "k"]:
    """Â_i = (r_i − mean r)/(std r + ε) for one prompt's k rewards (r_i − mean r if not
    ``normalize_std``). Zero mean in every group; ``ValueError`` if k < 2 or ε < 0."""
    if np.ndim(rewards) != 1 or np.shape(rewards)[0] < 2:
        raise ValueError(f"rewards must have shape [k] with group size k >= 2 (vmap over prompts), "
                         f"got shape {np.shape(rewards)}")
    _check_scalar_at_least("eps", eps, 0.0)
    rewards = jnp.asarray(rewards, jnp.float32)
    centred = rewards - jnp.mean(rewards)
    if not normalize_std:
        return centred
    return centred / (jnp.sqrt(jnp.mean(centred**2)) + eps)


def kl_penalty(logp: Float[Array, "T"], old_logp: Float[Array, "T"], ref_logp: Float[Array, "T"],
               kl_form: str = "k3") -> Float[Array, "T"]:
    r"""Per-token KL term of the loss, for tokens sampled from π_θold.

    ``"k3"`` (GRPO): k₃(ρ^ref_t) = ρ^ref_t − 1 − log ρ^ref_t, ρ^ref_t = π_ref/π_θ.
    ``"k3_ratio"`` (corrected): ρ_t · k₃(ρ^ref_t), ρ_t = π_θ/π_θold.

    **Why "k3" has a biased gradient.** Take one token position with a categorical π_θ and
    write r(y) = π_ref(y)/π_θ(y). Its value is unbiased, E_{y~π_θ}[k₃] = KL(π_θ ‖ π_ref),
    but the loss differentiates k₃ at fixed samples, and ∇_θ k₃(y) = (1 − r(y)) ∇ log π_θ(y), so

    .. math::

        \mathbb{E}_{y\sim\pi_\theta}\big[\nabla_\theta k_3(y)\big]
          = \sum_y (\pi_\theta(y) - \pi_{\text{ref}}(y))\,\nabla_\theta \log \pi_\theta(y)
          = -\sum_y \pi_{\text{ref}}(y)\, \nabla_\theta \log \pi_\theta(y)
          = \nabla_\theta \mathrm{KL}(\pi_{\text{ref}} \,\|\, \pi_\theta),

    (Σ_y ∇π_θ(y) = 0): the gradient of the *forward* KL, not of the reverse
    KL(π_θ ‖ π_ref) = Σ_y π_θ(y) log(π_θ(y)/π_ref(y)) whose gradient is
    E_{π_θ}[(log π_θ − log π_ref)(y) ∇ log π_θ(y)]. The two agree to first order
    near π_θ = π_ref and differ away from it. The missing piece is the score-function term
    of the sampling distribution's dependence on θ. (The same reasoning gives the k₁ form
    log π_θ − log π_ref in the loss an expected gradient of E[∇ log π_θ] = 0.)

    **Correction.** Weight by the importance ratio ρ_t = π_θ/π_θold (π_θold held fixed):
    E_{y~π_θold}[ρ k₃] = Σ_y π_θ(y) k₃(y) = KL(π_θ ‖ π_ref) holds *as a function of θ*,
    because the sampling distribution no longer moves with θ, so its gradient is exact:
    at θ = θold, ∇(ρ k₃) = k₃ ∇log π_θ + (1 − r)∇log π_θ, whose mean is
    E[(log π_θ − log π_ref)∇ log π_θ]. Equivalently, the k₁ score form
    sg(log π_θ − log π_ref) ∇log π_θ (a stop-gradient reward, as in PPO-RLHF) has the same mean.
    """
    check_sequences(logp=logp, old_logp=old_logp, ref_logp=ref_logp)
    if kl_form not in KL_FORMS:
        raise ValueError(f"kl_form must be one of {KL_FORMS}, got {kl_form!r}")
    logp = jnp.asarray(logp, jnp.float32)
    k3 = kl_divergence.k3(jax.lax.stop_gradient(jnp.asarray(ref_logp, jnp.float32)) - logp)
    if kl_form == "k3":
        return k3
    return jnp.exp(logp - jax.lax.stop_gradient(jnp.asarray(old_logp, jnp.float32))) * k3


def token_losses(logp: Float[Array, "T"], old_logp: Float[Array, "T"], ref_logp: Float[Array, "T"],
                 advantage: Float[Array, ""], clip_eps: float = 0.2, beta: float = 0.04,
                 kl_form: str = "k3") -> Float[Array, "T"]:
    r"""ℓ_t = −min(ρ_t Â, clip(ρ_t, 1 ± ε) Â) + β KL_t for the T tokens of one response (module docstring).

    ``logp`` is differentiable in θ; ``old_logp`` and ``ref_logp`` are treated as constants
    (``stop_gradient`` inside), so ``old_logp = logp`` is the on-policy case ρ = 1.
    Defaults ε = 0.2, β = 0.04 (Shao et al., 2024). Masking happens in :func:`aggregate`.
    """
    if np.ndim(advantage) != 0:
        raise ValueError(f"advantage must be a scalar (one response; vmap for a batch), got shape "
                         f"{np.shape(advantage)}")
    _check_scalar_at_least("clip_eps", clip_eps, 0.0)
    _check_scalar_at_least("beta", beta, 0.0)
    kl_t = kl_penalty(logp, old_logp, ref_logp, kl_form)
    ratio = jnp.exp(jnp.asarray(logp, jnp.float32) - jax.lax.stop_gradient(jnp.asarray(old_logp, jnp.float32)))
    return -ppo_loss.clipped_surrogate(ratio, jnp.asarray(advantage, jnp.float32), clip_eps) + beta * kl_t


def aggregate(losses: Float[Array, "B T"], mask: Float[Array, "B T"], aggregation: str = "sequence_mean",
              max_length: int | None = None) -> Float[Array, ""]:
    """Average per-token losses of a batch of B responses over their response tokens (mask 1).

    ``aggregation``: ``"sequence_mean"`` (GRPO), ``"token_mean"`` (DAPO) or ``"constant"``
    (Dr. GRPO, divisor B · ``max_length``, default the padded length T); module docstring.
    A response with no tokens contributes 0.
    """
    if np.ndim(losses) != 2 or np.shape(losses) != np.shape(mask):
        raise ValueError(f"losses and mask must have the same shape [B, T], got {np.shape(losses)} and "
                         f"{np.shape(mask)}")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    batch, length = np.shape(losses)
    if max_length is None:
        max_length = length
    if not isinstance(max_length, (int, np.integer)) or isinstance(max_length, bool) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    mask = jnp.asarray(mask, jnp.float32)
    masked = mask * losses
    if aggregation == "sequence_mean":
        return jnp.mean(jnp.sum(masked, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0))
    if aggregation == "token_mean":
        return jnp.sum(masked) / jnp.maximum(jnp.sum(mask), 1.0)
    return jnp.sum(masked) / (batch * max_length)


class GRPOInfo(NamedTuple):
    """Diagnostics of one GRPO loss evaluation (token means over response tokens)."""

    kl: Float[Array, ""]
    """Mean k₃ estimate of KL(π_θ ‖ π_ref) per token."""
    clip_fraction: Float[Array, ""]
    """Share of response tokens with |ρ_t − 1| > ε."""
    ratio: Float[Array, ""]
    """Mean ρ_t = π_θ/π_θold; 1 on the first step after sampling."""


def grpo_loss(logp: Float[Array, "B T"], old_logp: Float[Array, "B T"], ref_logp: Float[Array, "B T"],
              mask: Float[Array, "B T"], advantages: Float[Array, "B"], clip_eps: float = 0.2,
              beta: float = 0.04, aggregation: str = "sequence_mean", kl_form: str = "k3",
              max_length: int | None = None) -> tuple[Float[Array, ""], GRPOInfo]:
    """The GRPO loss of a batch of B responses (any number of groups): :func:`token_losses`
    vmapped over responses, then :func:`aggregate`. Returns (loss, :class:`GRPOInfo`).

    ``advantages[i]`` is Â_i of response i (e.g. ``jax.vmap(group_advantages)(rewards[P, k]).ravel()``
    with responses ordered group by group). Differentiate with ``jax.grad(..., has_aux=True)``.
    """
    if np.ndim(logp) != 2 or not (np.shape(logp) == np.shape(old_logp) == np.shape(ref_logp) == np.shape(mask)):
        raise ValueError(f"logp, old_logp, ref_logp and mask must share one shape [B, T], got {np.shape(logp)}, "
                         f"{np.shape(old_logp)}, {np.shape(ref_logp)} and {np.shape(mask)}")
    if np.shape(advantages) != np.shape(logp)[:1]:
        raise ValueError(f"advantages must have shape [B] = {np.shape(logp)[:1]}, got {np.shape(advantages)}")
    losses = jax.vmap(token_losses, in_axes=(0, 0, 0, 0, None, None, None))(
        logp, old_logp, ref_logp, advantages, clip_eps, beta, kl_form)
    loss = aggregate(losses, mask, aggregation, max_length)
    ratio = jax.lax.stop_gradient(jnp.exp(jnp.asarray(logp, jnp.float32) - jnp.asarray(old_logp, jnp.float32)))
    k3 = jax.lax.stop_gradient(kl_divergence.k3(jnp.asarray(ref_logp) - jnp.asarray(logp)))
    mask = jnp.asarray(mask, jnp.float32)
    tokens = jnp.maximum(jnp.sum(mask), 1.0)
    info = GRPOInfo(kl=jnp.sum(mask * k3) / tokens,
                    clip_fraction=jnp.sum(mask * (jnp.abs(ratio - 1.0) > clip_eps)) / tokens,
                    ratio=jnp.sum(mask * ratio) / tokens)
    return loss, info


def _check_scalar_at_least(name: str, x, low: float) -> None:
    if np.ndim(x) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(x)}")
    if not is_traced(x) and not float(x) >= low:
        raise ValueError(f"{name} must be >= {low}, got {x!r}")
