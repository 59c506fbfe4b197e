r"""Off-policy evaluation of a contextual-bandit policy from logged data: IPS, SNIPS, DM and DR.

A deployed policy μ (the *logging* or behaviour policy) recorded n rounds
:math:`(u_i, a_i, \mu(a_i \mid u_i), r_i)`. We want the value of a new policy π,

.. math:: J(\pi) = \mathbb{E}_{u}\Big[ \sum_a \pi(a \mid u)\, q(u, a) \Big],

without deploying it. With :math:`\rho_i = \pi(a_i \mid u_i) / \mu(a_i \mid u_i)` (the
importance ratio of chapter "Importance sampling, bias and variance", one step long) and
a reward model :math:`\hat q(u, a)`:

=========  ==================================================================================  ==========================
estimator  formula                                                                             unbiased?
=========  ==================================================================================  ==========================
IPS        :math:`\frac1n \sum_i \rho_i r_i`                                                      yes, if μ > 0 where π > 0
SNIPS      :math:`\sum_i \rho_i r_i / \sum_i \rho_i`                                                 no (bias O(1/n)), lower variance
DM         :math:`\frac1n \sum_i \sum_a \pi(a \mid u_i)\, \hat q(u_i, a)`                     only if q̂ = q
DR         :math:`\frac1n \sum_i \big[ \sum_a \pi(a \mid u_i) \hat q(u_i, a) + \rho_i (r_i - \hat q(u_i, a_i)) \big]`  yes, whatever q̂
=========  ==================================================================================  ==========================

IPS and SNIPS are :func:`rlbook_lib.importance_sampling.ordinary_estimate` and
:func:`~rlbook_lib.importance_sampling.weighted_estimate` with one-step returns.
The doubly robust estimator (Dudík, Langford & Li, 2011) uses q̂ as a control
variate: with q̂ = q and noiseless rewards every term equals the user's true
value, so the correction adds no variance at all.

Policies are [U, K] matrices of probabilities over the K items for each of the
U users of a :class:`rlbook_lib.contextual_bandits.World`, like the [S, A] policies
of tabular MDPs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import checks, importance_sampling
from rlbook_lib import mdp as mdp_lib


class LoggedData(NamedTuple):
    """n logged rounds of the behaviour policy μ."""

    users: Int[Array, "n"]  # u_i
    actions: Int[Array, "n"]  # a_i ~ μ(· | u_i)
    propensities: Float[Array, "n"]  # μ(a_i | u_i), recorded when a_i was chosen
    rewards: Float[Array, "n"]  # r_i = q(u_i, a_i) + σ Z_i


class Estimates(NamedTuple):
    """The four estimates of J(π) from one log."""

    ips: Float[Array, ""]
    snips: Float[Array, ""]
    dm: Float[Array, ""]
    dr: Float[Array, ""]


def check_propensities(propensities) -> None:
    """ValueError unless every logged propensity μ(a_i | u_i) lies in (0, 1]."""
    if mdp_lib.is_traced(propensities):
        return
    p = np.asarray(propensities, np.float64)
    if np.any(~(p > 0)) or np.any(p > 1):
        bad = p[~((p > 0) & (p <= 1))][0]
        raise ValueError(f"propensities must lie in (0, 1]: an action logged with propensity {bad:g} "
                         "cannot be reweighted (a 0 means the log is corrupt or μ is not the logging policy)")


def _check_policy_matrix(name: str, pi, shape=None) -> None:
    if mdp_lib.is_traced(pi):
        return
    if np.ndim(pi) != 2 or (shape is not None and np.shape(pi) != shape):
        raise ValueError(f"{name} must be a [U, K] matrix{'' if shape is None else f' of shape {shape}'}, "
                         f"got shape {np.shape(pi)}")
    rows = np.asarray(pi, np.float64)
    if np.any(rows < 0) or not np.allclose(rows.sum(-1), 1.0, atol=mdp_lib.ROW_TOLERANCE):
        raise ValueError(f"every row of {name} must be a probability distribution over the K items")


def true_value(q: Float[Array, "U K"], pi: Float[Array, "U K"]) -> Float[Array, ""]:
    """J(π) = (1/U) Σ_u Σ_a π(a | u) q(u, a), users drawn uniformly."""
    _check_policy_matrix("pi", pi, np.shape(q))
    return jnp.mean(jnp.sum(pi * q, axis=-1))


def log_data(key: PRNGKeyArray, q: Float[Array, "U K"], behaviour: Float[Array, "U K"], noise_std,
             num_samples: int) -> LoggedData:
    """n rounds of μ = ``behaviour``: u_i uniform, a_i ~ μ(· | u_i), r_i = q(u_i, a_i) + σ Z_i."""
    _check_policy_matrix("behaviour", behaviour, np.shape(q))
    checks.check_positive_int("num_samples", num_samples)
    key_u, key_a, key_r = jax.random.split(key, 3)
    users = jax.random.randint(key_u, (num_samples,), 0, q.shape[0])
    logits = jnp.log(jnp.asarray(behaviour, jnp.float32)[users])
    actions = jax.random.categorical(key_a, logits)
    rewards = q[users, actions] + noise_std * jax.random.normal(key_r, (num_samples,))
    return LoggedData(users, actions, jnp.asarray(behaviour)[users, actions], rewards)


def importance_weights(data: LoggedData, target: Float[Array, "U K"]) -> Float[Array, "n"]:
    """ρ_i = π(a_i | u_i) / μ(a_i | u_i)."""
    check_propensities(data.propensities)
    return jnp.asarray(target, jnp.float32)[data.users, data.actions] / data.propensities


def ips(data: LoggedData, target: Float[Array, "U K"]) -> Float[Array, ""]:
    """Inverse propensity scoring, (1/n) Σ_i ρ_i r_i: unbiased when μ > 0 wherever π > 0."""
    return importance_sampling.ordinary_estimate(data.rewards, importance_weights(data, target))


def snips(data: LoggedData, target: Float[Array, "U K"]) -> Float[Array, ""]:
    """Self-normalised IPS, Σ_i ρ_i r_i / Σ_i ρ_i (weighted importance sampling)."""
    return importance_sampling.weighted_estimate(data.rewards, importance_weights(data, target))


def direct_method(data: LoggedData, target: Float[Array, "U K"], q_hat: Float[Array, "U K"]) -> Float[Array, ""]:
    """(1/n) Σ_i Σ_a π(a | u_i) q̂(u_i, a): trusts the model, ignores the logged rewards."""
    target, q_hat = jnp.asarray(target, jnp.float32), jnp.asarray(q_hat, jnp.float32)
    return jnp.mean(jnp.sum(target[data.users] * q_hat[data.users], axis=-1))


def doubly_robust(data: LoggedData, target: Float[Array, "U K"], q_hat: Float[Array, "U K"]) -> Float[Array, ""]:
    """DM plus the IPS estimate of the model's error: (1/n) Σ_i [Σ_a π q̂ + ρ_i (r_i − q̂(u_i, a_i))]."""
    w = importance_weights(data, target)
    residual = data.rewards - jnp.asarray(q_hat, jnp.float32)[data.users, data.actions]
    return direct_method(data, target, q_hat) + jnp.mean(w * residual)


def estimate_all(data: LoggedData, target: Float[Array, "U K"], q_hat: Float[Array, "U K"]) -> Estimates:
    """IPS, SNIPS, DM and DR of J(``target``) from one log (vmap over logs for bias and variance)."""
    _check_policy_matrix("target", target)
    return Estimates(ips(data, target), snips(data, target), direct_method(data, target, q_hat),
                     doubly_robust(data, target, q_hat))


def fit_reward_model(data: LoggedData, features: Float[Array, "U d"], num_items: int,
                     regularization=1.0) -> Float[Array, "U K"]:
    """q̂(u, a) = x_u · θ̂_a from per-item ridge regressions on the log (the model DM and DR use).

    θ̂_a = (λ I + Σ_{i: a_i = a} x x ᵀ)^{-1} Σ_{i: a_i = a} r_i x_{u_i}, one small solve per item.
    """
    x = jnp.asarray(features, jnp.float32)[data.users]  # [n, d]
    onehot = jax.nn.one_hot(data.actions, num_items)  # [n, K]
    gram = jnp.einsum("nk,ni,nj->kij", onehot, x, x) + regularization * jnp.eye(x.shape[1])
    rhs = jnp.einsum("nk,n,ni->ki", onehot, data.rewards, x)
    theta = jax.vmap(jnp.linalg.solve)(gram, rhs)
    return jnp.asarray(features, jnp.float32) @ theta.T
