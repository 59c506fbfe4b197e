r"""Returns computed backwards along one trajectory.

Every function here takes one unbatched, time-major trajectory of length T;
vmap it at the call site for a batch of trajectories. Here T is only the array's
length: the trajectory may end with its episode (then T is the episode's final
step, as in the book's notation), at a time limit H, or anywhere in a rollout.

====================  ===================  =====  ===================================================
symbol                code                 shape  meaning
====================  ===================  =====  ===================================================
:math:`r_{t+1}`       ``rewards[t]``       [T]    reward that follows the action :math:`A_t` in :math:`S_t`
:math:`\gamma_{t+1}`  ``discounts[t]``     [T]    :math:`\gamma\,(1 - \mathrm{terminated}_{t+1})`: weight of
                                                  everything after arriving in :math:`S_{t+1}`
:math:`G_t`           ``returns[t]``       [T]    discounted return from :math:`S_t`
:math:`V(S_T)`        ``bootstrap_value``  []     stands in for :math:`G_T`, the return after the last step
====================  ===================  =====  ===================================================

**Discount, not done.** The end of an episode is written into the discount:
``discounts[t] = 0`` when :math:`S_{t+1}` is terminal, and γ otherwise. A
trajectory may then hold several episodes one after another, and a zero discount
stops each episode's return at its end. A time limit is *not* a termination:
its discount stays γ, and the return after the cut is the bootstrap value.

The reward index follows Sutton & Barto: ``rewards[t]`` is :math:`r_{t+1}`, the
reward for the step :math:`S_t \to S_{t+1}`, and ``discounts[t]`` belongs to
the same step.

**Values.** The estimators that bootstrap (:func:`td_errors`,
:func:`n_step_returns`, :func:`lambda_returns`, :func:`gae`) take
``values[t]`` = :math:`V(S_t)` for t = 0, ..., T−1 (shape [T], the same length
as the rewards) and ``bootstrap_value`` = :math:`V(S_T)`, the value of the
state after the last step, whose role is the same as in
:func:`discounted_returns`: 0 (or anything) after a termination, an estimate
:math:`V(S_T)` after a time-limit cut. A time-limit cut is therefore expected
only at the end of the trajectory; after a termination inside it
(``discounts[t] = 0``), the sums stop as they should. ``values[t+1]`` after a
termination is the next episode's first state, which a zero discount ignores.
For a rollout segment with time-limit cuts inside it, use
:func:`gae_from_transitions` and :func:`lambda_returns_from_transitions`, which
take the value of every step's true next state.

**Batches.** A rollout collected by ``lax.scan`` over time is time-major, [T, B];
``jax.vmap(f, in_axes=1, out_axes=1)`` scans it as it lies, while a batch-major
[B, T] batch is transposed first (``benchmarks/returns.py`` measures both).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rlbook_lib.checks import check_discounts, check_hyperparameters, check_positive_int, check_sequences
from rlbook_lib.mdp import is_traced


def _check_scalar(name: str, x) -> None:
    if np.ndim(x) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(x)}")


def discounted_returns(
    rewards: Float[Array, "T"],
    discounts: Float[Array, "T"],
    bootstrap_value: Float[Array, ""] = 0.0,
) -> Float[Array, "T"]:
    r"""Discounted returns :math:`G_t` of one trajectory, computed backwards.

    .. math::

        G_t = r_{t+1} + \gamma_{t+1} G_{t+1}, \qquad G_T = \text{bootstrap\_value},

    so that, with a constant discount γ and no termination,
    :math:`G_t = \sum_{k=t}^{T-1} \gamma^{k-t} r_{k+1} + \gamma^{T-t} G_T`.
    One reverse :func:`jax.lax.scan`: O(T) work, O(T) sequential steps.

    **When the bootstrap value is 0 and when it is V(S_T).**

    * The trajectory ends because the episode *terminated* in :math:`S_T`: then
      ``discounts[T-1] = 0``, the bootstrap value is multiplied by 0 and which
      value you pass does not matter; 0, the value of a terminal state, is the
      natural one.
    * The trajectory ends because it was *truncated* (a time limit, or the end
      of a rollout segment) in a non-terminal :math:`S_T`: the true return goes
      on, so pass an estimate :math:`V(S_T)`. Passing 0 there treats the time
      limit as a termination and biases every :math:`G_t` by
      :math:`-\gamma^{T-t}\,\mathbb{E}[G_T]`, which matters most near the cut.
    * Plain Monte Carlo, with no value estimate: 0, accepting that bias, which
      is small when :math:`\gamma^{T-t}` is.

    Args:
      rewards: ``[T]``, ``rewards[t]`` = :math:`r_{t+1}`.
      discounts: ``[T]``, ``discounts[t]`` = :math:`\gamma_{t+1} = \gamma (1 - \mathrm{terminated}_{t+1})`.
      bootstrap_value: scalar :math:`G_T`, see above.

    Returns:
      ``[T]`` float32 array, ``returns[t]`` = :math:`G_t`.

    Example::

        >>> discounted_returns(jnp.array([1.0, 0.0, 2.0]), jnp.full(3, 0.9))
        Array([2.62, 1.8 , 2.  ], dtype=float32)   # [1 + 0.9 (0 + 0.9 · 2), 0 + 0.9 · 2, 2]
    """
    check_sequences(rewards=rewards, discounts=discounts)
    _check_scalar("bootstrap_value", bootstrap_value)
    return _discounted_returns(jnp.asarray(rewards, jnp.float32), jnp.asarray(discounts, jnp.float32),
                               jnp.asarray(bootstrap_value, jnp.float32))


@jax.jit
def _discounted_returns(rewards, discounts, bootstrap_value):
    def backward(g_next, step):
        reward, discount = step
        g = reward + discount * g_next
        return g, g

    _, returns = jax.lax.scan(backward, bootstrap_value, (rewards, discounts), reverse=True)
    return returns


# ------------------------------------------------------------- bootstrapped estimators


def _check_bootstrapped(rewards, discounts, values, bootstrap_value) -> None:
    check_sequences(rewards=rewards, discounts=discounts, values=values)
    _check_scalar("bootstrap_value", bootstrap_value)
    check_discounts(discounts)


def _as_float32(*xs):
    return tuple(jnp.asarray(x, jnp.float32) for x in xs)


def td_errors(
    rewards: Float[Array, "T"],
    discounts: Float[Array, "T"],
    values: Float[Array, "T"],
    bootstrap_value: Float[Array, ""] = 0.0,
) -> Float[Array, "T"]:
    r"""One-step TD errors :math:`\delta_t = r_{t+1} + \gamma_{t+1} V(S_{t+1}) - V(S_t)`,
    with :math:`V(S_T)` = ``bootstrap_value`` (see the module docstring)."""
    _check_bootstrapped(rewards, discounts, values, bootstrap_value)
    return _td_errors(*_as_float32(rewards, discounts, values, bootstrap_value))


@jax.jit
def _td_errors(rewards, discounts, values, bootstrap_value):
    next_values = jnp.concatenate([values[1:], bootstrap_value[None]])
    return rewards + discounts * next_values - values


def n_step_returns(
    rewards: Float[Array, "T"],
    discounts: Float[Array, "T"],
    values: Float[Array, "T"],
    bootstrap_value: Float[Array, ""],
    n: int,
) -> Float[Array, "T"]:
    r"""n-step returns :math:`G_{t:t+n}` of one trajectory (S&B §7.1).

    .. math::

        G_{t:t+n} = r_{t+1} + \gamma_{t+1} r_{t+2} + \dots
                    + \gamma_{t+1} \cdots \gamma_{t+m-1}\, r_{t+m}
                    + \gamma_{t+1} \cdots \gamma_{t+m}\, V(S_{t+m}),
        \qquad m = \min(n, T - t),

    computed by composing the k-step pieces for the powers of two that sum to n
    (O(T log T) work for any n; see the comment in the code). Where the n steps
    run past the end, the return stops at :math:`S_T` and bootstraps from
    ``bootstrap_value``, so with n ≥ T every :math:`G_{t:t+n}` is the Monte
    Carlo return :func:`discounted_returns` (with the same bootstrap).
    n = 1 gives the TD(0) target :math:`r_{t+1} + \gamma_{t+1} V(S_{t+1})`.

    Args:
      rewards, discounts: ``[T]``, as in :func:`discounted_returns`.
      values: ``[T]``, ``values[t]`` = :math:`V(S_t)`.
      bootstrap_value: scalar :math:`V(S_T)`.
      n: steps before bootstrapping, a positive int (may be traced, e.g. vmapped).
    """
    _check_bootstrapped(rewards, discounts, values, bootstrap_value)
    if not is_traced(n):
        if isinstance(n, jax.Array) and n.ndim == 0 and jnp.issubdtype(n.dtype, jnp.integer):
            n = int(n)  # a concrete JAX integer, e.g. from a loop over jnp.array([1, 2, 4])
        check_positive_int("n", n)
    return _n_step_returns(*_as_float32(rewards, discounts, values, bootstrap_value), jnp.asarray(n, jnp.int32))


@jax.jit
def _n_step_returns(rewards, discounts, values, bootstrap_value, n):
    # A k-step return from t is affine in the value where it stops:
    #   G_{t:t+k} = a_k[t] + b_k[t] V(S_{min(t+k, T)}),
    # a_k the discounted rewards of the k steps, b_k the product of their discounts.
    # Two such pieces compose, a_{j+k}[t] = a_j[t] + b_j[t] a_k[t+j], b_{j+k}[t] = b_j[t] b_k[t+j],
    # so G_{t:t+n} is built from the pieces of length 1, 2, 4, ... that make up n in
    # binary: O(T log T) work, and the same loop for every n (n can be vmapped).
    T = rewards.shape[0]
    n = jnp.minimum(n, T)  # n ≥ T: every return reaches S_T
    t = jnp.arange(T + 1)
    a_piece = jnp.concatenate([rewards, jnp.zeros(1)])  # k = 1; position T is S_T: a = 0, b = 1
    b_piece = jnp.concatenate([discounts, jnp.ones(1)])
    a, b, done = jnp.zeros(T + 1), jnp.ones(T + 1), jnp.int32(0)  # the part of n built so far
    for bit in range(max(T, 1).bit_length()):
        length = 1 << bit  # a_piece, b_piece: the pieces of this length
        use = (n >> bit) & 1
        at = jnp.minimum(t + done, T)
        a = jnp.where(use, a + b * a_piece[at], a)
        b = jnp.where(use, b * b_piece[at], b)
        done = done + use * length
        ahead = jnp.minimum(t + length, T)
        a_piece, b_piece = a_piece + b_piece * a_piece[ahead], b_piece * b_piece[ahead]
    v = jnp.concatenate([values, bootstrap_value[None]])
    return (a + b * v[jnp.minimum(t + done, T)])[:-1]


def lambda_returns(
    rewards: Float[Array, "T"],
    discounts: Float[Array, "T"],
    values: Float[Array, "T"],
    bootstrap_value: Float[Array, ""],
    lambda_: float,
) -> Float[Array, "T"]:
    r"""λ-returns :math:`G^\lambda_t` of one trajectory, computed backwards (S&B §12.1).

    The λ-return weighs the n-step returns geometrically,

    .. math::

        G^\lambda_t = (1 - \lambda) \sum_{n=1}^{T-t-1} \lambda^{n-1} G_{t:t+n}
                      + \lambda^{T-t-1} G_{t:T},

    which is the same as the recursion (one reverse :func:`jax.lax.scan`)

    .. math::

        G^\lambda_t = r_{t+1} + \gamma_{t+1}\big[(1 - \lambda) V(S_{t+1})
                      + \lambda G^\lambda_{t+1}\big], \qquad G^\lambda_T = V(S_T).

    λ = 0 gives the TD(0) target, λ = 1 the Monte Carlo return
    (:func:`discounted_returns` with the same bootstrap). ``lambda_`` is a
    scalar in [0, 1] (may be traced); arguments otherwise as in :func:`n_step_returns`.
    """
    _check_bootstrapped(rewards, discounts, values, bootstrap_value)
    check_hyperparameters(lambda_=lambda_)
    return _lambda_returns(*_as_float32(rewards, discounts, values, bootstrap_value, lambda_))


@jax.jit
def _lambda_returns(rewards, discounts, values, bootstrap_value, lambda_):
    # V(S_{t+1}) rides in the carry, so no shifted copy of ``values`` is built:
    # under vmap a time-major [T, B] batch is then scanned without a transpose.
    def backward(carry, step):
        g_next, v_next = carry
        reward, discount, v = step
        g = reward + discount * ((1.0 - lambda_) * v_next + lambda_ * g_next)
        return (g, v), g

    _, g = jax.lax.scan(backward, (bootstrap_value, bootstrap_value), (rewards, discounts, values), reverse=True)
    return g


def gae(
    rewards: Float[Array, "T"],
    discounts: Float[Array, "T"],
    values: Float[Array, "T"],
    bootstrap_value: Float[Array, ""],
    lambda_: float,
) -> Float[Array, "T"]:
    r"""Generalised advantage estimates :math:`\hat A_t` (Schulman et al., 2016), backwards.

    .. math::

        \hat A_t = \sum_{l \ge 0} \Big(\prod_{j=1}^{l} \gamma_{t+j}\lambda\Big) \delta_{t+l},
        \qquad \text{i.e.} \qquad
        \hat A_t = \delta_t + \gamma_{t+1} \lambda \hat A_{t+1}, \quad \hat A_T = 0,

    with the TD errors :math:`\delta_t` of :func:`td_errors`; one reverse
    :func:`jax.lax.scan`. λ = 0 gives :math:`\delta_t`, λ = 1 the Monte Carlo
    advantage :math:`G_t - V(S_t)`, and always
    :math:`\hat A_t = G^\lambda_t - V(S_t)` (:func:`lambda_returns`).
    A zero discount (termination) stops the sum; ``bootstrap_value`` =
    :math:`V(S_T)` enters through :math:`\delta_{T-1}` after a time-limit cut.
    Arguments as in :func:`lambda_returns`.
    """
    _check_bootstrapped(rewards, discounts, values, bootstrap_value)
    check_hyperparameters(lambda_=lambda_)
    return _gae(*_as_float32(rewards, discounts, values, bootstrap_value, lambda_))


@jax.jit
def _gae(rewards, discounts, values, bootstrap_value, lambda_):
    def backward(carry, step):  # V(S_{t+1}) rides in the carry, as in _lambda_returns
        a_next, v_next = carry
        reward, discount, v = step
        a = reward + discount * v_next - v + discount * lambda_ * a_next  # δ_t + γ_{t+1} λ Â_{t+1}
        return (a, v), a

    init = (jnp.zeros_like(bootstrap_value), bootstrap_value)
    _, advantages = jax.lax.scan(backward, init, (rewards, discounts, values), reverse=True)
    return advantages


# ------------------------------------------------------ time-limit cuts inside a trajectory


def _check_transitions(rewards, discounts, values, next_values, truncated) -> None:
    check_sequences(rewards=rewards, discounts=discounts, values=values, next_values=next_values,
                    truncated=truncated)
    check_discounts(discounts)


def gae_from_transitions(
    rewards: Float[Array, "T"],
    discounts: Float[Array, "T"],
    values: Float[Array, "T"],
    next_values: Float[Array, "T"],
    truncated: Float[Array, "T"],
    lambda_: float,
) -> Float[Array, "T"]:
    r""":func:`gae` for a rollout segment whose episodes may be cut by a time limit anywhere in it.

    With auto-reset (:mod:`rlbook_lib.rollout`), the state after a truncated step
    t is not :math:`S_{t+1}` of the trajectory (that one starts the next
    episode) but the true next state, ``next_obs[t]``. So this form takes
    ``next_values[t]`` = :math:`V(S'_{t+1})` of every step's true next state, and
    ``truncated[t]`` (1 where a time limit cut the episode after step t):

    .. math::

        \delta_t = r_{t+1} + \gamma_{t+1} V(S'_{t+1}) - V(S_t), \qquad
        \hat A_t = \delta_t + \gamma_{t+1} \lambda (1 - c_t) \hat A_{t+1},
        \quad \hat A_T = 0, \qquad c_t = \text{truncated[t]}.

    A truncated step bootstraps from its own next state (its discount stays γ)
    and stops the sum like a termination. Without cuts, and with
    ``next_values = [values[1:], V(S_T)]``, it is :func:`gae`.
    """
    _check_transitions(rewards, discounts, values, next_values, truncated)
    check_hyperparameters(lambda_=lambda_)
    return _gae_from_transitions(*_as_float32(rewards, discounts, values, next_values, truncated, lambda_))


@jax.jit
def _gae_from_transitions(rewards, discounts, values, next_values, truncated, lambda_):
    def backward(a_next, step):
        reward, discount, v, v_next, cut = step
        a = reward + discount * v_next - v + discount * lambda_ * (1.0 - cut) * a_next
        return a, a

    _, advantages = jax.lax.scan(backward, jnp.float32(0.0), (rewards, discounts, values, next_values, truncated),
                                 reverse=True)
    return advantages


def lambda_returns_from_transitions(rewards, discounts, values, next_values, truncated, lambda_) -> Float[Array, "T"]:
    r""":func:`lambda_returns` with time-limit cuts inside the trajectory:
    :math:`G^\lambda_t = \hat A_t + V(S_t)` with :math:`\hat A_t` of :func:`gae_from_transitions`."""
    return gae_from_transitions(rewards, discounts, values, next_values, truncated, lambda_) + jnp.asarray(
        values, jnp.float32)
