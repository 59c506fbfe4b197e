r"""Score-function (likelihood-ratio) estimates of the policy gradient from sampled episodes.

On a tabular MDP with a softmax policy (see :mod:`rlbook_lib.policy_gradient`,
which computes the exact gradient these estimates are checked against), one
episode gives an unbiased estimate of ∇J(θ) in three forms of increasing
quality: weighted by the whole return G_0 (:func:`total_return_estimate`), by the
reward-to-go G_t, and by G_t minus a baseline b(S_t) (:func:`reinforce_estimate`).
Averaging N of them shrinks the variance as 1/N.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from rlbook_lib import mdp as mdp_lib
from rlbook_lib import returns
from rlbook_lib.mdp import MDP
from rlbook_lib.policy_gradient import _check

class Trajectory(NamedTuple):
    """One sampled episode, time-major, cut at a fixed horizon T."""

    states: Int[Array, "T"]
    """S_t; after the episode ended, the terminal state it ended in."""
    actions: Int[Array, "T"]
    """A_t ~ π_θ(· | S_t); after the episode ended, still sampled but never used."""
    rewards: Float[Array, "T"]
    """r_{t+1} = r(S_t, A_t), the *expected* reward of the step; 0 after the episode ended."""
    discounts: Float[Array, "T"]
    """γ_{t+1} = γ (1 − terminal[S_{t+1}]); 0 after the episode ended."""


def sample_trajectory(mdp: MDP, theta: Float[Array, "S A"], key: jax.Array, horizon: int) -> Trajectory:
    r"""Sample one episode of π_θ, cut at ``horizon`` steps.

    :math:`S_0 \sim \mu_0`, :math:`A_t \sim \pi_\theta(\cdot \mid S_t)`,
    :math:`S_{t+1} \sim p(\cdot \mid S_t, A_t)`. The reward recorded is the
    expected reward r(S_t, A_t) of :class:`~rlbook_lib.mdp.MDP`, not a sample:
    the estimators below only need :math:`\mathbb{E}[R_{t+1} \mid S_t, A_t]`, and
    the lower variance is welcome. Once :math:`S_{t+1}` is terminal the episode
    is over: the trajectory stays in that state with reward 0 and discount 0
    (the mask), so the returns stop there.

    ``horizon`` is a static Python int (the output shape). An episode cut at T
    steps drops the rewards after T, so the estimators below are biased: by
    O(γ^T) for γ < 1 (pick T with γ^T negligible, 0.9^200 ≈ 7e-10), and for
    γ = 1 by the episodes still running at T.
    """
    _check(mdp, theta)
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive Python int (it is the trajectory length), got {horizon!r}")
    return _sample(mdp, jnp.asarray(theta, jnp.float32), key, int(horizon))


@partial(jax.jit, static_argnums=3)
def _sample(mdp, theta, key, horizon):
    key_start, key_steps = jax.random.split(key)
    continuing = mdp_lib.continuation(mdp)

    def step(carry, key):
        state, alive = carry
        key_action, key_next = jax.random.split(key)
        action = jax.random.categorical(key_action, theta[state])
        next_state = jax.random.categorical(key_next, jnp.log(mdp.P[state, action]))
        reward = jnp.where(alive, mdp.R[state, action], 0.0)
        discount = jnp.where(alive, continuing[next_state], 0.0)
        carry = (jnp.where(alive, next_state, state), alive & ~mdp.terminal[next_state])
        return carry, Trajectory(state, action, reward, discount)

    start = jax.random.categorical(key_start, jnp.log(mdp.initial))
    _, trajectory = jax.lax.scan(step, (start, jnp.asarray(True)), jax.random.split(key_steps, horizon))
    return trajectory


def _check_trajectory(theta, trajectory: Trajectory, baseline) -> None:
    if np.ndim(theta) != 2:
        raise ValueError(f"theta must have shape [S, A], got shape {np.shape(theta)}")
    if not isinstance(trajectory, Trajectory):
        raise ValueError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    sequences = trajectory._asdict()
    if baseline is not None:
        sequences["baseline"] = baseline
    returns._check_sequences(**sequences)


def _discount_products(discounts: Float[Array, "T"]) -> Float[Array, "T"]:
    """Γ_t = Π_{k<t} γ_{k+1}, with Γ_0 = 1: γ^t while the episode runs, 0 after it ended."""
    return jnp.concatenate([jnp.ones(1), jnp.cumprod(discounts)[:-1]])


def _score_sum(theta, states, actions, weights) -> Float[Array, "S A"]:
    """Σ_t w_t ∇_θ log π_θ(a_t | s_t), all steps at once (the sum of grad_log_policy)."""
    S, A = theta.shape
    rows = jax.nn.one_hot(actions, A) - jax.nn.softmax(theta[states], axis=-1)  # [T, A]
    return jnp.einsum("t,ts,ta->sa", weights, jax.nn.one_hot(states, S), rows)


def total_return_estimate(theta: Float[Array, "S A"], trajectory: Trajectory) -> Float[Array, "S A"]:
    r"""Score-function estimate of ∇J(θ) weighted by the whole return: the likelihood-ratio form.

    .. math::

        \hat g = G_0 \sum_{t=0}^{T_\mathrm{end}-1} \nabla_\theta \log \pi_\theta(A_t \mid S_t).

    **Derivation.** J(θ) = E_τ[G_0] over trajectories τ whose probability is
    μ_0(S_0) Π_t π_θ(A_t | S_t) p(S_{t+1} | S_t, A_t). Only the π_θ factors
    depend on θ, so ∇J = E[G_0 ∇ log Pr(τ)] = E[G_0 Σ_t ∇ log π_θ(A_t | S_t)].
    No γ^t appears: the discounting is already inside G_0. The sum runs over
    the steps of the episode (T_end: through the first zero discount); the
    actions sampled after the end do not affect G_0, so their scores would only
    add noise of mean 0. Unbiased up to the O(γ^T) cut of the horizon.
    """
    _check_trajectory(theta, trajectory, None)
    return _total_return_estimate(jnp.asarray(theta, jnp.float32), trajectory)


@jax.jit
def _total_return_estimate(theta, trajectory):
    G_0 = returns.discounted_returns(trajectory.rewards, trajectory.discounts)[0]
    in_episode = _discount_products((trajectory.discounts > 0).astype(jnp.float32))
    return _score_sum(theta, trajectory.states, trajectory.actions, G_0 * in_episode)


def reinforce_estimate(theta: Float[Array, "S A"], trajectory: Trajectory,
                       baseline: Float[Array, "T"] | None = None) -> Float[Array, "S A"]:
    r"""REINFORCE: the reward-to-go estimate of ∇J(θ), with an optional baseline.

    .. math::

        \hat g = \sum_t \Gamma_t\, \big(G_t - b(S_t)\big)\, \nabla_\theta \log \pi_\theta(A_t \mid S_t),
        \qquad \Gamma_t = \prod_{k<t} \gamma_{k+1} \;(= \gamma^t \text{ until the end, then } 0).

    ``baseline=None`` means b = 0 (the reward-to-go form); otherwise
    ``baseline[t]`` = b(S_t), for example ``v[trajectory.states]``.

    **Derivation.** Write G_0 = Σ_k Γ_k r_{k+1} in the total-return form. A
    reward earned before A_t is chosen, k < t, is fixed given S_t, and
    E[∇ log π_θ(A_t | S_t) | S_t] = Σ_a ∇π_θ(a | S_t) = ∇ 1 = 0, so those terms
    have mean 0 and drop out. What is left of G_0 for step t is
    Σ_{k≥t} Γ_k r_{k+1} = Γ_t G_t. The same argument removes any b(S_t), which
    does not depend on A_t. Taking the expectation of G_t given (S_t, A_t)
    gives back the theorem, ∇J = Σ_t E[γ^t q_π(S_t, A_t) ∇ log π_θ(A_t | S_t)]
    = Σ_s d^π(s) Σ_a ∇π_θ(a | s) q_π(s, a): the γ^t is the discounting inside
    d^π. Dropping it, as many implementations do, estimates a vector that is
    not the gradient of J (nor of any objective; Nota & Thomas, 2020).

    b = v_π makes G_t − b(S_t) an advantage estimate with mean 0 in each state
    and usually, though not always, lowers the variance.
    """
    _check_trajectory(theta, trajectory, baseline)
    baseline = jnp.zeros_like(trajectory.rewards) if baseline is None else baseline
    return _reinforce_estimate(jnp.asarray(theta, jnp.float32), trajectory, jnp.asarray(baseline, jnp.float32))


@jax.jit
def _reinforce_estimate(theta, trajectory, baseline):
    G = returns.discounted_returns(trajectory.rewards, trajectory.discounts)
    weights = _discount_products(trajectory.discounts) * (G - baseline)
    return _score_sum(theta, trajectory.states, trajectory.actions, weights)
