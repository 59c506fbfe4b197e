r"""Linear value-function approximation: objective, semi-gradient updates, LSTD (S&B ch. 9–11).

A linear approximation :math:`\hat v(s, w) = w^\top x(s)` (features from
:mod:`rlbook_lib.features`) is fitted to v_π by minimising the mean squared
value error under a state distribution ν (Sutton & Barto write μ; in this book μ is a
behaviour policy),

.. math::

    \overline{VE}(w) = \sum_s \nu(s) \big[v_\pi(s) - \hat v(s, w)\big]^2 .

=====================  ========================================================================
method                 update of w from one visit to S_t (x_t = x(S_t), γ_{t+1} = γ (1 − terminated))
=====================  ========================================================================
gradient MC            w ← w + α [G_t − v̂(S_t, w)] x_t   (SGD on VE with the unbiased target G_t)
semi-gradient TD(0)    w ← w + α [r_{t+1} + γ_{t+1} v̂(S_{t+1}, w) − v̂(S_t, w)] x_t
semi-gradient SARSA    w_a ← w_a + α [r_{t+1} + γ_{t+1} q̂(S_{t+1}, A_{t+1}, w) − q̂(S_t, A_t, w)] x_t, a = A_t
=====================  ========================================================================

**Why *semi*-gradient.** TD's target r + γ v̂(S', w) depends on w too, but the
update differentiates only v̂(S_t, w): it is not the gradient of any objective.
With ν the on-policy distribution, its expectation is

.. math::

    \mathbb{E}[\Delta w] = \alpha\,(b - A w), \qquad
    A = X^\top D (I - \gamma P_\pi) X, \quad b = X^\top D\, r_\pi,

with D = diag(ν) and X the [S, d] matrix of features (``phi`` in code) (γ P_π with the arrival
discount, :func:`rlbook_lib.mdp.discounted_policy_transitions`). A is positive
definite on-policy, so TD converges to the **TD fixed point** w_TD = A⁻¹ b,
which is not the minimiser of VE but, for continuing tasks, is within a factor

.. math::

    \overline{VE}(w_{TD}) \le \frac{1}{1 - \gamma} \min_w \overline{VE}(w)

of it (S&B eq. 9.14; Tsitsiklis & Van Roy 1997). **LSTD** estimates A and b
from transitions and solves for w_TD directly: Â = Σ_t x_t (x_t − γ_{t+1}
x_{t+1})ᵀ, b̂ = Σ_t r_{t+1} x_t. Off-policy (ν not π's distribution, e.g. that
of a behaviour policy μ), A can have
eigenvalues with negative real part, and the expected update diverges:
Baird's counterexample, :mod:`rlbook_lib.envs.baird`.

Features may be a dense vector x (float) or the active indices of binary
features (int, e.g. :func:`rlbook_lib.features.active_tiles`), for which
v̂ = Σ_{i active} w_i and ∇v̂ = 1 at those indices. Functions work on one
state or one transition; vmap at the call site. Drivers that learn online
from an environment are in :mod:`rlbook_lib.vfa_train`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from rlbook_lib import mdp as mdp_lib

Features = Float[Array, "d"] | Int[Array, "n"]
"""A dense feature vector x(s), or the indices of the active binary features."""


# ------------------------------------------------------------------------ values and gradients


def _is_indices(x) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer)


def linear_value(w: Float[Array, "d"], x: Features) -> Float[Array, ""]:
    """v̂(s, w) = wᵀ x(s); for active indices, Σ_{i active} w_i."""
    return jnp.sum(w[x]) if _is_indices(x) else jnp.dot(w, x)


def add_gradient(w: Float[Array, "d"], x: Features, scale) -> Float[Array, "d"]:
    """w + scale · ∇_w v̂(s, w) = w + scale · x(s) (scale added at each active index)."""
    return w.at[x].add(scale) if _is_indices(x) else w + scale * x


def action_values(w: Float[Array, "A d"], x: Features) -> Float[Array, "A"]:
    """q̂(s, a, w) = w_aᵀ x(s) for every action: one weight vector per action."""
    return jax.vmap(linear_value, (0, None))(w, x)


def value_error(v_hat: Float[Array, "S"], v_true: Float[Array, "S"], nu: Float[Array, "S"]) -> Float[Array, ""]:
    """VE = Σ_s ν(s) [v_π(s) − v̂(s)]²."""
    return jnp.sum(nu * (v_true - v_hat) ** 2)


# ------------------------------------------------------------------------------- updates


def gradient_mc_update(w, x: Features, G, alpha) -> Float[Array, "d"]:
    """Gradient Monte Carlo: w ← w + α [G_t − v̂(S_t, w)] x_t."""
    return add_gradient(w, x, alpha * (G - linear_value(w, x)))


def td_error(w, x: Features, reward, discount, x_next: Features) -> Float[Array, ""]:
    """δ_t = r_{t+1} + γ_{t+1} v̂(S_{t+1}, w) − v̂(S_t, w), with ``discount`` = γ_{t+1}."""
    return reward + discount * linear_value(w, x_next) - linear_value(w, x)


def semi_gradient_td_update(w, x: Features, reward, discount, x_next: Features, alpha) -> Float[Array, "d"]:
    """Semi-gradient TD(0): w ← w + α δ_t x_t (the target's dependence on w is ignored).

    With one-hot features x(s) = e_s this is tabular TD(0),
    :func:`rlbook_lib.td.td0_update`.
    """
    return add_gradient(w, x, alpha * td_error(w, x, reward, discount, x_next))


def semi_gradient_sarsa_update(w: Float[Array, "A d"], x: Features, action, reward, discount,
                               x_next: Features, next_action, alpha) -> Float[Array, "A d"]:
    """w_a ← w_a + α [r + γ_{t+1} q̂(S_{t+1}, A_{t+1}) − q̂(S_t, A_t)] x_t for a = A_t only."""
    delta = reward + discount * linear_value(w[next_action], x_next) - linear_value(w[action], x)
    return w.at[action].set(add_gradient(w[action], x, alpha * delta))


# ----------------------------------------------------------------------------------- LSTD


def lstd(x: Float[Array, "T d"], rewards: Float[Array, "T"], discounts: Float[Array, "T"],
         x_next: Float[Array, "T d"], weights: Float[Array, "T"] | None = None,
         ridge: float = 0.0) -> Float[Array, "d"]:
    """Least-squares TD: w = (Â + β I)⁻¹ b̂ from a batch of transitions (dense features).

    Â = Σ_t ρ_t x_t (x_t − γ_{t+1} x_{t+1})ᵀ, b̂ = Σ_t ρ_t r_{t+1} x_t, with
    ``discounts`` = γ_{t+1}, ``weights`` ρ_t (default 1) and β = ``ridge``
    (S&B's Â₀ = ε I). Fed every transition (s, s') with weight ν(s) P_π(s, s'),
    it returns the exact TD fixed point of :func:`td_fixed_point`.
    """
    if np.ndim(x) != 2 or np.shape(x_next) != np.shape(x):
        raise ValueError(f"x and x_next must both be [T, d], got {np.shape(x)} and {np.shape(x_next)}")
    weights = jnp.ones(x.shape[0]) if weights is None else weights
    A = jnp.einsum("t,ti,tj->ij", weights, x, x - discounts[:, None] * x_next)
    b = jnp.einsum("t,t,ti->i", weights, rewards, x)
    return jnp.linalg.solve(A + ridge * jnp.eye(x.shape[1]), b)


# ------------------------------------------------------------------ expected updates on a model


class TDMatrices(NamedTuple):
    """E[Δw] = α (b − A w) of semi-gradient TD(0) on a known model."""

    A: Float[Array, "d d"]
    """Xᵀ D (I − γ P_π) X, with the arrival discount in γ P_π."""
    b: Float[Array, "d"]
    """Xᵀ D r_π."""


def on_policy_distribution(mdp: mdp_lib.MDP, pi: Float[Array, "S A"]) -> Float[Array, "S"]:
    """ν(s), the fraction of time π spends in s (S&B eqs. 9.2–9.3).

    Episodic (some state terminal): the expected visits per episode
    η = p_0 + P̃_πᵀ η, with P̃_π(s, s') = P_π(s, s') (1 − terminal(s')), normalised;
    terminal states get 0. Continuing: the stationary distribution ν = P_πᵀ ν
    (π's chain must have a unique one). Concrete arrays only.
    """
    P = np.asarray(mdp_lib.policy_transitions(mdp, pi), np.float64)
    terminal = np.asarray(mdp.terminal)
    S = P.shape[0]
    if terminal.any():
        inside = P * (~terminal)[None, :]
        eta = np.linalg.solve(np.eye(S) - inside.T, np.asarray(mdp.initial, np.float64) * ~terminal)
    else:  # νᵀ (P − I) = 0 with Σ ν = 1, as a least-squares system
        M = np.concatenate([P.T - np.eye(S), np.ones((1, S))])
        eta = np.linalg.lstsq(M, np.eye(S + 1)[-1], rcond=None)[0]
    if np.any(eta < -1e-8) or not np.isfinite(eta).all():
        raise ValueError("pi has no unique on-policy distribution on this MDP")
    eta = np.clip(eta, 0.0, None)
    return jnp.asarray(eta / eta.sum(), jnp.float32)


def td_matrices(mdp: mdp_lib.MDP, pi: Float[Array, "S A"], phi: Float[Array, "S d"],
                nu: Float[Array, "S"]) -> TDMatrices:
    """A = Xᵀ D (I − γ P_π) X and b = Xᵀ D r_π, D = diag(ν), X = ``phi``.

    ν is the distribution of the updated states: the on-policy distribution of
    π for on-policy TD, or the behaviour's for off-policy TD with targets
    bootstrapped under π (as in Baird's counterexample).
    """
    M = mdp_lib.discounted_policy_transitions(mdp, pi)
    D_phi = nu[:, None] * phi
    return TDMatrices(D_phi.T @ (phi - M @ phi), D_phi.T @ mdp_lib.policy_rewards(mdp, pi))


def td_fixed_point(mdp, pi, phi, nu) -> Float[Array, "d"]:
    """w_TD = A⁻¹ b, where the expected semi-gradient TD update is zero."""
    A, b = td_matrices(mdp, pi, phi, nu)
    return jnp.linalg.solve(A, b)


def best_approximation(v_true: Float[Array, "S"], phi: Float[Array, "S d"], nu: Float[Array, "S"]):
    """argmin_w VE(w) = argmin_w ‖D^{1/2} (v_π − X w)‖²: the ν-weighted least-squares fit
    (the minimum-norm one if X has dependent columns on the support of ν)."""
    root = jnp.sqrt(nu)[:, None]
    return jnp.linalg.lstsq(root * phi, root[:, 0] * v_true)[0]


def expected_td_sweeps(matrices: TDMatrices, w0: Float[Array, "d"], alpha, num_sweeps: int):
    """The deterministic iteration w_{k+1} = w_k + α (b − A w_k) (S&B's "expected" or DP-style
    semi-gradient TD, Fig. 11.2 right); returns w_0, ..., w_K, [K + 1, d]."""
    A, b = matrices

    def sweep(w, _):
        w = w + alpha * (b - A @ w)
        return w, w

    _, ws = jax.lax.scan(sweep, w0, None, length=num_sweeps)
    return jnp.concatenate([w0[None], ws])


# ------------------------------------------------------------------ any differentiable v̂


def semi_gradient_td_step(value_fn, w, s, reward, discount, s_next, alpha):
    """Semi-gradient TD(0) for any differentiable v̂ = ``value_fn(w, s)`` (w any pytree):

        w ← w + α [r_{t+1} + γ_{t+1} v̂(S_{t+1}, w) − v̂(S_t, w)] ∇_w v̂(S_t, w).

    The target is held fixed (``stop_gradient``), so only v̂(S_t, w) is
    differentiated; with ``value_fn = linear_value`` and s = x(S_t) this is
    :func:`semi_gradient_td_update`. For a nonlinear v̂ nothing guarantees a
    fixed point (S&B §11.3; Tsitsiklis & Van Roy 1997 give a diverging example).
    """
    target = reward + discount * jax.lax.stop_gradient(value_fn(w, s_next))
    value, grad = jax.value_and_grad(value_fn)(w, s)
    return jax.tree.map(lambda p, g: p + alpha * (target - value) * g, w, grad)
