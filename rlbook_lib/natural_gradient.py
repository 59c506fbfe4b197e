r"""Natural-gradient steps inside a trust region: the pieces of TRPO (Schulman et al., 2015).

TRPO maximises a surrogate L(θ) (the importance-weighted advantage of the new
policy on data from the old one, θ_old) subject to a bound δ on the mean KL
divergence from the old policy,

.. math::

    \max_\theta L(\theta) \quad\text{s.t.}\quad
    \bar D(\theta) = \mathbb{E}_s\big[\mathrm{KL}(\pi_{\theta_\text{old}}(\cdot\mid s)\,\|\,\pi_\theta(\cdot\mid s))\big] \le \delta.

To second order around θ_old, D̄(θ_old + Δ) ≈ ½ Δᵀ F Δ, where the Fisher
matrix F = E_s E_{a~π}[∇ log π(a|s) ∇ log π(a|s)ᵀ] is the Hessian of D̄ at
θ_old (its gradient there is 0). With g = ∇L(θ_old), the linearised problem's
solution is the natural gradient F⁻¹g scaled to the boundary:

.. math::

    \Delta^\star = \sqrt{\frac{2\delta}{x^\top F x}}\; x, \qquad x = F^{-1} g .

=========================================  ====================================================
function                                   what it computes
=========================================  ====================================================
:func:`fisher_vector_product`              F v + λv, as ∂/∂ε ∇D̄(θ + ε v): one jvp of a grad
:func:`conjugate_gradient`                 x ≈ A⁻¹ b from products A v only
:func:`natural_step`                       Δ* above, and the improvement gᵀΔ* it predicts
:func:`backtracking_line_search`           θ_old + βᵏ Δ* for the first k with D̄ ≤ δ and L improved
=========================================  ====================================================

F has as many rows as the network has parameters (thousands), so it is never
formed: conjugate gradient only needs products F v, and each costs about two
backward passes (forward-mode differentiation of the reverse-mode gradient).
λ (``damping``) adds λI, which keeps the solve stable where F is nearly singular.
The line search is what makes the step safe: the quadratic model of D̄ and the
linear model of L are only local, so the full step may break the constraint or
make L worse; halving it until both hold gives a step that does neither.

Vectors here are flat (``jax.flatten_util.ravel_pytree`` of the parameters);
all loops are ``lax`` loops, so every function runs under ``jit`` and ``vmap``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

Vector = Float[Array, "P"]


def fisher_vector_product(mean_kl: Callable[[Vector], Float[Array, ""]], theta: Vector, v: Vector,
                          damping: float = 0.0) -> Vector:
    r"""(F + λI) v with F = ∇²D̄(θ), as the directional derivative of ∇D̄ along v (forward over reverse).

    ``mean_kl(θ')`` must be D̄(θ') = mean_s KL(π_{θ_old}(·|s) ‖ π_{θ'}(·|s)) with θ_old
    held fixed (no gradient flows into it), and ``theta`` = θ_old: there the Hessian
    of D̄ is the Fisher matrix E[∇log π ∇log πᵀ].
    """
    return jax.jvp(jax.grad(mean_kl), (theta,), (v,))[1] + damping * v


def conjugate_gradient(matvec: Callable[[Vector], Vector], b: Vector, iterations: int = 10,
                       residual_tol: float = 1e-10) -> Vector:
    r"""x ≈ A⁻¹ b for a symmetric positive-definite A, given only v ↦ A v.

    Hestenes–Stiefel conjugate gradient from x_0 = 0: with r_0 = p_0 = b,

    .. math::

        \alpha_k = \frac{r_k^\top r_k}{p_k^\top A p_k},\quad x_{k+1} = x_k + \alpha_k p_k,\quad
        r_{k+1} = r_k - \alpha_k A p_k,\quad p_{k+1} = r_{k+1} + \frac{r_{k+1}^\top r_{k+1}}{r_k^\top r_k} p_k .

    In exact arithmetic it is exact after P iterations; TRPO uses about 10.
    Iterations stop early once rᵀr < ``residual_tol`` (a ``lax.while_loop``).
    """

    class Carry(NamedTuple):
        k: Int[Array, ""]
        x: Vector
        r: Vector
        p: Vector
        rr: Float[Array, ""]

    def go_on(c: Carry) -> Bool[Array, ""]:
        return (c.k < iterations) & (c.rr > residual_tol)

    def body(c: Carry) -> Carry:
        ap = matvec(c.p)
        alpha = c.rr / jnp.dot(c.p, ap)
        x, r = c.x + alpha * c.p, c.r - alpha * ap
        rr = jnp.dot(r, r)
        return Carry(c.k + 1, x, r, r + (rr / c.rr) * c.p, rr)

    start = Carry(jnp.int32(0), jnp.zeros_like(b), b, b, jnp.dot(b, b))
    return jax.lax.while_loop(go_on, body, start).x


class NaturalStep(NamedTuple):
    step: Vector
    """Δ* = sqrt(2δ / xᵀFx) x, the full step to the boundary of the quadratic trust region."""
    expected_improvement: Float[Array, ""]
    """gᵀΔ*, the improvement of L that its linear model predicts for the full step."""
    direction: Vector
    """x ≈ F⁻¹ g from conjugate gradient."""


def natural_step(fvp: Callable[[Vector], Vector], gradient: Vector, max_kl: Float[Array, ""] | float,
                 cg_iterations: int = 10) -> NaturalStep:
    """The step Δ* of the module docstring, from F-vector products ``fvp`` and g = ∇L(θ_old)."""
    x = conjugate_gradient(fvp, gradient, cg_iterations)
    curvature = jnp.maximum(jnp.dot(x, fvp(x)), 1e-12)  # xᵀFx = 2 D̄ of the step x, to second order
    step = jnp.sqrt(2 * max_kl / curvature) * x
    return NaturalStep(step, jnp.dot(gradient, step), x)


class LineSearchResult(NamedTuple):
    theta: Vector
    """θ_old + βᵏ Δ* for the accepted k, or θ_old if no step was accepted."""
    accepted: Bool[Array, ""]
    """Some step satisfied both conditions."""
    step_fraction: Float[Array, ""]
    """βᵏ of the accepted step; 0 if none was accepted."""
    kl: Float[Array, ""]
    """D̄ at the returned θ (0 when θ_old is kept)."""
    improvement: Float[Array, ""]
    """L(θ) − L(θ_old) at the returned θ (0 when θ_old is kept)."""


def backtracking_line_search(surrogate: Callable[[Vector], Float[Array, ""]],
                             mean_kl: Callable[[Vector], Float[Array, ""]], theta: Vector, full_step: Vector,
                             expected_improvement: Float[Array, ""], max_kl: Float[Array, ""] | float,
                             max_backtracks: int = 10, shrink: float = 0.5,
                             accept_ratio: float = 0.0) -> LineSearchResult:
    r"""The first of θ_old + βᵏ Δ*, k = 0, 1, …, ``max_backtracks`` − 1, with

    .. math::

        \bar D(\theta) \le \delta \quad\text{and}\quad
        L(\theta) - L(\theta_\text{old}) > \max\big(0,\ c\, \beta^k\, g^\top \Delta^\star\big),

    β = ``shrink``, c = ``accept_ratio`` (0: any improvement is enough; Schulman
    et al.'s code uses 0.1 of the linear prediction). If no k qualifies, θ_old is
    kept: the update does nothing rather than leave the trust region or worsen L.
    """
    base = surrogate(theta)

    class Carry(NamedTuple):
        k: Int[Array, ""]
        done: Bool[Array, ""]
        result: LineSearchResult

    def go_on(c: Carry) -> Bool[Array, ""]:
        return (c.k < max_backtracks) & ~c.done

    def body(c: Carry) -> Carry:
        fraction = shrink ** c.k.astype(jnp.float32)
        candidate = theta + fraction * full_step
        kl, improvement = mean_kl(candidate), surrogate(candidate) - base
        ok = (kl <= max_kl) & (improvement > jnp.maximum(0.0, accept_ratio * fraction * expected_improvement))
        result = LineSearchResult(candidate, ok, fraction, kl, improvement)
        return Carry(c.k + 1, ok, jax.tree.map(lambda new, old: jnp.where(ok, new, old), result, c.result))

    kept = LineSearchResult(theta, jnp.bool_(False), jnp.float32(0.0), jnp.float32(0.0), jnp.float32(0.0))
    return jax.lax.while_loop(go_on, body, Carry(jnp.int32(0), jnp.bool_(False), kept)).result
