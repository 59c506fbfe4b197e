r"""Score-function (likelihood-ratio) estimates of the policy gradient from sampled episodes.

On a tabular MDP with a softmax policy (see :mod:`rlbook_lib.policy_gradient`,
which computes the exact gradient these estimates are checked against), one
episode gives an unbiased estimate of ∇J(θ) in three forms of increasing
quality: weighted by the whole return G_0 (:func:`total_return_estimate`), by the
reward-to-go G_t, and by G_t minus a baseline b(S_t) (:func:`reinforce_estimate`).
Averaging N of them shrinks the variance as 1/N. With ``entropy_coef`` = c_H > 0
both estimate instead the gradient of the entropy-regularised objective J_H(θ)
of :func:`rlbook_lib.policy_gradient.exact_objective`.

Episodes are cut at a fixed horizon H (the trajectory's length). What the
estimates are exactly unbiased for is the gradient of the cut objective
E[Σ_{t<H} γ^t R_{t+1}], which differs from ∇J(θ) by O(γ^H) when γ < 1 and the
rewards are bounded.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from rlbook_lib import mdp as mdp_lib
from rlbook_lib import checks, policy_gradient, returns
from rlbook_lib.mdp import MDP


class Trajectory(NamedTuple):
    """One sampled episode, time-major, cut at a fixed horizon H (the arrays' length)."""

    states: Int[Array, "H"]
    """S_t; after the episode ended, the terminal state it ended in."""
    actions: Int[Array, "H"]
    """A_t ~ π_θ(· | S_t); after the episode ended, still sampled but never used."""
    rewards: Float[Array, "H"]
    """r_{t+1} = r(S_t, A_t), the *expected* reward of the step; 0 after the episode ended."""
    discounts: Float[Array, "H"]
    """γ_{t+1} = γ (1 − terminal[S_{t+1}]); 0 after the episode ended."""


def sample_trajectory(mdp: MDP, theta: Float[Array, "S A"], key: jax.Array, horizon: int) -> Trajectory:
    r"""Sample one episode of π_θ, cut at ``horizon`` steps.

    :math:`S_0 \sim p_0`, :math:`A_t \sim \pi_\theta(\cdot \mid S_t)`,
    :math:`S_{t+1} \sim p(\cdot \mid S_t, A_t)`. The reward recorded is the
    expected reward r(S_t, A_t) of :class:`~rlbook_lib.mdp.MDP`, not a sample:
    the estimators below only need :math:`\mathbb{E}[R_{t+1} \mid S_t, A_t]`, and
    the lower variance is welcome. Once :math:`S_{t+1}` is terminal the episode
    is over: the trajectory stays in that state with reward 0 and discount 0
    (the mask), so the returns stop there.

    ``horizon`` H is a static Python int (the output shape). An episode cut at H
    steps drops the rewards after H, so as estimates of ∇J the estimators below
    are biased: by O(γ^H) for γ < 1 (pick H with γ^H negligible, 0.9^200 ≈ 7e-10),
    and for γ = 1 by the episodes still running at H. The cut does not bound every
    variance, though: that of :func:`total_return_estimate` grows with H.
    """
    checks.check_mdp_and_policy_parameters(mdp, theta)
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


def _check_trajectory(theta, trajectory: Trajectory, baseline, entropy_coef) -> None:
    if np.ndim(theta) != 2:
        raise ValueError(f"theta must have shape [S, A], got shape {np.shape(theta)}")
    if not isinstance(trajectory, Trajectory):
        raise ValueError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    sequences = trajectory._asdict()
    if baseline is not None:
        sequences["baseline"] = baseline
    checks.check_sequences(**sequences)
    checks.check_entropy_coef(entropy_coef)


def _discount_products(discounts: Float[Array, "H"]) -> Float[Array, "H"]:
    """Γ_t = Π_{k<t} γ_{k+1}, with Γ_0 = 1: γ^t while the episode runs, 0 after it ended."""
    return jnp.concatenate([jnp.ones(1), jnp.cumprod(discounts)[:-1]])


def _score_sum(theta, states, actions, weights) -> Float[Array, "S A"]:
    """Σ_t w_t ∇_θ log π_θ(a_t | s_t), all steps at once (the sum of grad_log_policy)."""
    S, A = theta.shape
    rows = jax.nn.one_hot(actions, A) - jax.nn.softmax(theta[states], axis=-1)  # [H, A]
    return jnp.einsum("t,ts,ta->sa", weights, jax.nn.one_hot(states, S), rows)


def _with_entropy_bonus(theta, trajectory, entropy_coef):
    """Rewards r_{t+1} + c_H H(π_θ(· | S_t)) for the steps of the episode, and Σ_t Γ_t c_H ∇H(π_θ(· | S_t))."""
    in_episode = _discount_products((trajectory.discounts > 0).astype(jnp.float32))
    rewards = trajectory.rewards + entropy_coef * in_episode * policy_gradient.entropy(theta)[trajectory.states]
    Gamma = _discount_products(trajectory.discounts)
    visits = jnp.einsum("t,ts->s", Gamma, jax.nn.one_hot(trajectory.states, theta.shape[0]))
    direct = entropy_coef * visits[:, None] * policy_gradient.entropy_gradient(theta)
    return rewards, in_episode, direct


def total_return_estimate(theta: Float[Array, "S A"], trajectory: Trajectory,
                          entropy_coef=0.0) -> Float[Array, "S A"]:
    r"""Score-function estimate of ∇J(θ) weighted by the whole return: the likelihood-ratio form.

    .. math::

        \hat g = G_0 \sum_{t=0}^{T-1} \nabla_\theta \log \pi_\theta(A_t \mid S_t),

    with T the episode's last step, or H if it runs to the cut.

    **Derivation.** J(θ) = E_τ[G_0] over trajectories τ whose probability is
    p_0(S_0) Π_t π_θ(A_t | S_t) p(S_{t+1} | S_t, A_t). Only the π_θ factors
    depend on θ, so ∇J = E[G_0 ∇ log Pr(τ)] = E[G_0 Σ_t ∇ log π_θ(A_t | S_t)].
    No γ^t appears: the discounting is already inside G_0. The actions sampled
    after the end do not affect G_0, so their scores would only add noise of
    mean 0. The scores of all H steps do enter when the episode runs to the cut,
    so the variance grows with H.

    **Entropy bonus.** With c_H > 0, G_0 includes the bonuses
    Σ_t γ^t c_H H(π_θ(· | S_t)); since they also depend on θ directly, the
    estimate gains the term Σ_t γ^t c_H ∇H(π_θ(· | S_t)).
    """
    _check_trajectory(theta, trajectory, None, entropy_coef)
    return _total_return_estimate(jnp.asarray(theta, jnp.float32), trajectory, entropy_coef)


@jax.jit
def _total_return_estimate(theta, trajectory, entropy_coef):
    rewards, in_episode, direct = _with_entropy_bonus(theta, trajectory, entropy_coef)
    G_0 = returns.discounted_returns(rewards, trajectory.discounts)[0]
    return _score_sum(theta, trajectory.states, trajectory.actions, G_0 * in_episode) + direct


def reinforce_estimate(theta: Float[Array, "S A"], trajectory: Trajectory,
                       baseline: Float[Array, "H"] | None = None, entropy_coef=0.0) -> Float[Array, "S A"]:
    r"""REINFORCE: the reward-to-go estimate of ∇J(θ), with an optional baseline.

    .. math::

        \hat g = \sum_t \Gamma_t\, \big(G_t - b(S_t)\big)\, \nabla_\theta \log \pi_\theta(A_t \mid S_t),
        \qquad \Gamma_t = \prod_{k<t} \gamma_{k+1} \;(= \gamma^t \text{ until the end, then } 0).

    ``baseline=None`` means b = 0 (the reward-to-go form); otherwise
    ``baseline[t]`` = b(S_t), for example ``v[trajectory.states]``.

    **Derivation.** Write G_0 = Σ_k Γ_k R_{k+1} in the total-return form. A
    reward earned before A_t is drawn, k < t, is a function of the history
    F_t = (S_0, A_0, R_1, ..., R_t, S_t), and given F_t the action is drawn from
    π_θ(· | S_t), so E[∇ log π_θ(A_t | S_t) | F_t] = Σ_a ∇π_θ(a | S_t) = ∇ 1 = 0.
    By the tower property E[R_{k+1} ∇ log π_θ(A_t | S_t)] =
    E[R_{k+1} E[∇ log π_θ(A_t | S_t) | F_t]] = 0: those terms drop out. What is
    left of G_0 for step t is Σ_{k≥t} Γ_k R_{k+1} = Γ_t G_t. The same argument
    removes any b(S_t). Taking the expectation of G_t given (S_t, A_t) gives
    back the theorem, ∇J = Σ_t E[γ^t q_π(S_t, A_t) ∇ log π_θ(A_t | S_t)]
    = Σ_s d^π(s) Σ_a ∇π_θ(a | s) q_π(s, a): the γ^t is the discounting inside
    d^π. Dropping it, as many implementations do, gives a biased estimate of a
    vector that is not the gradient of J (nor of any objective; Nota & Thomas, 2020).

    b = v_π makes G_t − b(S_t) an advantage estimate with mean 0 in each state
    and usually, though not always, lowers the variance.

    **Entropy bonus.** With c_H > 0, G_t is the return of the rewards
    R_{k+1} + c_H H(π_θ(· | S_k)), k ≥ t, and each step adds its direct term
    Γ_t c_H ∇H(π_θ(· | S_t)): an unbiased estimate of ∇J_H.
    """
    _check_trajectory(theta, trajectory, baseline, entropy_coef)
    baseline = jnp.zeros_like(trajectory.rewards) if baseline is None else baseline
    return _reinforce_estimate(jnp.asarray(theta, jnp.float32), trajectory, jnp.asarray(baseline, jnp.float32),
                               entropy_coef)


@jax.jit
def _reinforce_estimate(theta, trajectory, baseline, entropy_coef):
    rewards, _, direct = _with_entropy_bonus(theta, trajectory, entropy_coef)
    G = returns.discounted_returns(rewards, trajectory.discounts)
    weights = _discount_products(trajectory.discounts) * (G - baseline)
    return _score_sum(theta, trajectory.states, trajectory.actions, weights) + direct
