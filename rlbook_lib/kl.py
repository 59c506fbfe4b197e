r"""KL divergences: exact for categorical and Gaussian distributions, and Monte Carlo estimators.

.. math::

    \mathrm{KL}(q \,\|\, p) = \mathbb{E}_{x \sim q}\Big[\log \frac{q(x)}{p(x)}\Big] \;\ge\; 0,

zero only when q = p. It is not symmetric: the *forward* KL(p ‖ q) of an
approximation q to a target p punishes q for missing any mass of p (q covers
every mode), the *reverse* KL(q ‖ p) punishes q for putting mass where p has
little (q picks one mode).

**Estimators from samples** (Schulman, "Approximating KL divergence", 2020).
When only samples :math:`x \sim q` and the log-probabilities of both
distributions at them are at hand (RLHF: tokens sampled from the policy
:math:`q = \pi_\theta`, with :math:`p = \pi_{\text{ref}}`), write

.. math:: \log r = \log p(x) - \log q(x), \qquad r = \frac{p(x)}{q(x)}, \qquad x \sim q,

and average one of

=====  ==========================  ====================================================
name   estimator                   properties, for :math:`\mathrm{KL}(q \| p)`
=====  ==========================  ====================================================
k1     :math:`-\log r`             unbiased (by definition); can be negative; high variance
k2     :math:`\tfrac12 (\log r)^2`  biased, but ≥ 0 and low variance when p ≈ q
                                   (its mean is KL to second order)
k3     :math:`(r - 1) - \log r`    unbiased (:math:`\mathbb{E}_q[r] = 1`), and ≥ 0 because
                                   :math:`\log r \le r - 1`
=====  ==========================  ====================================================

All three take ``log_ratio`` = log r, never r itself: log-probabilities are
what models give, and k3 is computed as ``expm1(log_ratio) - log_ratio`` (by its
Taylor series when |log r| < 0.01), which stays accurate when r is close to 1,
where r − 1 and log r nearly cancel.

Every function works on one sample or one distribution; vmap (or broadcast)
at the call site.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rlbook_lib.mdp import is_traced


def _check_same_shape(**arrays) -> None:
    shapes = {name: np.shape(x) for name, x in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"arguments must have the same shape, got {shapes}")
    for name, shape in shapes.items():
        if len(shape) == 0:
            raise ValueError(f"{name} must have a category axis [K], got a scalar")


def categorical_kl_from_logits(p_logits: Float[Array, "K"], q_logits: Float[Array, "K"]) -> Float[Array, ""]:
    r"""Exact :math:`\mathrm{KL}(p \| q) = \sum_k p_k (\log p_k - \log q_k)` from logits.

    ``p = softmax(p_logits)``, ``q = softmax(q_logits)``, over the last axis
    (leading axes broadcast). Log-softmax keeps it finite and accurate for
    logits of any size; a logit of −∞ is a category with probability 0
    (0 · log 0 = 0 on the p side; on the q side, where p is positive, KL = +∞).
    """
    _check_same_shape(p_logits=p_logits, q_logits=q_logits)
    log_p = jax.nn.log_softmax(jnp.asarray(p_logits, jnp.float32), axis=-1)
    log_q = jax.nn.log_softmax(jnp.asarray(q_logits, jnp.float32), axis=-1)
    return _kl_from_log_probs(log_p, log_q)


def categorical_kl(p: Float[Array, "K"], q: Float[Array, "K"]) -> Float[Array, ""]:
    r"""Exact :math:`\mathrm{KL}(p \| q) = \sum_{k:\, p_k > 0} p_k \log (p_k / q_k)` from probabilities.

    Terms with :math:`p_k = 0` are 0; a :math:`q_k = 0` where :math:`p_k > 0`
    gives +∞ (p is not absolutely continuous with respect to q). Concrete
    arguments must be distributions over the last axis (``ValueError`` otherwise).
    """
    _check_same_shape(p=p, q=q)
    for name, x in (("p", p), ("q", q)):
        if not is_traced(x):
            x = np.asarray(x, np.float64)
            if np.any(x < 0) or not np.allclose(x.sum(-1), 1.0, atol=1e-5):
                raise ValueError(f"{name} must be a probability distribution over its last axis")
    p, q = jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)
    return _kl_from_log_probs(jnp.log(p), jnp.log(q))


def _kl_from_log_probs(log_p, log_q):
    p = jnp.exp(log_p)
    # 0 · (−∞ − anything) = 0: categories that p never takes contribute nothing.
    terms = jnp.where(p > 0, p * (log_p - log_q), 0.0)
    return jnp.sum(terms, axis=-1)


def gaussian_kl(mean_q, std_q, mean_p, std_p) -> Float[Array, ""]:
    r"""Exact :math:`\mathrm{KL}(\mathcal N(\mu_q, \sigma_q^2) \,\|\, \mathcal N(\mu_p, \sigma_p^2))`

    .. math:: \log\frac{\sigma_p}{\sigma_q} + \frac{\sigma_q^2 + (\mu_q - \mu_p)^2}{2\sigma_p^2} - \frac12 .

    Arguments broadcast; standard deviations must be positive (checked when concrete).
    """
    for name, s in (("std_q", std_q), ("std_p", std_p)):
        if not is_traced(s) and not np.all(np.asarray(s) > 0):
            raise ValueError(f"{name} must be positive, got {s!r}")
    mean_q, std_q, mean_p, std_p = (jnp.asarray(x, jnp.float32) for x in (mean_q, std_q, mean_p, std_p))
    return jnp.log(std_p / std_q) + (std_q**2 + (mean_q - mean_p) ** 2) / (2 * std_p**2) - 0.5


def k1(log_ratio: Float[Array, "*N"]) -> Float[Array, "*N"]:
    r"""k1 = −log r, with ``log_ratio`` = log p(x) − log q(x), x ~ q: unbiased for KL(q ‖ p)."""
    return -jnp.asarray(log_ratio, jnp.float32)


def k2(log_ratio: Float[Array, "*N"]) -> Float[Array, "*N"]:
    r"""k2 = ½ (log r)²: non-negative and biased; E_q[k2] = KL(q ‖ p) + O(‖p − q‖³)."""
    log_ratio = jnp.asarray(log_ratio, jnp.float32)
    return 0.5 * log_ratio**2


def k3(log_ratio: Float[Array, "*N"]) -> Float[Array, "*N"]:
    r"""k3 = (r − 1) − log r = ``expm1(log_ratio) − log_ratio``: unbiased for KL(q ‖ p), and ≥ 0.

    Unbiased because :math:`\mathbb{E}_{x\sim q}[r - 1] = \sum_{x:\, q(x) > 0} p(x) - 1 = 0`
    when q is positive wherever p is (otherwise the mean of r − 1 is negative and
    k3 underestimates). Non-negative because :math:`\log r \le r - 1` for every
    r > 0: the tangent of log at 1 lies above it.
    """
    x = jnp.asarray(log_ratio, jnp.float32)
    # Near r = 1, expm1(x) and x agree in all but a few digits; the series
    # x²/2 + x³/6 + x⁴/24 + x⁵/120 keeps the relative accuracy there.
    small = jnp.abs(x) < 1e-2
    series = x * x * (0.5 + x * (1.0 / 6 + x * (1.0 / 24 + x / 120)))
    return jnp.where(small, series, jnp.expm1(x) - x)
