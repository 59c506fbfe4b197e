r"""Dynamic programming on a tabular :class:`~rlbook_lib.mdp.MDP`.

Every method here applies one of two Bellman operators, written with the
arrival discount :math:`\gamma_{s'} = \gamma\,(1 - \mathrm{terminal}[s'])` of
:mod:`rlbook_lib.mdp` (chapter "Markov decision processes and dynamic programming"):

.. math::

    (\mathcal{T}^\pi v)(s) = \sum_a \pi(a \mid s) \Big[ r(s,a) + \sum_{s'} P(s' \mid s,a)\, \gamma_{s'}\, v(s') \Big]

    (\mathcal{T}^* v)(s) = \max_a \Big[ r(s,a) + \sum_{s'} P(s' \mid s,a)\, \gamma_{s'}\, v(s') \Big]

One application (a *sweep*) reads all of ``P`` once: it costs
:math:`O(|S|^2 |A|)` operations. Both operators are :math:`\gamma`-contractions
in the sup-norm, :math:`\| \mathcal{T} v - \mathcal{T} u \|_\infty \le \gamma \| v - u \|_\infty`,
so repeating them converges to :math:`v_\pi` and :math:`v_*` from any start.
Applied a fixed number H of times from 0 they give finite-horizon values
(:func:`finite_horizon_evaluation`, :func:`finite_horizon_value_iteration`).

Each public function checks its concrete (non-traced) inputs, then calls a
jitted core, so all of them also work inside ``jax.jit`` and ``jax.vmap``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from rlbook_lib import mdp as mdp_lib
from rlbook_lib.mdp import MDP

IMPROVEMENT_MARGIN = 1e-6
"""Policy iteration changes the action in a state only if that raises q by more
than this (relative to the size of q), so float32 rounding between equally good
actions cannot make it cycle."""


class Evaluation(NamedTuple):
    """Result of iterative policy evaluation."""

    v: Float[Array, "S"]
    num_sweeps: Int[Array, ""]
    residual: Float[Array, ""]
    """‖v_k − v_{k−1}‖∞ of the last sweep."""


class Solution(NamedTuple):
    """Result of value iteration or policy iteration."""

    v: Float[Array, "S"]
    q: Float[Array, "S A"]
    policy: Float[Array, "S A"]
    num_iterations: Int[Array, ""]


def _check(mdp: MDP, pi=None, v=None) -> None:
    if not isinstance(mdp, MDP):
        raise ValueError(f"mdp must be an MDP (see mdp.make_mdp), got {type(mdp).__name__}")
    if mdp_lib.is_traced(mdp, pi, v):
        return
    if pi is not None:
        mdp_lib.check_policy(mdp, pi)
    if v is not None and np.shape(v) != mdp.initial.shape:
        raise ValueError(f"v must have shape [S] = {mdp.initial.shape}, got {np.shape(v)}")


def _check_stopping(tol, limit, limit_name: str) -> None:
    if not mdp_lib.is_traced(tol) and not float(tol) >= 0.0:
        raise ValueError(f"tol must be a non-negative number, got {tol}")
    if not mdp_lib.is_traced(limit) and int(limit) < 0:
        raise ValueError(f"{limit_name} must be a non-negative integer, got {limit}")


def _q(mdp: MDP, v: Float[Array, "S"]) -> Float[Array, "S A"]:
    # P viewed as an [S*A, S] matrix: one matrix-vector product per sweep.
    S, A = mdp.R.shape
    return mdp.R + (mdp.P.reshape(S * A, S) @ (mdp_lib.continuation(mdp) * v)).reshape(S, A)


def q_from_v(mdp: MDP, v: Float[Array, "S"]) -> Float[Array, "S A"]:
    """q(s, a) = r(s, a) + Σ_s' P(s' | s, a) γ_s' v(s'), with γ_s' = γ (1 − terminal[s'])."""
    _check(mdp, v=v)
    return _q_jit(mdp, v)


_q_jit = jax.jit(_q)


@jax.jit
def _expectation_backup(mdp, pi, v):
    return jnp.sum(pi * _q(mdp, v), axis=-1)


@jax.jit
def _optimality_backup(mdp, v):
    return jnp.max(_q(mdp, v), axis=-1)


def bellman_expectation_backup(mdp: MDP, pi: Float[Array, "S A"], v: Float[Array, "S"]) -> Float[Array, "S"]:
    """(𝒯^π v)(s) = Σ_a π(a | s) q(s, a), with q = :func:`q_from_v` (mdp, v)."""
    _check(mdp, pi, v)
    return _expectation_backup(mdp, pi, v)


def bellman_optimality_backup(mdp: MDP, v: Float[Array, "S"]) -> Float[Array, "S"]:
    """(𝒯^* v)(s) = max_a q(s, a), with q = :func:`q_from_v` (mdp, v)."""
    _check(mdp, v=v)
    return _optimality_backup(mdp, v)


def greedy_policy(q: Float[Array, "S A"]) -> Float[Array, "S A"]:
    """One-hot π(s) = argmax_a q(s, a); ties go to the lowest action index."""
    return jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[-1], dtype=jnp.float32)


def _check_terminates(mdp: MDP, pi, name: str) -> None:
    mdp_lib.check_terminates(mdp, pi, f"the Bellman equation of {name} is singular")


@jax.jit
def _solve(mdp, pi):
    S = mdp.R.shape[0]
    A = jnp.eye(S) - mdp_lib.discounted_policy_transitions(mdp, pi)
    return jnp.linalg.solve(A, mdp_lib.policy_rewards(mdp, pi))


def policy_evaluation_exact(mdp: MDP, pi: Float[Array, "S A"]) -> Float[Array, "S"]:
    """Solve the Bellman expectation equation as a linear system.

    (I − γ P_π diag(1 − terminal)) v_π = r_π, by LU factorisation: O(|S|³).
    Raises ``ValueError`` if γ = 1 and π never terminates from some state,
    where the matrix is singular. For γ < 1 the matrix is invertible, but with
    γ very close to 1 float32 accuracy degrades like 1 / (1 − γ).
    """
    _check(mdp, pi)
    if not mdp_lib.is_traced(mdp, pi):
        _check_terminates(mdp, pi, "this policy")
    return _solve(mdp, pi)


@jax.jit
def _iterate_expectation(mdp, pi, tol, max_sweeps):
    def cond(carry):
        _, sweeps, residual = carry
        return (residual >= tol) & (sweeps < max_sweeps)

    def body(carry):
        v, sweeps, _ = carry
        new = jnp.sum(pi * _q(mdp, v), axis=-1)
        return new, sweeps + 1, jnp.max(jnp.abs(new - v))

    init = (jnp.zeros_like(mdp.initial), jnp.asarray(0), jnp.asarray(jnp.inf, jnp.float32))
    return Evaluation(*jax.lax.while_loop(cond, body, init))


def policy_evaluation(mdp: MDP, pi: Float[Array, "S A"], *, tol: float = 1e-6,
                      max_sweeps: int = 10_000) -> Evaluation:
    """Iterative policy evaluation: v_{k+1} = 𝒯^π v_k from v_0 = 0.

    Stops after the first sweep with ‖v_{k+1} − v_k‖∞ < ``tol`` (then
    ‖v_{k+1} − v_π‖∞ ≤ γ tol / (1 − γ)) or after ``max_sweeps`` sweeps. Each
    sweep costs O(|S|²|A|). float32 values of size m carry rounding of about
    1e-7 · m, so ask for ``tol`` above that. With γ = 1 and a policy that can
    wander forever the sweeps need not converge; they stop at ``max_sweeps``.
    """
    _check(mdp, pi)
    _check_stopping(tol, max_sweeps, "max_sweeps")
    return _iterate_expectation(mdp, pi, tol, max_sweeps)


def _check_horizon(horizon, name: str = "horizon") -> None:
    if not mdp_lib.is_traced(horizon) and int(horizon) < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {horizon}")


def finite_horizon_evaluation(mdp: MDP, pi: Float[Array, "S A"], horizon: int) -> Float[Array, "S"]:
    """v_H = (𝒯^π)^H 0: expected (discounted) reward of the first H steps.

    With γ = 1 and reward 1 for reaching a goal, v_H(s) is the probability of
    reaching the goal within H steps, as in an environment truncated at H.
    """
    _check(mdp, pi)
    _check_horizon(horizon)
    return _finite_horizon(mdp, pi, horizon)


@jax.jit
def _finite_horizon(mdp, pi, horizon):
    body = lambda _, v: jnp.sum(pi * _q(mdp, v), axis=-1)  # noqa: E731
    return jax.lax.fori_loop(0, horizon, body, jnp.zeros_like(mdp.initial))


def finite_horizon_evaluation_trace(mdp: MDP, pi: Float[Array, "S A"], horizon: int
                                    ) -> Float[Array, "H+1 S"]:
    """The values v_0 = 0, v_1, ..., v_H of the first 0, 1, ..., H steps under π, stacked.

    Row k is :func:`finite_horizon_evaluation` (mdp, pi, k). With γ = 1 and
    reward 1 on reaching a goal, row k is Pr(goal within k steps), so the
    differences of consecutive rows are the distribution of the arrival time.
    ``horizon`` must be a Python int (it sets the output shape).
    """
    _check(mdp, pi)
    _check_horizon(horizon)
    return _evaluation_trace(mdp, jnp.asarray(pi, jnp.float32), int(horizon))


@partial(jax.jit, static_argnums=2)
def _evaluation_trace(mdp, pi, horizon):
    backup = lambda v: jnp.sum(pi * _q(mdp, v), axis=-1)  # noqa: E731
    return _stack_iterates(backup, jnp.zeros_like(mdp.initial), horizon)


def _stack_iterates(backup, v0, num_iterations):
    """[v0, backup(v0), backup(backup(v0)), ...], num_iterations + 1 rows (inside jit)."""
    def step(v, _):
        new = backup(v)
        return new, new

    _, vs = jax.lax.scan(step, v0, length=num_iterations)
    return jnp.concatenate([v0[None], vs])


class FiniteHorizonSolution(NamedTuple):
    """Result of :func:`finite_horizon_value_iteration` for horizon H."""

    v: Float[Array, "H+1 S"]
    """v[k](s): the largest expected (discounted) reward of k steps from s; v[0] = 0."""
    policy: Float[Array, "H S A"]
    """policy[t]: the decision rule at time t = 0, ..., H − 1, when H − t steps remain."""


def finite_horizon_value_iteration(mdp: MDP, horizon: int) -> FiniteHorizonSolution:
    """Backward induction: the best policy for an episode cut off after H steps.

    v_0 = 0 and v_k = 𝒯^* v_{k−1}, so v_k(s) is the largest expected
    (discounted) reward of k steps from s. At time t, with k = H − t steps
    left, the best action is greedy for q_k(s, a) = r(s, a) + Σ_s' P(s' | s, a)
    γ_s' v_{k−1}(s') (ties to the lowest action). The resulting policy is in
    general non-stationary: it depends on the time left. v[H] is at least the
    H-step value of every policy, stationary or not; for γ < 1, v[H] → v_* as
    H → ∞. ``horizon`` must be a Python int (it sets the output shapes).
    """
    _check(mdp)
    _check_horizon(horizon)
    return _backward_induction(mdp, int(horizon))


@partial(jax.jit, static_argnums=1)
def _backward_induction(mdp, horizon):
    def step(v, _):
        q = _q(mdp, v)  # q with one more step left than v
        new = jnp.max(q, axis=-1)
        return new, (new, greedy_policy(q))

    v0 = jnp.zeros_like(mdp.initial)
    _, (vs, rules) = jax.lax.scan(step, v0, length=horizon)
    # rules[k] acts with k + 1 steps left; time t has H − t steps left.
    return FiniteHorizonSolution(jnp.concatenate([v0[None], vs]), rules[::-1])


@jax.jit
def _value_iteration(mdp, tol, max_iterations):
    def cond(carry):
        _, iterations, change = carry
        return (change >= tol) & (iterations < max_iterations)

    def body(carry):
        v, iterations, _ = carry
        new = jnp.max(_q(mdp, v), axis=-1)
        return new, iterations + 1, jnp.max(jnp.abs(new - v))

    init = (jnp.zeros_like(mdp.initial), jnp.asarray(0), jnp.asarray(jnp.inf, jnp.float32))
    v, iterations, _ = jax.lax.while_loop(cond, body, init)
    q = _q(mdp, v)
    return Solution(v, q, greedy_policy(q), iterations)


def value_iteration(mdp: MDP, *, tol: float = 1e-6, max_iterations: int = 10_000) -> Solution:
    """Value iteration: v_{k+1} = 𝒯^* v_k from v_0 = 0, then act greedily.

    (𝒯^* v)(s) = max_a [r(s, a) + Σ_s' P(s' | s, a) γ_s' v(s')].
    𝒯^* is a γ-contraction, ‖𝒯^* v − 𝒯^* u‖∞ ≤ γ ‖v − u‖∞, so v_k → v_* with
    ‖v_k − v_*‖∞ ≤ γ^k ‖v_0 − v_*‖∞. Stops after the first sweep with
    ‖v_{k+1} − v_k‖∞ < ``tol`` (then ‖v_{k+1} − v_*‖∞ ≤ γ tol / (1 − γ)) or after
    ``max_iterations`` sweeps of O(|S|²|A|) each. Returns the last v, its q,
    the greedy policy (ties to the lowest action) and the number of sweeps.
    float32 values of size m carry rounding of about 1e-7 · m: a ``tol`` below
    that may never be met (γ = 0.999 gives m ≈ 1000), and the loop then runs
    all ``max_iterations`` sweeps.
    """
    _check(mdp)
    _check_stopping(tol, max_iterations, "max_iterations")
    return _value_iteration(mdp, tol, max_iterations)


def value_iteration_trace(mdp: MDP, num_iterations: int, v0: Float[Array, "S"] | None = None
                          ) -> Float[Array, "K+1 S"]:
    """The iterates v_0, 𝒯^* v_0, ..., (𝒯^*)^K v_0 of value iteration, stacked.

    Row k is v_k; by the contraction property ‖v_k − v_*‖∞ ≤ γ^k ‖v_0 − v_*‖∞.
    ``v0`` defaults to zeros.
    """
    v0 = jnp.zeros_like(mdp.initial) if v0 is None else v0
    _check(mdp, v=v0)
    _check_horizon(num_iterations, "num_iterations")
    return _trace(mdp, jnp.asarray(v0, jnp.float32), int(num_iterations))


@partial(jax.jit, static_argnums=2)
def _trace(mdp, v0, num_iterations):
    return _stack_iterates(lambda v: jnp.max(_q(mdp, v), axis=-1), v0, num_iterations)


@jax.jit
def _policy_iteration(mdp, pi0, max_iterations):
    def improve(pi, v):
        # Keep π(.|s) unless the greedy action beats its value by a clear margin.
        q = _q(mdp, v)
        margin = IMPROVEMENT_MARGIN * (1.0 + jnp.max(jnp.abs(q)))
        better = jnp.max(q, axis=-1) > jnp.sum(pi * q, axis=-1) + margin
        return jnp.where(better[:, None], greedy_policy(q), pi), jnp.any(better)

    def cond(carry):
        _, _, iterations, changed = carry
        return changed & (iterations < max_iterations)

    def body(carry):
        pi, _, iterations, _ = carry
        v = _solve(mdp, pi)
        new_pi, changed = improve(pi, v)
        return new_pi, v, iterations + 1, changed

    init = (pi0, jnp.zeros_like(mdp.initial), jnp.asarray(0), jnp.asarray(True))
    pi, v, iterations, _ = jax.lax.while_loop(cond, body, init)
    return Solution(v, _q(mdp, v), pi, iterations)


def policy_iteration(mdp: MDP, *, initial_policy: Float[Array, "S A"] | None = None,
                     max_iterations: int = 1000) -> Solution:
    """Policy iteration: evaluate π exactly, improve greedily, until stable.

    Each iteration solves (I − γ P_π diag(1 − terminal)) v_π = r_π (O(|S|³)) and
    sets π'(s) = argmax_a q_π(s, a) (ties to the lowest action). A state keeps
    its action unless the greedy one is better by more than a float32 rounding
    margin (see ``IMPROVEMENT_MARGIN``), which guarantees termination. Starts
    from ``initial_policy`` (default uniform; with γ = 1 it must end every
    episode). ``num_iterations`` counts improvement steps, including the last
    one, which finds the policy stable. ``policy`` is the stable policy.
    """
    _check(mdp)
    pi0 = mdp_lib.uniform_policy(mdp) if initial_policy is None else initial_policy
    _check(mdp, pi0)
    if not mdp_lib.is_traced(mdp, pi0):
        _check_terminates(mdp, pi0, "the initial policy")
    return _policy_iteration(mdp, jnp.asarray(pi0, jnp.float32), max_iterations)
