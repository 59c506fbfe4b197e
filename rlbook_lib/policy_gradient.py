r"""The policy-gradient theorem on a tabular MDP: exact gradients and sampled ones.

The policy is a softmax over a table of preferences, π_θ(a | s) = softmax(θ[s])_a,
and the objective is the expected discounted return from the start,

.. math::

    J(\theta) = \sum_s \mu_0(s)\, v_{\pi_\theta}(s) = \mathbb{E}_{\pi_\theta}[G_0].

On a small MDP we can compute J, its gradient and :math:`d^\pi` exactly (one
linear solve each), and so check the sampled estimators against the truth.

====================  ================  ======  ==================================================
symbol                code              shape   meaning
====================  ================  ======  ==================================================
:math:`\theta`        ``theta``         [S, A]  preferences; π_θ(a | s) = exp θ[s,a] / Σ_b exp θ[s,b]
:math:`\pi_\theta`    ``pi``            [S, A]  :func:`softmax_policy` (theta)
:math:`\mu_0`         ``mdp.initial``   [S]     distribution of :math:`S_0`
:math:`d^\pi`         ``d``             [S]     :math:`\sum_t \gamma^t \Pr(S_t = s)`, see :func:`discounted_visitation`
:math:`q_\pi`         ``q``             [S, A]  action values, :func:`rlbook_lib.dp.q_from_v`
:math:`G_t`           ``returns[t]``    [T]     discounted return from :math:`S_t`, :mod:`rlbook_lib.returns`
:math:`\Gamma_t`      (internal)        [T]     :math:`\prod_{k<t} \gamma_{k+1}`: γ^t until the episode ends, then 0
====================  ================  ======  ==================================================

**The theorem** (Sutton & Barto, section 13.2, with the discount kept):

.. math::

    \nabla J(\theta) = \sum_s d^\pi(s) \sum_a \nabla \pi_\theta(a \mid s)\, q_\pi(s, a)
    = \mathbb{E}\Big[ \sum_t \gamma^t\, q_\pi(S_t, A_t)\, \nabla \log \pi_\theta(A_t \mid S_t) \Big].

Episode ends follow :mod:`rlbook_lib.mdp`: arriving in a terminal state
continues with weight 0, so :math:`\gamma^t` becomes :math:`\Gamma_t`, which
drops to 0 for the steps after the end.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from rlbook_lib import dp
from rlbook_lib import mdp as mdp_lib
from rlbook_lib import returns
from rlbook_lib.mdp import MDP


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


def _check_theta(theta, num_states: int, num_actions: int) -> None:
    if np.shape(theta) != (num_states, num_actions):
        raise ValueError(f"theta must have shape [S, A] = {(num_states, num_actions)}, got {np.shape(theta)}")
    if not mdp_lib.is_traced(theta) and not np.all(np.isfinite(np.asarray(theta))):
        raise ValueError("theta contains NaN or infinite entries")


def _check(mdp: MDP, theta) -> None:
    if not isinstance(mdp, MDP):
        raise ValueError(f"mdp must be an MDP (see mdp.make_mdp), got {type(mdp).__name__}")
    _check_theta(theta, *mdp.R.shape)


def softmax_policy(theta: Float[Array, "S A"]) -> Float[Array, "S A"]:
    """π_θ(a | s) = exp θ[s, a] / Σ_b exp θ[s, b], row by row."""
    if np.ndim(theta) != 2:
        raise ValueError(f"theta must have shape [S, A], got shape {np.shape(theta)}")
    return jax.nn.softmax(jnp.asarray(theta, jnp.float32), axis=-1)


def grad_log_policy(theta: Float[Array, "S A"], state: Int[Array, ""], action: Int[Array, ""]
                    ) -> Float[Array, "S A"]:
    r"""The score :math:`\nabla_\theta \log \pi_\theta(a \mid s)` of the softmax policy.

    :math:`\partial \log \pi_\theta(a \mid s) / \partial \theta[s', b] = 1\{s' = s\}\,(1\{b = a\} - \pi_\theta(b \mid s))`:
    row s is :math:`e_a - \pi_\theta(\cdot \mid s)` and every other row is 0.
    Its mean over :math:`a \sim \pi_\theta(\cdot \mid s)` is 0.
    """
    S, A = np.shape(theta)
    row = jax.nn.one_hot(action, A) - jax.nn.softmax(theta[state])
    return jax.nn.one_hot(state, S)[:, None] * row[None, :]


def exact_objective(mdp: MDP, theta: Float[Array, "S A"]) -> Float[Array, ""]:
    r"""J(θ) = Σ_s μ_0(s) v_π(s), with v_π from the linear solve of :func:`rlbook_lib.dp.policy_evaluation_exact`.

    Differentiable: ``jax.grad(exact_objective, argnums=1)(mdp, theta)`` is ∇J(θ)
    by automatic differentiation through the solve, an independent check of
    :func:`exact_gradient`. Raises ``ValueError`` for a bad ``theta`` and, with
    γ = 1, if π_θ never ends the episode from some state.
    """
    _check(mdp, theta)
    return jnp.dot(mdp.initial, dp.policy_evaluation_exact(mdp, softmax_policy(theta)))


def discounted_visitation(mdp: MDP, pi: Float[Array, "S A"]) -> Float[Array, "S"]:
    r"""Unnormalised discounted state visitation :math:`d^\pi(s) = \sum_t \gamma^t \Pr(S_t = s)`.

    With the terminal masking of :mod:`rlbook_lib.mdp`, :math:`M = P_\pi\,
    \mathrm{diag}(\gamma (1 - \mathrm{terminal}))` and

    .. math::

        d^\pi = \mu_0^\top \sum_t M^t = \mu_0^\top (I - M)^{-1},

    found by solving :math:`(I - M)^\top d = \mu_0`. Steps taken in a state count;
    the arrival in a terminal state ends the episode and does not. Then
    :math:`J = \sum_s d^\pi(s)\, r_\pi(s)`.

    **Normalisation.** Without terminal states Σ_s d^π(s) = 1/(1 − γ), so
    (1 − γ) d^π is a probability distribution (the "discounted state
    distribution"). With terminal states Σ_s d^π(s) is the expected discounted
    episode length, and with γ = 1 it is the expected number of steps: Sutton &
    Barto's η(s) (eq. 9.2), which they normalise to μ(s) = η(s) / Σ η.
    """
    if not isinstance(mdp, MDP):
        raise ValueError(f"mdp must be an MDP (see mdp.make_mdp), got {type(mdp).__name__}")
    if not mdp_lib.is_traced(mdp, pi):
        mdp_lib.check_policy(mdp, pi)
        stuck = mdp_lib.nonterminating_states(mdp, pi) if float(mdp.gamma) == 1.0 else []
        if len(stuck):
            raise ValueError(f"with gamma = 1, d^pi is infinite: from states {list(stuck[:10])} "
                             "the policy never reaches a terminal state")
    return _visitation(mdp, jnp.asarray(pi, jnp.float32))


@jax.jit
def _visitation(mdp, pi):
    M = mdp_lib.policy_transitions(mdp, pi) * mdp_lib.continuation(mdp)[None, :]
    return jnp.linalg.solve((jnp.eye(M.shape[0]) - M).T, mdp.initial)


def exact_gradient(mdp: MDP, theta: Float[Array, "S A"]) -> Float[Array, "S A"]:
    r"""∇J(θ) from the policy-gradient theorem, written out for the softmax policy.

    .. math::

        \nabla J = \sum_s d^\pi(s) \sum_a \nabla \pi_\theta(a \mid s)\, q_\pi(s, a),
        \qquad \frac{\partial \pi_\theta(a \mid s)}{\partial \theta[s, b]}
            = \pi_\theta(a \mid s) (1\{a = b\} - \pi_\theta(b \mid s)),

    and ∂π(a | s)/∂θ[s', b] = 0 for s' ≠ s, so

    .. math::

        \frac{\partial J}{\partial \theta[s, b]}
            = d^\pi(s)\, \pi_\theta(b \mid s) \Big( q_\pi(s, b) - \sum_a \pi_\theta(a \mid s) q_\pi(s, a) \Big)
            = d^\pi(s)\, \pi_\theta(b \mid s)\, (q_\pi(s, b) - v_\pi(s)).

    Two linear solves (v_π and d^π), O(|S|³).
    """
    _check(mdp, theta)
    pi = softmax_policy(theta)
    q = dp.q_from_v(mdp, dp.policy_evaluation_exact(mdp, pi))
    d = discounted_visitation(mdp, pi)
    return d[:, None] * pi * (q - jnp.sum(pi * q, axis=-1, keepdims=True))


def sample_trajectory(mdp: MDP, theta: Float[Array, "S A"], key: jax.Array, horizon: int) -> Trajectory:
    r"""Sample one episode of π_θ, cut at ``horizon`` steps.

    :math:`S_0 \sim \mu_0`, :math:`A_t \sim \pi_\theta(\cdot \mid S_t)`,
    :math:`S_{t+1} \sim p(\cdot \mid S_t, A_t)`. The reward recorded is the
    expected reward r(S_t, A_t) of :class:`~rlbook_lib.mdp.MDP`, not a sample:
    the estimators below only need :math:`\mathbb{E}[R_{t+1} \mid S_t, A_t]`, and
    the lower variance is welcome. Once :math:`S_{t+1}` is terminal the episode
    is over: the trajectory stays in that state with reward 0 and discount 0
    (the mask), so the returns stop there.

    ``horizon`` is a static Python int (the output shape). For γ < 1 an episode
    cut at T steps drops the rewards after T, so the estimators below are biased
    by O(γ^T): pick T with γ^T negligible (0.9^200 ≈ 7e-10).
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
