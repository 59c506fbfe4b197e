r"""Constrained MDPs (Altman, 1999): maximise the return while keeping an expected cost below a limit.

Beside its reward r(s, a), the MDP charges a cost c(s, a) ≥ 0, and both are
accumulated with the same discount from the start distribution p_0:

.. math::

    \max_\pi J_r(\pi) \quad \text{subject to} \quad J_c(\pi) \le \bar c,
    \qquad J_x(\pi) = \mathbb{E}_\pi\Big[\sum_t \gamma^t x(S_t, A_t)\Big].

**The Lagrangian.** With a multiplier λ ≥ 0,
:math:`L(\pi, \lambda) = J_r(\pi) - \lambda\,(J_c(\pi) - \bar c)`, and for a fixed λ
maximising L over π is an ordinary MDP with reward r − λ c (:func:`lagrangian_mdp`).
Strong duality holds for constrained MDPs, so the best constrained return is

.. math:: J^*(\bar c) = \min_{\lambda \ge 0}\ \Big[ \max_\pi J_{r - \lambda c}(\pi) + \lambda \bar c \Big],

which :func:`dual_frontier` evaluates with value iteration on a grid of λ.
The optimal constrained policy may have to randomise; the Lagrangian of a single
λ, solved by dynamic programming, gives a deterministic one.

**Primal-dual gradient method** (:func:`dual_ascent`): softmax preferences θ
ascend L with the exact policy gradient of :mod:`rlbook_lib.policy_gradient`
while λ follows the constraint violation,

.. math::

    \theta_{k+1} = \theta_k + \alpha\, \nabla_\theta J_{r - \lambda_k c}(\theta_k), \qquad
    \lambda_{k+1} = \max\big(0,\ \lambda_k + \alpha_\lambda\, (J_c(\theta_k) - \bar c)\big).

With ``natural=True`` (the default) the policy step is the natural gradient, the
advantage :math:`A_{r-\lambda c}(s, a)` (:func:`natural_gradient`), which does not
stall where the plain gradient's weights d^π(s) π(a | s) are small.
λ grows while the policy is too costly and shrinks (to 0) while it is safe. The
iterates circle the saddle point; their running average settles near it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rlbook_lib import checks, dp, policy_gradient
from rlbook_lib import mdp as mdp_lib
from rlbook_lib.mdp import MDP


def check_cost(mdp: MDP, cost) -> None:
    """ValueError unless ``cost`` is an [S, A] array of finite, non-negative numbers."""
    checks.check_mdp(mdp)
    if np.shape(cost) != mdp.R.shape:
        raise ValueError(f"cost must have shape [S, A] = {mdp.R.shape}, got {np.shape(cost)}")
    if not mdp_lib.is_traced(cost) and not np.all(np.asarray(cost) >= 0):
        raise ValueError("cost must be non-negative and finite")


def check_limit(limit) -> None:
    """ValueError unless the cost limit c̄ is a number >= 0 (skipped when traced)."""
    if not mdp_lib.is_traced(limit) and not float(limit) >= 0:
        raise ValueError(f"cost limit must be >= 0 (an expected cost cannot be negative), got {limit}")


def arrival_cost(mdp: MDP, unsafe: Float[Array, "S"]) -> Float[Array, "S A"]:
    """c(s, a) = Σ_s' P(s' | s, a) unsafe[s']: the expected cost of arriving in an unsafe state."""
    checks.check_mdp(mdp)
    return jnp.einsum("sat,t->sa", mdp.P, jnp.asarray(unsafe, jnp.float32))


def lagrangian_mdp(mdp: MDP, cost: Float[Array, "S A"], multiplier) -> MDP:
    """The MDP with reward r − λ c."""
    return mdp._replace(R=mdp.R - multiplier * jnp.asarray(cost, jnp.float32))


def returns(mdp: MDP, cost: Float[Array, "S A"], pi: Float[Array, "S A"]) -> tuple[Array, Array]:
    """(J_r(π), J_c(π)), each p_0 · v by one linear solve."""
    check_cost(mdp, cost)
    j_r = mdp.initial @ dp.policy_evaluation_exact(mdp, pi)
    j_c = mdp.initial @ dp.policy_evaluation_exact(mdp._replace(R=jnp.asarray(cost, jnp.float32)), pi)
    return j_r, j_c


class Frontier(NamedTuple):
    """The exact constrained optimum for each limit, from the dual function on a λ grid."""

    reward_return: Float[Array, "L"]
    """J*(c̄) = min_λ [max_π J_{r−λc}(π) + λ c̄]."""
    multiplier: Float[Array, "L"]
    """The minimising λ on the grid."""


def dual_frontier(mdp: MDP, cost: Float[Array, "S A"], limits: Float[Array, "L"],
                  multipliers: Float[Array, "M"], tol: float = 1e-6) -> Frontier:
    """J*(c̄) for every limit, by value iteration on the Lagrangian MDP of every λ on the grid.

    The dual function is convex in λ, so a fine grid that reaches past the largest
    useful λ gives J* to within the grid's resolution (never below it: every λ is an
    upper bound by weak duality).
    """
    check_cost(mdp, cost)
    for limit in np.atleast_1d(limits):
        check_limit(limit)
    v_star = jax.vmap(lambda lam: mdp.initial @ dp.value_iteration(
        lagrangian_mdp(mdp, cost, lam), tol=tol).v)(jnp.asarray(multipliers, jnp.float32))
    dual = v_star[None, :] + jnp.asarray(multipliers)[None, :] * jnp.asarray(limits)[:, None]  # [L, M]
    best = jnp.argmin(dual, axis=1)
    return Frontier(jnp.min(dual, axis=1), jnp.asarray(multipliers)[best])


@dataclasses.dataclass(frozen=True)
class DualAscentConfig:
    """Settings of :func:`dual_ascent`; the float fields may be vmapped."""

    num_steps: int = 2_000
    """K, simultaneous primal and dual steps."""
    step_size: float = 1.0
    """α, the policy's step on its softmax preferences."""
    dual_step_size: float = 1.0
    """α_λ, the multiplier's step."""
    natural: bool = True
    """Step along the natural gradient, the advantage A_{r−λc}(s, a) itself (Kakade, 2001), instead of
    the plain gradient d^π(s) π(a | s) A(s, a), whose steps vanish wherever d^π or π is small. Static."""

    def __post_init__(self):
        checks.check_positive_int("num_steps", self.num_steps)
        checks.check_hyperparameters(step_size=self.step_size)
        if isinstance(self.dual_step_size, (int, float)) and not self.dual_step_size > 0:
            raise ValueError(f"dual_step_size must be > 0, got {self.dual_step_size}")


def natural_gradient(mdp: MDP, theta: Float[Array, "S A"]) -> Float[Array, "S A"]:
    """A_π(s, a) = q_π(s, a) − v_π(s) for π = softmax(θ): the natural policy gradient of a tabular
    softmax policy, up to the factor 1/(1 − γ) (Kakade, 2001; Agarwal et al., 2021)."""
    pi = policy_gradient.softmax_policy(theta)
    q = dp.q_from_v(mdp, dp.policy_evaluation_exact(mdp, pi))
    return q - jnp.sum(pi * q, axis=-1, keepdims=True)


class DualAscentTrace(NamedTuple):
    """What :func:`dual_ascent` records before each of its K steps."""

    reward_return: Float[Array, "K"]
    """J_r(θ_k)."""
    cost_return: Float[Array, "K"]
    """J_c(θ_k)."""
    multiplier: Float[Array, "K"]
    """λ_k."""
    theta: Float[Array, "S A"]
    """θ_K, the final preferences."""


def dual_ascent(config: DualAscentConfig, mdp: MDP, cost: Float[Array, "S A"], limit,
                theta0: Float[Array, "S A"] | None = None) -> DualAscentTrace:
    """Primal-dual exact policy-gradient ascent on the Lagrangian (module docstring); λ_0 = 0.

    One ``lax.scan`` of K steps, each with four linear solves of size |S|; vmap over
    ``limit`` for the return-cost trade-off.
    """
    check_cost(mdp, cost)
    check_limit(limit)
    theta0 = jnp.zeros(mdp.R.shape, jnp.float32) if theta0 is None else jnp.asarray(theta0, jnp.float32)
    checks.check_policy_parameters(theta0, *mdp.R.shape)
    cost = jnp.asarray(cost, jnp.float32)
    cost_mdp = mdp._replace(R=cost)
    direction = natural_gradient if config.natural else policy_gradient.exact_gradient

    def step(carry, _):
        theta, lam = carry
        j_r = policy_gradient.exact_objective(mdp, theta)
        j_c = policy_gradient.exact_objective(cost_mdp, theta)
        grad = direction(lagrangian_mdp(mdp, cost, lam), theta)
        new_lam = jnp.maximum(0.0, lam + config.dual_step_size * (j_c - limit))
        return (theta + config.step_size * grad, new_lam), (j_r, j_c, lam)

    (theta, _), (j_r, j_c, lam) = jax.lax.scan(step, (theta0, jnp.float32(0.0)), None, config.num_steps)
    return DualAscentTrace(j_r, j_c, lam, theta)
