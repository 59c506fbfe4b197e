r"""Contextual bandits with linear models: ε-greedy, LinUCB and linear Thompson sampling.

A recommender sees a user, shows one of K items and observes a reward (a click,
a rating, minutes watched). That is a bandit whose best arm depends on a context
(chapter "Applications"; the plain bandit is in :mod:`rlbook_lib.bandits`).

**The world.** U users with features :math:`\mathbf{x}_u \in \mathbb{R}^d` and K
items with hidden latent factors :math:`\mathbf{w}^*_a \in \mathbb{R}^d`.
The expected reward of showing item a to user u is the inner product of the two,

.. math:: q(u, a) = \mathbf{x}_u^\top \mathbf{w}^*_a,

the latent-factor model of collaborative filtering, so the best item of every
user, and the regret of every choice, are known exactly. At round t a user
u_t is drawn uniformly, the agent sees the context :math:`\mathbf{x}_t = \mathbf{x}_{u_t}`,
picks A_t and receives :math:`R_{t+1} = q(u_t, A_t) + \sigma Z_{t+1}`, Z ~ N(0, 1).

**Per-arm ridge regression** (Li et al., 2010, the "disjoint" model). With
regularisation λ > 0, after the rounds in which arm a was shown,

.. math::

    \mathbf{A}_a = \lambda \mathbf{I} + \sum_{t:\,A_t = a} \mathbf{x}_t \mathbf{x}_t^\top,
    \qquad \mathbf{b}_a = \sum_{t:\,A_t = a} R_{t+1}\, \mathbf{x}_t,
    \qquad \hat{\mathbf{w}}_a = \mathbf{A}_a^{-1} \mathbf{b}_a .

We store :math:`\mathbf{A}_a^{-1}` and update it with the Sherman-Morrison formula
:math:`(\mathbf{A} + \mathbf{x}\mathbf{x}^\top)^{-1} = \mathbf{A}^{-1} -
\mathbf{A}^{-1}\mathbf{x}\mathbf{x}^\top\mathbf{A}^{-1} / (1 + \mathbf{x}^\top\mathbf{A}^{-1}\mathbf{x})`:
O(d²) per round instead of a solve of O(d³), and no batched LAPACK call inside
``jit(vmap(...))``.

**The three agents**, each picking :math:`\operatorname{argmax}_a` of a score:

=================  ==========================================================================
agent              score of arm a for context x
=================  ==========================================================================
ε-greedy           :math:`\mathbf{x}^\top\hat{\mathbf{w}}_a` (uniform arm w.p. ε)
LinUCB             :math:`\mathbf{x}^\top\hat{\mathbf{w}}_a + c\, \sqrt{\mathbf{x}^\top \mathbf{A}_a^{-1}\mathbf{x}}`
Thompson sampling  :math:`\mathbf{x}^\top\tilde{\mathbf{w}}_a`, :math:`\tilde{\mathbf{w}}_a \sim \mathcal{N}(\hat{\mathbf{w}}_a, \sigma_{\mathrm{TS}}^2\mathbf{A}_a^{-1})`
=================  ==========================================================================

Thompson sampling needs only the scalar :math:`\mathbf{x}^\top\tilde{\mathbf{w}}_a`,
whose law is :math:`\mathcal{N}(\mathbf{x}^\top\hat{\mathbf{w}}_a, \sigma_{\mathrm{TS}}^2\, \mathbf{x}^\top\mathbf{A}_a^{-1}\mathbf{x})`.
The arms' posteriors are independent, so drawing these K scalars is exactly
drawing the K vectors and projecting them, without a Cholesky factor.

Example (1,000 runs in one call)::

    world = contextual_bandits.make_world(jax.random.key(0), num_users=100, num_items=10, dim=5)
    agent = contextual_bandits.linucb(1.0)
    run = jax.jit(jax.vmap(lambda k: contextual_bandits.run(agent, world, k, num_rounds=2000)))
    trace = run(jax.random.split(jax.random.key(1), 1000))
    trace.regret.cumsum(axis=1).mean(axis=0)     # mean cumulative regret, [2000]
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import checks, mdp as mdp_lib


class World(NamedTuple):
    """A user-item world with latent factors; q(u, a) = x_u · w*_a."""

    user_features: Float[Array, "U d"]
    """x_u, what the agent sees of user u."""
    item_factors: Float[Array, "K d"]
    """w*_a, hidden from the agent."""
    noise_std: Float[Array, ""]
    """σ, the standard deviation of the reward noise."""


class LinearState(NamedTuple):
    """Per-arm ridge regression: A_a^{-1} and b_a for every arm."""

    a_inv: Float[Array, "K d d"]
    """A_a^{-1}, the inverse of λ I + Σ x xᵀ over the rounds arm a was shown."""
    b: Float[Array, "K d"]
    """b_a = Σ R x over the same rounds."""


class Agent(NamedTuple):
    """A contextual bandit algorithm: ``select(key, state, x) -> A_t``; all agents share :func:`update`."""

    select: Callable[[PRNGKeyArray, LinearState, Float[Array, "d"]], Int[Array, ""]]


class Trace(NamedTuple):
    """What happened in each of the T rounds of one run."""

    users: Int[Array, "T"]  # u_t
    actions: Int[Array, "T"]  # A_t
    rewards: Float[Array, "T"]  # R_{t+1}
    regret: Float[Array, "T"]  # max_a q(u_t, a) - q(u_t, A_t), the expected regret of the choice


# ------------------------------------------------------------------------- the world


def world_from_factors(user_features, item_factors, noise_std=1.0) -> World:
    """A :class:`World` from given factors; ValueError if the two dimensions d differ."""
    x, theta = np.asarray(user_features), np.asarray(item_factors)
    if x.ndim != 2 or theta.ndim != 2:
        raise ValueError(f"user_features [U, d] and item_factors [K, d] must be 2-D, got {x.shape}, {theta.shape}")
    if x.shape[1] != theta.shape[1]:
        raise ValueError(f"context dimension mismatch: user_features have d = {x.shape[1]}, "
                         f"item_factors have d = {theta.shape[1]}")
    if not float(noise_std) >= 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    return World(jnp.asarray(x, jnp.float32), jnp.asarray(theta, jnp.float32), jnp.float32(noise_std))


def make_world(key: PRNGKeyArray, num_users: int, num_items: int, dim: int, noise_std=1.0) -> World:
    """A random world: x_u = (1, z_u / sqrt(d-1)), z_u ~ N(0, I); w*_a ~ N(0, I/2).

    The constant first feature makes w*_a[0] an item's popularity; the rest is taste.
    q(u, a) then has variance about 1 (1/2 from popularity, 1/2 from taste), like the
    10-armed testbed's q*, and the best item differs between users.
    """
    for name, value, low in (("num_users", num_users, 1), ("num_items", num_items, 2), ("dim", dim, 2)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    key_users, key_items = jax.random.split(key)
    z = jax.random.normal(key_users, (num_users, dim - 1)) / np.sqrt(dim - 1)
    x = jnp.concatenate([jnp.ones((num_users, 1)), z], axis=1)
    theta = jax.random.normal(key_items, (num_items, dim)) * np.sqrt(0.5)
    return world_from_factors(x, theta, noise_std)


def expected_rewards(world: World) -> Float[Array, "U K"]:
    """q(u, a) = x_u · w*_a for every user and item."""
    return world.user_features @ world.item_factors.T


# ------------------------------------------------------------------ ridge regression


def init_state(num_arms: int, dim: int, regularization=1.0) -> LinearState:
    """A_a = λ I (so A_a^{-1} = I / λ) and b_a = 0 for every arm."""
    checks.check_positive_int("num_arms", num_arms)
    checks.check_positive_int("dim", dim)
    if not mdp_lib.is_traced(regularization) and not float(regularization) > 0:
        raise ValueError(f"regularization must be > 0, got {regularization}")
    eye = jnp.eye(dim, dtype=jnp.float32) / regularization
    return LinearState(jnp.tile(eye, (num_arms, 1, 1)), jnp.zeros((num_arms, dim), jnp.float32))


def _check_context(state: LinearState, x) -> None:
    if np.shape(x)[-1:] != state.b.shape[-1:]:
        raise ValueError(f"context dimension mismatch: x has shape {np.shape(x)}, the model has d = "
                         f"{state.b.shape[-1]}")


def estimates(state: LinearState) -> Float[Array, "K d"]:
    """ŵ_a = A_a^{-1} b_a for every arm (the ridge-regression estimates)."""
    return jnp.einsum("kij,kj->ki", state.a_inv, state.b)


def confidence_widths(state: LinearState, x: Float[Array, "d"]) -> Float[Array, "K"]:
    """sqrt(xᵀ A_a^{-1} x) for every arm a: the standard error of x·ŵ_a in units of σ."""
    _check_context(state, x)
    return jnp.sqrt(jnp.einsum("i,kij,j->k", x, state.a_inv, x))


def linucb_scores(state: LinearState, x: Float[Array, "d"], c) -> Float[Array, "K"]:
    """x·ŵ_a + c sqrt(xᵀ A_a^{-1} x), LinUCB's optimistic estimate of every arm."""
    return estimates(state) @ x + c * confidence_widths(state, x)


def update(state: LinearState, x: Float[Array, "d"], action: Int[Array, ""], reward) -> LinearState:
    """Add (x, R) to arm ``action``'s regression: A ← A + x xᵀ (by Sherman-Morrison), b ← b + R x."""
    _check_context(state, x)
    a_inv = state.a_inv[action]
    u = a_inv @ x  # A^{-1} x (A^{-1} is symmetric)
    new = a_inv - jnp.outer(u, u) / (1.0 + x @ u)
    return LinearState(state.a_inv.at[action].set(new), state.b.at[action].add(reward * x))


# ------------------------------------------------------------------------------ agents


def _argmax(key, scores):
    """argmax with ties broken at random (matters at the start, when all scores are equal)."""
    noise = 1e-6 * jax.random.uniform(key, scores.shape)
    return jnp.argmax(scores + noise)


def epsilon_greedy(epsilon) -> Agent:
    """Greedy in x·ŵ_a; with probability ε a uniformly random arm instead."""
    checks.check_hyperparameters(epsilon=epsilon)

    def select(key, state, x):
        key_explore, key_arm, key_tie = jax.random.split(key, 3)
        random_arm = jax.random.randint(key_arm, (), 0, state.b.shape[0])
        greedy = _argmax(key_tie, estimates(state) @ x)
        return jnp.where(jax.random.uniform(key_explore) < epsilon, random_arm, greedy)

    return Agent(select)


def linucb(c) -> Agent:
    """LinUCB (Li et al., 2010, who call c α): argmax_a x·ŵ_a + c sqrt(xᵀ A_a^{-1} x)."""
    if not mdp_lib.is_traced(c) and not float(c) >= 0:
        raise ValueError(f"c must be >= 0, got {c}")
    return Agent(lambda key, state, x: _argmax(key, linucb_scores(state, x, c)))


def thompson_sampling(scale) -> Agent:
    """Linear Thompson sampling (Agrawal & Goyal, 2013): argmax_a x·w̃_a, w̃_a ~ N(ŵ_a, σ_TS² A_a^{-1}).

    ``scale`` is σ_TS; σ_TS = σ is the Bayesian posterior for a N(0, σ²/λ I) prior. Only the
    scalars x·w̃_a ~ N(x·ŵ_a, σ_TS² xᵀA_a^{-1}x) are drawn (see the module docstring).
    """
    if not mdp_lib.is_traced(scale) and not float(scale) >= 0:
        raise ValueError(f"scale must be >= 0, got {scale}")

    def select(key, state, x):
        mean, width = estimates(state) @ x, confidence_widths(state, x)
        return jnp.argmax(mean + scale * width * jax.random.normal(key, mean.shape))

    return Agent(select)


# --------------------------------------------------------------------------------- run


def run(agent: Agent, world: World, key: PRNGKeyArray, num_rounds: int, regularization=1.0) -> Trace:
    """One run of ``num_rounds`` rounds against ``world``; vmap over keys for many runs.

    Users and reward noises come from their own keys, so runs of different agents
    with the same key see the same users and noises (paired comparisons).
    """
    checks.check_positive_int("num_rounds", num_rounds)
    num_users, dim = world.user_features.shape
    q = expected_rewards(world)
    key_users, key_noise, key_agent = jax.random.split(key, 3)
    users = jax.random.randint(key_users, (num_rounds,), 0, num_users)
    noise = world.noise_std * jax.random.normal(key_noise, (num_rounds,))

    def step(state, inputs):
        user, z, k = inputs
        x = world.user_features[user]
        action = agent.select(k, state, x)
        reward = q[user, action] + z
        regret = jnp.max(q[user]) - q[user, action]
        return update(state, x, action, reward), Trace(user, action, reward, regret)

    state = init_state(world.item_factors.shape[0], dim, regularization)
    _, trace = jax.lax.scan(step, state, (users, noise, jax.random.split(key_agent, num_rounds)))
    return trace
