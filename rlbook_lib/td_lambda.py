r"""TD(λ) with accumulating eligibility traces, the offline λ-return algorithm (S&B ch. 12), and n-step TD (ch. 7).

Linear values :math:`\hat v(s, \mathbf{w}) = \mathbf{w}^\top \mathbf{x}(s)`; the
tabular case is one-hot features, given as indices by :func:`tabular_features`.
One trajectory:

==========================  ================  =========  =================================================
symbol                      code              shape      meaning
==========================  ================  =========  =================================================
:math:`\mathbf{x}(S_t)`     ``features[t]``   [T+1, d]   features of S_0, ..., S_T (row T: the state after
                                                         the last step, used only after a time-limit cut)
:math:`r_{t+1}`             ``rewards[t]``    [T]        as in :mod:`rlbook_lib.returns`
:math:`\gamma_{t+1}`        ``discounts[t]``  [T]        γ (1 − terminated_{t+1})
:math:`\mathbf{z}_t`        traces[t]         [T, d]     the eligibility trace after step t
==========================  ================  =========  =================================================

**Forward view**: the λ-return algorithm moves each :math:`\hat v(S_t)` towards
the λ-return :math:`G^\lambda_t` (:func:`rlbook_lib.returns.lambda_returns`).
**Backward view**: TD(λ) spreads each TD error
:math:`\delta_t = r_{t+1} + \gamma_{t+1} \hat v(S_{t+1}) - \hat v(S_t)` over
the states visited before, through the accumulating trace

.. math::

    \mathbf{z}_{-1} = \mathbf{0}, \qquad \mathbf{z}_t = \gamma_t \lambda\, \mathbf{z}_{t-1} + \mathbf{x}(S_t),
    \qquad \mathbf{w} \leftarrow \mathbf{w} + \alpha\, \delta_t\, \mathbf{z}_t,

where :math:`\gamma_t` = ``discounts[t-1]`` is the discount of the step into
:math:`S_t`, so a termination clears the trace. **Offline** (w held fixed
during the trajectory, the increments added at its end) the two views are
equal, because the sums can be reordered:

.. math::

    \sum_t \delta_t \mathbf{z}_t
    = \sum_t \mathbf{x}(S_t) \sum_{k \ge t} \Big(\prod_{j=t+1}^{k} \gamma_j \lambda\Big) \delta_k
    = \sum_t \big[G^\lambda_t - \hat v(S_t)\big]\, \mathbf{x}(S_t),

the inner sum being the GAE of :func:`rlbook_lib.returns.gae`
(:func:`offline_td_lambda` = :func:`offline_lambda_return`). Online (w
changing at every step, :func:`online_td_lambda`) they differ by terms of order
α², and so does S&B's offline λ-return algorithm, which applies the same
increments one after another at the episode's end (:func:`lambda_return_updates`).

**n-step TD** (:func:`n_step_td`, S&B §7.1) moves :math:`\hat v(S_\tau)` towards
the n-step return :math:`G_{\tau:\tau+n}` as soon as it is known, n steps later,
bootstrapping from the w of that moment.

**Features** are dense rows [T+1, d] (float), or the indices of the active
binary features [T+1, k] (int; tabular: k = 1, the state itself), as in
:mod:`rlbook_lib.vfa`; an index ≥ d stands for no feature. Indices
make :func:`n_step_td` and :func:`lambda_return_updates` cost O(k) instead of
O(d) per step; the others work on the equivalent dense rows.

**Padding.** Steps with no features (zero rows, or indices ≥ d) and zero reward
and discount add nothing, so episodes of different lengths fit one buffer (see
:func:`tabular_features`). Every function works on one trajectory; vmap over
runs, α or λ.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from rlbook_lib import checks, returns
from rlbook_lib import mdp as mdp_lib


def _check(features, rewards, discounts, alpha=None, lambda_=None) -> None:
    sequences = dict(discounts=discounts) if rewards is None else dict(rewards=rewards, discounts=discounts)
    T = checks.check_sequences(**sequences)
    if np.ndim(features) != 2 or np.shape(features)[0] != T + 1:
        raise ValueError(f"features must have shape [T+1, d] (or [T+1, k] active indices) = [{T + 1}, ...] "
                         f"(x(S_0), ..., x(S_T)), got {np.shape(features)}")
    checks.check_discounts(discounts)
    if alpha is not None:
        checks.check_hyperparameters(step_size=alpha)
    if lambda_ is not None:
        checks.check_hyperparameters(lambda_=lambda_)


def _floats(*xs):
    return tuple(jnp.asarray(x, jnp.float32) for x in xs)


def _is_indices(features) -> bool:
    return jnp.issubdtype(jnp.asarray(features).dtype, jnp.integer)


def _dense(features, d: int) -> Float[Array, "T+1 d"]:
    """Dense rows x(S_t): unchanged, or the sum of the one-hot rows of the active indices
    (an index ≥ d gives a zero row)."""
    if not _is_indices(features):
        return jnp.asarray(features, jnp.float32)
    return jax.nn.one_hot(features, d).sum(axis=-2)


def _value(w, x) -> Float[Array, ""]:
    """wᵀx, or Σ_{i active} w_i (indices ≥ d count 0)."""
    return jnp.sum(w.at[x].get(mode="fill", fill_value=0.0)) if _is_indices(x) else w @ x


def _add(w, x, scale) -> Float[Array, "d"]:
    """w + scale · x, or scale added at each active index (indices ≥ d dropped)."""
    return w.at[x].add(scale, mode="drop") if _is_indices(x) else w + scale * x


def tabular_features(observations: Int[Array, "T"], mask: Bool[Array, "T"], num_states: int) -> Int[Array, "T+1 1"]:
    r"""Tabular features as active indices: row t is [S_t], or [S] (no feature) where ``mask``
    is False, and row T is [S] too.

    Fits :func:`rlbook_lib.mc.collect_episode`'s buffer (``episode.observations``,
    ``episode.mask``); the dense equivalent is the one-hot rows (zero rows where
    there is no feature). The empty row T is right when the episode terminated
    (its discount 0 ignores it); after a cut at the end of the buffer it
    bootstraps from 0.
    """
    checks.check_sequences(observations=observations, mask=mask)
    checks.check_positive_int("num_states", num_states)
    index = jnp.where(jnp.asarray(mask, bool), jnp.asarray(observations, jnp.int32), num_states)
    return jnp.concatenate([index, jnp.full(1, num_states, jnp.int32)])[:, None]


def eligibility_traces(features: Float[Array, "T+1 d"], discounts: Float[Array, "T"], lambda_,
                       num_features: int | None = None) -> Float[Array, "T d"]:
    r"""Accumulating traces :math:`\mathbf{z}_t = \gamma_t \lambda \mathbf{z}_{t-1} + \mathbf{x}(S_t)`,
    t = 0, ..., T−1, with :math:`\mathbf{z}_{-1} = 0` and :math:`\gamma_t` = ``discounts[t-1]``.
    Index features need ``num_features`` = d."""
    _check(features, None, discounts, lambda_=lambda_)
    if _is_indices(features):
        if num_features is None:
            raise ValueError("num_features (d) is needed with index features")
        features = _dense(features, num_features)
    features, discounts, lambda_ = _floats(features, discounts, lambda_)
    previous = jnp.concatenate([jnp.zeros(1), discounts[:-1]])  # γ_t, the step into S_t

    def forward(z, step):
        x, discount = step
        z = discount * lambda_ * z + x
        return z, z

    _, traces = jax.lax.scan(forward, jnp.zeros(features.shape[1]), (features[:-1], previous))
    return traces


def td_errors(w: Float[Array, "d"], features, rewards, discounts) -> Float[Array, "T"]:
    r""":math:`\delta_t = r_{t+1} + \gamma_{t+1} \mathbf{w}^\top \mathbf{x}(S_{t+1}) - \mathbf{w}^\top \mathbf{x}(S_t)` with w fixed."""
    _check(features, rewards, discounts)
    w = jnp.asarray(w, jnp.float32)
    values = jax.vmap(_value, (None, 0))(w, jnp.asarray(features))
    return returns.td_errors(rewards, discounts, values[:-1], values[-1])


def offline_td_lambda(w: Float[Array, "d"], features, rewards, discounts, alpha, lambda_) -> Float[Array, "d"]:
    r"""Offline TD(λ): :math:`\mathbf{w} + \alpha \sum_t \delta_t \mathbf{z}_t`, δ and z with w held fixed."""
    _check(features, rewards, discounts, alpha, lambda_)
    w = jnp.asarray(w, jnp.float32)
    deltas = td_errors(w, features, rewards, discounts)
    return w + alpha * deltas @ eligibility_traces(_dense(features, w.shape[0]), discounts, lambda_)


def offline_lambda_return(w: Float[Array, "d"], features, rewards, discounts, alpha, lambda_) -> Float[Array, "d"]:
    r"""The offline λ-return algorithm with summed increments:
    :math:`\mathbf{w} + \alpha \sum_t [G^\lambda_t - \mathbf{w}^\top \mathbf{x}(S_t)]\, \mathbf{x}(S_t)`,
    everything from w held fixed. This is the forward view that offline TD(λ)
    equals exactly (:func:`offline_td_lambda`). A state visited k times gets k
    increments at once, so for large α (k α > 2) it overshoots;
    :func:`lambda_return_updates` applies them one after another instead."""
    _check(features, rewards, discounts, alpha, lambda_)
    w = jnp.asarray(w, jnp.float32)
    features = _dense(features, w.shape[0])
    values = features @ w
    targets = returns.lambda_returns(rewards, discounts, values[:-1], values[-1], lambda_)
    return w + alpha * (targets - values[:-1]) @ features[:-1]


def lambda_return_updates(w: Float[Array, "d"], features, rewards, discounts, alpha, lambda_) -> Float[Array, "d"]:
    r"""S&B's offline λ-return algorithm (eq. 12.4): at the episode's end, for t = 0, ..., T−1 in turn,

    .. math:: \mathbf{w}_{t+1} = \mathbf{w}_t + \alpha \big[G^\lambda_t - \mathbf{w}_t^\top \mathbf{x}(S_t)\big] \mathbf{x}(S_t),

    the targets :math:`G^\lambda_t` computed once, from the w the episode ran
    with (``w`` = w_0), the errors from the w of each update. For small α it is
    :func:`offline_lambda_return` up to O(α²); with one-hot features and α ≤ 1
    each update moves V(S_t) only part of the way to its target, so it cannot
    overshoot (S&B's Fig. 12.3).
    """
    _check(features, rewards, discounts, alpha, lambda_)
    w, features = jnp.asarray(w, jnp.float32), jnp.asarray(features)
    values = jax.vmap(_value, (None, 0))(w, features)
    targets = returns.lambda_returns(rewards, discounts, values[:-1], values[-1], lambda_)

    def update(w, inputs):
        x, target = inputs
        return _add(w, x, alpha * (target - _value(w, x))), None

    w, _ = jax.lax.scan(update, w, (features[:-1], targets))
    return w


def online_td_lambda(w: Float[Array, "d"], features, rewards, discounts, alpha, lambda_) -> Float[Array, "d"]:
    r"""Online semi-gradient TD(λ) with accumulating traces (S&B §12.2), w after the trajectory.

    At each step t = 0, ..., T−1, with the w of that moment:
    :math:`\mathbf{z}_t = \gamma_t \lambda \mathbf{z}_{t-1} + \mathbf{x}(S_t)`,
    :math:`\delta_t = r_{t+1} + \gamma_{t+1} \mathbf{w}^\top \mathbf{x}(S_{t+1}) - \mathbf{w}^\top \mathbf{x}(S_t)`,
    :math:`\mathbf{w} \leftarrow \mathbf{w} + \alpha \delta_t \mathbf{z}_t`. λ = 0 is semi-gradient TD(0).
    """
    _check(features, rewards, discounts, alpha, lambda_)
    features = _dense(features, np.shape(w)[0])
    features, rewards, discounts, w, alpha, lambda_ = _floats(features, rewards, discounts, w, alpha, lambda_)

    def step(carry, inputs):
        w, z = carry  # z: γ_t λ z_{t−1}, the trace decayed into S_t
        x, x_next, reward, discount = inputs
        z = z + x
        delta = reward + discount * (w @ x_next) - w @ x
        w = w + alpha * delta * z
        return (w, discount * lambda_ * z), None

    (w, _), _ = jax.lax.scan(step, (w, jnp.zeros_like(w)), (features[:-1], features[1:], rewards, discounts))
    return w


def n_step_td(w: Float[Array, "d"], features, rewards, discounts, alpha, n) -> Float[Array, "d"]:
    r"""Online n-step semi-gradient TD over one trajectory (S&B §7.1, with features as in ch. 9), w after it.

    For τ = 0, ..., T−1 in order (the update of τ happens at time τ + n, after those of τ' < τ):

    .. math::

        G_{\tau:\tau+n} = \sum_{i=0}^{m-1} \Big(\prod_{j=1}^{i} \gamma_{\tau+j}\Big) r_{\tau+i+1}
                          + \Big(\prod_{j=1}^{m} \gamma_{\tau+j}\Big)\, \mathbf{w}^\top \mathbf{x}(S_{\tau+m}),
        \quad m = \min(n, T - \tau), \qquad
        \mathbf{w} \leftarrow \mathbf{w} + \alpha \big[G_{\tau:\tau+n} - \mathbf{w}^\top \mathbf{x}(S_\tau)\big]
                             \mathbf{x}(S_\tau),

    with the current w in the bootstrap. The rewards part and the product of
    discounts do not depend on w and come from :func:`rlbook_lib.returns.n_step_returns`.
    The trajectory is given in advance, so the policy must not depend on w
    (prediction). n = 1 is semi-gradient TD(0); n ≥ T is gradient Monte Carlo
    with w updated along the way. ``n`` may be traced (vmap over n and α).
    """
    _check(features, rewards, discounts, alpha)
    if not mdp_lib.is_traced(n):
        if isinstance(n, jax.Array) and n.ndim == 0 and jnp.issubdtype(n.dtype, jnp.integer):
            n = int(n)  # a concrete JAX integer, e.g. from a loop over jnp.array([1, 2, 4])
        checks.check_positive_int("n", n)
    rewards, discounts, w = _floats(rewards, discounts, w)
    features = jnp.asarray(features)
    T = rewards.shape[0]
    zeros = jnp.zeros(T)
    partial = returns.n_step_returns(rewards, discounts, zeros, 0.0, n)  # the rewards of G_{τ:τ+n}
    weight = returns.n_step_returns(zeros, discounts, zeros + 1.0, 1.0, n)  # Π γ over its m steps
    bootstrap_at = jnp.minimum(jnp.arange(T) + n, T)  # τ + m

    def update(w, inputs):
        x, g_partial, discount_product, index = inputs
        g = g_partial + discount_product * _value(w, features[index])
        return _add(w, x, alpha * (g - _value(w, x))), None

    w, _ = jax.lax.scan(update, w, (features[:-1], partial, weight, bootstrap_at))
    return w
