r"""Finite Markov decision processes in tabular form.

A finite MDP is stored as arrays, so that every dynamic-programming method in
:mod:`rlbook_lib.dp` is a few lines of linear algebra.

=============  =============  ==================================================
symbol         shape          meaning
=============  =============  ==================================================
``P``          ``[S, A, S]``  :math:`P(s' \mid s, a) = \sum_r p(s', r \mid s, a) = \Pr(S_{t+1}=s' \mid S_t=s, A_t=a)`
``R``          ``[S, A]``     :math:`r(s, a) = \sum_{s', r} r\, p(s', r \mid s, a) = \mathbb{E}[R_{t+1} \mid S_t=s, A_t=a]`
``gamma``      ``[]``         discount :math:`\gamma \in [0, 1]`
``initial``    ``[S]``        :math:`p_0(s) = \Pr(S_0 = s)`
``terminal``   ``[S]``        entering a terminal state ends the episode
``pi``         ``[S, A]``     policy :math:`\pi(a \mid s)`
=============  =============  ==================================================

**Discount, not done.** The episode's end is written as a discount: arriving in
:math:`s'` continues with the arrival discount :math:`\gamma_{s'} = \gamma\,(1 - \mathrm{terminal}[s'])`, so
the value of a terminal state never flows back. The Bellman expectation
equation reads

.. math::

    v_\pi(s) = \sum_a \pi(a \mid s) \Big[ r(s, a)
        + \sum_{s'} P(s' \mid s, a)\, \gamma_{s'}\, v_\pi(s') \Big],
    \qquad \gamma_{s'} = \gamma\,(1 - \mathrm{terminal}[s']).

The reward for the step *into* a terminal state is part of :math:`r(s, a)`.
With this convention :math:`\gamma = 1` is legal for episodic tasks in which the
policy ends the episode with probability 1 (then :math:`v_\pi(s)` in FrozenLake
is the probability of reaching the goal); for a policy that can wander forever
the equations are singular.

All arrays are float32 (``terminal`` is bool). Functions work on one MDP; vmap
them at the call site to handle a batch.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

ROW_TOLERANCE = 1e-5
"""How far a row of probabilities may be from summing to 1 (float32 rounding)."""


class MDP(NamedTuple):
    """A finite MDP; build one with :func:`make_mdp`, which checks it."""

    P: Float[Array, "S A S"]
    """``P[s, a, s']`` = Pr(S_{t+1}=s' | S_t=s, A_t=a)."""
    R: Float[Array, "S A"]
    """Expected reward r(s, a) = E[R_{t+1} | S_t=s, A_t=a]."""
    gamma: Float[Array, ""]
    """Discount γ in [0, 1]."""
    initial: Float[Array, "S"]
    """p_0(s) = Pr(S_0 = s), the distribution of the first state."""
    terminal: Bool[Array, "S"]
    """``terminal[s']``: entering s' ends the episode (continuation γ·0)."""


def is_traced(*trees) -> bool:
    """True if any leaf is a JAX tracer, i.e. we are inside jit or vmap."""
    leaves = jax.tree_util.tree_leaves(trees)
    return any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _check_distribution_rows(name: str, x: np.ndarray, index_names: str) -> None:
    """Raise unless every row (last axis) of ``x`` is a probability distribution."""
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    if np.any(x < 0):
        where = tuple(int(i) for i in np.argwhere(x < 0)[0])
        raise ValueError(f"{name} has a negative probability {x[where]:g} at {where}")
    sums = x.sum(axis=-1)
    bad = np.abs(sums - 1.0) > ROW_TOLERANCE
    if np.any(bad) and x.ndim == 1:
        raise ValueError(f"{name} must sum to 1, but sums to {float(sums):.6g}")
    if np.any(bad):
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must sum to 1 over its last axis, but the row at "
            f"({index_names}) = {where} sums to {sums[where]:.6g}"
        )


def _check_mdp(P, R, gamma, initial, terminal) -> None:
    P, R, initial = np.asarray(P, np.float64), np.asarray(R, np.float64), np.asarray(initial, np.float64)
    if P.ndim != 3:
        raise ValueError(f"P must have shape [S, A, S], got {P.ndim}-D shape {P.shape}")
    S, A, S2 = P.shape
    if S != S2:
        raise ValueError(f"P must have shape [S, A, S] with the same S twice, got {P.shape}")
    if R.shape != (S, A):
        raise ValueError(f"R must have shape [S, A] = {(S, A)} to match P {P.shape}, got {R.shape}")
    if not np.all(np.isfinite(R)):
        raise ValueError("R contains NaN or infinite entries")
    if np.ndim(gamma) != 0:
        raise ValueError(f"gamma must be a scalar, got shape {np.shape(gamma)}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {float(gamma)}")
    if initial.shape != (S,):
        raise ValueError(f"initial must have shape [S] = {(S,)}, got {initial.shape}")
    if np.shape(terminal) != (S,):
        raise ValueError(f"terminal must have shape [S] = {(S,)}, got {np.shape(terminal)}")
    _check_distribution_rows("P", P, "s, a")
    _check_distribution_rows("initial", initial, "")


def make_mdp(P, R, gamma, initial=None, terminal=None) -> MDP:
    """Check the arrays of an MDP and convert them to float32 JAX arrays.

    ``initial`` defaults to the uniform distribution over states and
    ``terminal`` to all False. Raises ``ValueError`` if a shape does not match,
    a row of ``P`` is not a probability distribution (naming the offending
    ``(s, a)`` and its sum), ``gamma`` is not a scalar in [0, 1], or ``initial``
    is not a distribution. Checks are skipped for traced arguments (inside jit
    or vmap), where they cannot be evaluated.
    """
    S = np.shape(P)[0] if np.ndim(P) >= 1 else 0
    if initial is None:
        initial = jnp.full((S,), 1.0 / max(S, 1), jnp.float32)
    if terminal is None:
        terminal = jnp.zeros((S,), bool)
    if not is_traced(P, R, gamma, initial, terminal):
        _check_mdp(P, R, gamma, initial, terminal)
    return MDP(
        P=jnp.asarray(P, jnp.float32),
        R=jnp.asarray(R, jnp.float32),
        gamma=jnp.asarray(gamma, jnp.float32),
        initial=jnp.asarray(initial, jnp.float32),
        terminal=jnp.asarray(terminal).astype(bool),
    )


def check_policy(mdp: MDP, pi) -> None:
    """Raise ``ValueError`` unless ``pi`` is an [S, A] matrix of distributions."""
    S, A = mdp.R.shape
    if np.shape(pi) != (S, A):
        raise ValueError(f"policy pi must have shape [S, A] = {(S, A)}, got {np.shape(pi)}")
    _check_distribution_rows("policy pi", np.asarray(pi, np.float64), "s")


def uniform_policy(mdp: MDP) -> Float[Array, "S A"]:
    """π(a | s) = 1/|A| for every state."""
    S, A = mdp.R.shape
    return jnp.full((S, A), 1.0 / A, jnp.float32)


def deterministic_policy(actions: Int[Array, "S"], num_actions: int) -> Float[Array, "S A"]:
    """One-hot policy matrix: π(a | s) = 1 if a = actions[s] else 0."""
    return jax.nn.one_hot(actions, num_actions, dtype=jnp.float32)


def policy_transitions(mdp: MDP, pi: Float[Array, "S A"]) -> Float[Array, "S S"]:
    """P_π(s, s') = Σ_a π(a | s) P(s' | s, a), without terminal masking."""
    return jnp.einsum("sa,sat->st", pi, mdp.P)


def policy_rewards(mdp: MDP, pi: Float[Array, "S A"]) -> Float[Array, "S"]:
    """r_π(s) = Σ_a π(a | s) r(s, a)."""
    return jnp.sum(pi * mdp.R, axis=-1)


def continuation(mdp: MDP) -> Float[Array, "S"]:
    """The arrival discount γ_s' = γ (1 − terminal[s']): weight of the next state's value."""
    return mdp.gamma * (1.0 - mdp.terminal.astype(jnp.float32))


def discounted_policy_transitions(mdp: MDP, pi: Float[Array, "S A"]) -> Float[Array, "S S"]:
    """M = P_π diag(γ (1 − terminal)): one step of π, weighted by the arrival discount.

    v_π solves (I − M) v = r_π, and the discounted visitation d^π solves
    (I − M)ᵀ d = p_0.
    """
    return policy_transitions(mdp, pi) * continuation(mdp)[None, :]


def check_terminates(mdp: MDP, pi, consequence: str) -> None:
    """With γ = 1, raise ValueError (ending in ``consequence``) unless π ends every episode.

    For γ < 1, I − M is invertible for every policy and nothing is checked.
    Concrete arrays only.
    """
    if float(mdp.gamma) < 1.0:
        return
    stuck = nonterminating_states(mdp, pi)
    if stuck.size:
        raise ValueError(
            f"with gamma = 1 {consequence}: from states "
            f"{stuck[:10].tolist()}{' ...' if stuck.size > 10 else ''} the policy never "
            "reaches a terminal state, so their return is an infinite sum. Use gamma < 1 "
            "or a policy that ends every episode."
        )


def nonterminating_states(mdp: MDP, pi) -> np.ndarray:
    """Indices of the states from which π never reaches a terminal state.

    Found on the graph of P_π (an edge s → s' wherever P_π(s, s') > 0), walked
    backwards from the states that can enter a terminal state in one step. With
    γ = 1, these are the states whose return is an endless sum. Concrete
    arrays only (NumPy).
    """
    P_pi = np.einsum("sa,sat->st", np.asarray(pi, np.float64), np.asarray(mdp.P, np.float64))
    terminal = np.asarray(mdp.terminal)
    reached = (P_pi[:, terminal] > 0).any(axis=1)  # can end the episode in one step
    frontier = reached.copy()
    while frontier.any():
        frontier = (P_pi[:, frontier] > 0).any(axis=1) & ~reached
        reached |= frontier
    return np.flatnonzero(~reached)


def from_toy_text(env, gamma) -> MDP:
    """Read the model of a gymnasium toy-text environment as an :class:`MDP`.

    Works for FrozenLake, CliffWalking and Taxi, whose ``env.unwrapped.P[s][a]``
    lists ``(prob, next_state, reward, terminated)``. Outcomes that share a next
    state (slippery FrozenLake lists a bump into the edge twice) are added up.
    ``R[s, a]`` is the expected reward Σ prob · reward, ``terminal[s']`` is True
    if some transition into s' is flagged ``terminated`` (gymnasium flags it on
    every transition into s' from any state reachable from the start), and
    ``initial`` is ``env.unwrapped.initial_state_distrib``.
    """
    if not hasattr(env.unwrapped, "P"):
        raise ValueError(f"{env.unwrapped} has no tabular model env.unwrapped.P to read")
    model = env.unwrapped.P
    S, A = len(model), len(model[0])
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    terminal = np.zeros(S, bool)
    for s in range(S):
        for a in range(A):
            for prob, next_state, reward, terminated in model[s][a]:
                P[s, a, next_state] += prob
                R[s, a] += prob * reward
                terminal[next_state] |= bool(terminated)
    initial = np.asarray(env.unwrapped.initial_state_distrib, np.float64)
    return make_mdp(P, R, gamma, initial, terminal)


def random_mdp(key: jax.Array, num_states: int, num_actions: int, gamma) -> MDP:
    """A random MDP for tests and benchmarks.

    Each row ``P[s, a, :]`` is Dirichlet(1, ..., 1), uniform on the simplex
    (drawn as independent exponentials divided by their sum); rewards are
    standard normal, no state is terminal and the initial distribution is
    uniform. Pure in ``key``, so it can be vmapped over keys.
    """
    P, R = _random_arrays(key, num_states, num_actions)
    return make_mdp(P, R, gamma)


@partial(jax.jit, static_argnums=(1, 2))
def _random_arrays(key, num_states, num_actions):
    key_p, key_r = jax.random.split(key)
    weights = jax.random.exponential(key_p, (num_states, num_actions, num_states))
    P = weights / jnp.sum(weights, axis=-1, keepdims=True)
    return P, jax.random.normal(key_r, (num_states, num_actions))
