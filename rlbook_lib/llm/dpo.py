r"""Direct preference optimisation (DPO; Rafailov et al., 2023): the reward model folded into the policy.

The KL-regularised objective max_π E_{y~π}[r(x, y)] − β KL(π(·|x) ‖ π_ref(·|x)) has the
closed-form optimum (:func:`kl_regularized_optimum`)

.. math::

    \pi^*(y \mid x) = \frac{1}{Z(x)}\, \pi_{\text{ref}}(y \mid x)\, e^{r(x, y)/\beta}
    \quad\Longleftrightarrow\quad
    r(x, y) = \beta \log \frac{\pi^*(y \mid x)}{\pi_{\text{ref}}(y \mid x)} + \beta \log Z(x).

Substituting this *implicit reward* (:func:`implicit_reward`) into the Bradley–Terry
likelihood of :mod:`rlbook_lib.llm.preferences`, the partition function Z(x) cancels in
the difference r(x, y_c) − r(x, y_r), and the reward model's loss becomes a loss on the
policy itself (:func:`dpo_loss`):

.. math::

    \mathcal L_{\text{DPO}}(\theta) = -\log \sigma\big(\beta\, u_\theta\big), \qquad
    u_\theta = \big(\log\pi_\theta(y_c|x) - \log\pi_{\text{ref}}(y_c|x)\big)
             - \big(\log\pi_\theta(y_r|x) - \log\pi_{\text{ref}}(y_r|x)\big),

on *sequence* log-probabilities (sums over the response's tokens). Its gradient is

.. math::

    \nabla_\theta \mathcal L_{\text{DPO}} = -\beta\, \sigma(-\beta u_\theta)\,
        \big(\nabla_\theta \log\pi_\theta(y_c|x) - \nabla_\theta \log\pi_\theta(y_r|x)\big):

the two score functions, weighted by how wrongly the implicit reward orders the pair.

**The gradient at π_θ = π_ref does not vanish as β grows.** There u = 0 and σ(0) = ½, so
∇L = −(β/2)(∇ log π_θ(y_c) − ∇ log π_θ(y_r)): it is *proportional* to β. What does hold:

* as β → 0 the gradient vanishes (∝ β), at π_ref and everywhere else;
* at π_ref, ∇L/β = −½ (score difference) does not depend on β, so β only rescales the
  first step (Adam's steps are nearly invariant to the gradient's scale);
* for β → ∞ the gradient vanishes wherever the pair is already ordered correctly (u > 0),
  since β σ(−βu) ≤ β e^{−βu} → 0, and grows without bound where u < 0: a large β makes
  DPO a hard-margin loss on the sign of u, not a stay-at-π_ref regulariser.

What β controls is the optimum: on Bradley–Terry comparisons from r* that cover every pair
of responses, the expected DPO loss is minimised where β u_θ = r*(y_c) − r*(y_r) for every
pair, i.e. by π_θ = π* ∝ π_ref e^{r*/β}, which tends to π_ref as β → ∞. So "a large β keeps
π_θ near π_ref" is true of the minimiser, not of the gradient at π_ref.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rlbook_lib.mdp import is_traced


def _check_beta(beta) -> None:
    if np.ndim(beta) != 0:
        raise ValueError(f"beta must be a scalar, got shape {np.shape(beta)}")
    if not is_traced(beta) and not float(beta) >= 0.0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")


def implicit_reward(logp: Float[Array, "*N"], ref_logp: Float[Array, "*N"], beta: float) -> Float[Array, "*N"]:
    """β (log π_θ(y|x) − log π_ref(y|x)) on sequence log-probabilities: the reward (up to β log Z(x))
    for which π_θ is the KL-regularised optimum."""
    _check_beta(beta)
    if np.shape(logp) != np.shape(ref_logp):
        raise ValueError(f"logp and ref_logp must have the same shape, got {np.shape(logp)} and {np.shape(ref_logp)}")
    return beta * (jnp.asarray(logp, jnp.float32) - jnp.asarray(ref_logp, jnp.float32))


def dpo_loss(logp_chosen: Float[Array, "*N"], logp_rejected: Float[Array, "*N"],
             ref_logp_chosen: Float[Array, "*N"], ref_logp_rejected: Float[Array, "*N"],
             beta: float = 0.1) -> Float[Array, ""]:
    r"""Mean over comparisons of −log σ(β u_θ), u_θ = (log π_θ(y_c) − log π_ref(y_c))
    − (log π_θ(y_r) − log π_ref(y_r)) (module docstring).

    Arguments are sequence log-probabilities, one entry per comparison ([N] or scalars),
    ``logp_*`` differentiable in θ, ``ref_logp_*`` from the frozen reference model.
    Computed as softplus(−β u), finite for any margin. ``ValueError`` if β < 0 or the four
    arrays differ in shape. β = 0.1 is the paper's usual value.
    """
    shapes = {"logp_chosen": np.shape(logp_chosen), "logp_rejected": np.shape(logp_rejected),
              "ref_logp_chosen": np.shape(ref_logp_chosen), "ref_logp_rejected": np.shape(ref_logp_rejected)}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"chosen and rejected log-probabilities must have matching shapes (one entry per "
                         f"comparison), got {shapes}")
    margin = (implicit_reward(logp_chosen, ref_logp_chosen, beta)
              - implicit_reward(logp_rejected, ref_logp_rejected, beta))
    return jnp.mean(jax.nn.softplus(-margin))


def kl_regularized_optimum(ref_log_probs: Float[Array, "K"], rewards: Float[Array, "K"], beta: float
                           ) -> Float[Array, "K"]:
    r"""log π*(y) = log π_ref(y) + r(y)/β − log Z over K enumerated responses, the maximiser of
    E_π[r] − β KL(π ‖ π_ref) (β > 0; ``ValueError`` otherwise). For tiny vocabularies and tests."""
    _check_beta(beta)
    if not is_traced(beta) and float(beta) == 0.0:
        raise ValueError("beta must be > 0 for the KL-regularised optimum (β = 0 is the argmax of r)")
    if np.ndim(ref_log_probs) != 1 or np.shape(ref_log_probs) != np.shape(rewards):
        raise ValueError(f"ref_log_probs and rewards must both have shape [K], got {np.shape(ref_log_probs)} "
                         f"and {np.shape(rewards)}")
    return jax.nn.log_softmax(jnp.asarray(ref_log_probs, jnp.float32) + jnp.asarray(rewards, jnp.float32) / beta)
