r"""REINFORCE leave-one-out (RLOO): k samples per prompt, each baselined by the other k − 1.

For one prompt x we sample k responses y_1, ..., y_k ~ π_θ(·|x) and score them,
r_i = r(x, y_i). REINFORCE with a baseline b_i estimates the policy gradient as

.. math::

    \hat g = \frac1k \sum_{i=1}^k \big(r_i - b_i\big)\, \nabla_\theta \log \pi_\theta(y_i \mid x),

which is unbiased whenever b_i does not depend on y_i (then E[b_i ∇ log π_θ(y_i|x)] = 0).
RLOO (Kool et al., 2019; Ahmadian et al., 2024) takes the mean reward of the *other* samples,

.. math::

    b_i = \frac{1}{k-1} \sum_{j \ne i} r_j, \qquad
    \hat A_i = r_i - b_i = \frac{k}{k-1}\,\big(r_i - \bar r\big), \quad \bar r = \frac1k \sum_j r_j,

independent of y_i because the samples are independent, so the estimator stays unbiased.
The second form follows from Σ_{j≠i} r_j = k r̄ − r_i:
r_i − (k r̄ − r_i)/(k − 1) = (k r_i − k r̄)/(k − 1). So RLOO's advantage is the
group-centred reward r_i − r̄ of GRPO without the division by the group's standard
deviation (:func:`rlbook_lib.llm.grpo.group_advantages` with ``normalize_std=False``),
times k/(k − 1); subtracting the plain mean r̄ instead, which contains r_i, would shrink
every gradient by (k − 1)/k, a bias that RLOO's factor undoes. A baseline needs k ≥ 2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def _check_group(rewards) -> int:
    if np.ndim(rewards) != 1:
        raise ValueError(f"rewards must have shape [k] (one prompt's group; vmap over prompts), "
                         f"got shape {np.shape(rewards)}")
    k = np.shape(rewards)[0]
    if k < 2:
        raise ValueError(f"the group size k must be at least 2 for a leave-one-out baseline, got k = {k}")
    return k


def leave_one_out_baselines(rewards: Float[Array, "k"]) -> Float[Array, "k"]:
    r"""b_i = (Σ_{j≠i} r_j)/(k − 1) for one prompt's k rewards (``ValueError`` if k < 2)."""
    k = _check_group(rewards)
    rewards = jnp.asarray(rewards, jnp.float32)
    return (jnp.sum(rewards) - rewards) / (k - 1)


def rloo_advantages(rewards: Float[Array, "k"]) -> Float[Array, "k"]:
    r"""Â_i = r_i − (Σ_{j≠i} r_j)/(k − 1) for one prompt's k rewards (``ValueError`` if k < 2).

    Equals k/(k − 1) (r_i − r̄). Vmap over prompts: ``jax.vmap(rloo_advantages)(rewards[P, k])``.
    """
    return jnp.asarray(rewards, jnp.float32) - leave_one_out_baselines(rewards)


def reinforce_loss(sequence_logp: Float[Array, "k"], advantages: Float[Array, "k"]) -> Float[Array, ""]:
    r"""−(1/k) Σ_i Â_i log π_θ(y_i|x): minimising it follows the REINFORCE gradient ĝ above.

    ``sequence_logp`` holds log π_θ(y_i|x) (the sum of the response's token log-probabilities,
    differentiable in θ); the advantages are held fixed (``stop_gradient``). Its value is
    not an objective to watch, only its gradient matters.
    """
    if np.shape(sequence_logp) != np.shape(advantages) or np.ndim(advantages) != 1:
        raise ValueError(f"sequence_logp and advantages must both have shape [k], got "
                         f"{np.shape(sequence_logp)} and {np.shape(advantages)}")
    return -jnp.mean(jax.lax.stop_gradient(jnp.asarray(advantages, jnp.float32)) * sequence_logp)
