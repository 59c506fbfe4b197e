r"""Importance sampling: estimating under a target policy π from episodes of a behaviour policy μ.

For any f and any q that is positive wherever p f is not zero,

.. math:: \mathbb{E}_{x \sim p}[f(x)] = \mathbb{E}_{x \sim q}\Big[\frac{p(x)}{q(x)} f(x)\Big].

For an episode :math:`A_0, S_1, \dots, S_T` from :math:`S_0` the transition
probabilities cancel from p/q and leave the **importance-sampling ratio**
(S&B §5.5)

.. math:: \rho_{t:T-1} = \prod_{k=t}^{T-1} \frac{\pi(A_k \mid S_k)}{\mu(A_k \mid S_k)},

which needs the **support condition** μ(a | s) > 0 wherever π(a | s) > 0
(``ValueError`` otherwise, :func:`rlbook_lib.checks.check_support`).

======================  ========================  ======  ===============================================
symbol                  code                      shape   meaning
======================  ========================  ======  ===============================================
:math:`\rho_t`          ``ratios[t]``             [T]     π(A_t | S_t) / μ(A_t | S_t), one step
:math:`\rho_i`          ``ratios[i]``             [N]     :math:`\rho_{0:T_i-1}` of episode i (estimators)
:math:`G_i`             ``returns[i]``            [N]     return of episode i from the state estimated
======================  ========================  ======  ===============================================

With n episodes from the same state (S&B's eqs. 5.5 and 5.6):

.. math::

    V^{\text{ordinary}}_n = \frac{1}{n} \sum_{i=1}^{n} \rho_i G_i, \qquad
    V^{\text{weighted}}_n = \frac{\sum_{i=1}^{n} \rho_i G_i}{\sum_{i=1}^{n} \rho_i}
    \quad (0 \text{ while } \textstyle\sum_i \rho_i = 0).

Ordinary IS is unbiased, but its variance is that of ρG, which can be
infinite (S&B's Example 5.5, :mod:`rlbook_lib.envs.one_state`). Weighted IS is
a convex combination of the observed returns (weights ρ_i / Σ ρ_j), so it never
leaves their range. It is biased (with one episode it is that episode's G, whose
expectation is v_μ(s), not v_π(s)) but consistent, the bias vanishing as n
grows, and its variance is finite when the returns are bounded.

Estimators take a batch of N episodes' (return, ratio) from one run; vmap over
runs. :func:`running_estimates` gives the estimates after every episode with
two cumulative sums, so a learning curve of 10^4 episodes × 100 runs is one
``jax.vmap``. :func:`off_policy_episodes` plays episodes under μ, one after
another, and returns each one's (G, ρ).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import checks, mdp as mdp_lib

if TYPE_CHECKING:  # only an annotation; importing envs here would be circular (envs.one_state imports this module)
    from rlbook_lib.envs.base import Environment


def step_ratios(target_probs: Float[Array, "T"], behaviour_probs: Float[Array, "T"]) -> Float[Array, "T"]:
    r"""Per-step ratios :math:`\rho_t = \pi(A_t \mid S_t) / \mu(A_t \mid S_t)`.

    ``target_probs[t]`` = π(A_t | S_t) and ``behaviour_probs[t]`` = μ(A_t | S_t)
    for the actions taken. Concrete arguments are checked for the support
    condition (a μ of 0 where π is positive is a ``ValueError`` naming
    ``behaviour_probs``); where both are 0 the ratio is 0.
    """
    checks.check_sequences(target_probs=target_probs, behaviour_probs=behaviour_probs)
    checks.check_support(target_probs, behaviour_probs, name="behaviour_probs")
    pi, mu = jnp.asarray(target_probs, jnp.float32), jnp.asarray(behaviour_probs, jnp.float32)
    return jnp.where(pi > 0, pi / jnp.where(mu > 0, mu, 1.0), 0.0)


def ratio_to_end(ratios: Float[Array, "T"]) -> Float[Array, "T"]:
    r""":math:`\rho_{t:T-1} = \prod_{k=t}^{T-1} \rho_k` for every t (a reverse cumulative product).

    Entry 0 is the whole episode's ratio; a padded step with ratio 1 changes nothing.
    """
    checks.check_sequences(ratios=ratios)
    return jnp.flip(jnp.cumprod(jnp.flip(jnp.asarray(ratios, jnp.float32))))


def _check_batch(returns, ratios) -> None:
    checks.check_sequences(returns=returns, ratios=ratios)
    if not mdp_lib.is_traced(ratios) and bool(jnp.any(jnp.asarray(ratios) < 0)):
        raise ValueError("ratios must be non-negative (they are ratios of probabilities)")


def ordinary_estimate(returns: Float[Array, "N"], ratios: Float[Array, "N"]) -> Float[Array, ""]:
    r"""Ordinary IS, :math:`\frac{1}{n} \sum_i \rho_i G_i` (S&B eq. 5.5); unbiased."""
    _check_batch(returns, ratios)
    return jnp.mean(jnp.asarray(ratios, jnp.float32) * jnp.asarray(returns, jnp.float32))


def weighted_estimate(returns: Float[Array, "N"], ratios: Float[Array, "N"]) -> Float[Array, ""]:
    r"""Weighted IS, :math:`\sum_i \rho_i G_i / \sum_i \rho_i` (S&B eq. 5.6); 0 if every ρ_i is 0."""
    _check_batch(returns, ratios)
    rho, g = jnp.asarray(ratios, jnp.float32), jnp.asarray(returns, jnp.float32)
    total = jnp.sum(rho)
    return jnp.where(total > 0, jnp.sum(rho * g) / jnp.where(total > 0, total, 1.0), 0.0)


class RunningEstimates(NamedTuple):
    ordinary: Float[Array, "N"]
    """V^ordinary_n after episodes 1..n, for n = 1..N."""
    weighted: Float[Array, "N"]
    """V^weighted_n after episodes 1..n (0 while every ρ so far is 0)."""


def running_estimates(returns: Float[Array, "N"], ratios: Float[Array, "N"]) -> RunningEstimates:
    r"""Both estimates after each of N episodes, with two cumulative sums (O(N) work).

    Entry n − 1 equals :func:`ordinary_estimate` and :func:`weighted_estimate`
    of the first n episodes. vmap over runs for learning curves, e.g. S&B's
    Fig. 5.3: ``jax.vmap(running_estimates)(G, rho)`` with G, ρ of shape [100, 10000].
    """
    _check_batch(returns, ratios)
    rho, g = jnp.asarray(ratios, jnp.float32), jnp.asarray(returns, jnp.float32)
    numerator, denominator = jnp.cumsum(rho * g), jnp.cumsum(rho)
    n = jnp.arange(1, g.shape[0] + 1, dtype=jnp.float32)
    weighted = jnp.where(denominator > 0, numerator / jnp.where(denominator > 0, denominator, 1.0), 0.0)
    return RunningEstimates(numerator / n, weighted)


def per_decision_returns(rewards: Float[Array, "T"], discounts: Float[Array, "T"], ratios: Float[Array, "T"],
                         bootstrap_value: Float[Array, ""] = 0.0) -> Float[Array, "T"]:
    r"""Per-decision importance-sampled returns :math:`\tilde G_t` (S&B §5.9), backwards.

    Each reward is weighted only by the ratios of the actions before it:

    .. math::

        \tilde G_t = \rho_t r_{t+1} + \gamma_{t+1} \rho_t \rho_{t+1} r_{t+2} + \dots
                   = \rho_t \big( r_{t+1} + \gamma_{t+1} \tilde G_{t+1} \big), \qquad
        \tilde G_T = \text{bootstrap\_value},

    with the conventions of :mod:`rlbook_lib.returns` for ``discounts`` and the
    bootstrap. :math:`\mathbb{E}_\mu[\tilde G_t \mid S_t] = \mathbb{E}_\mu[\rho_{t:T-1} G_t \mid S_t]`
    = :math:`v_\pi(S_t)`, with a smaller variance than :math:`\rho_{t:T-1} G_t`. With every
    ratio 1 it is :func:`rlbook_lib.returns.discounted_returns`.
    """
    checks.check_sequences(rewards=rewards, discounts=discounts, ratios=ratios)
    checks.check_discounts(discounts)

    def backward(g_next, step):
        reward, discount, rho = step
        g = rho * (reward + discount * g_next)
        return g, g

    xs = tuple(jnp.asarray(x, jnp.float32) for x in (rewards, discounts, ratios))
    _, g = jax.lax.scan(backward, jnp.asarray(bootstrap_value, jnp.float32), xs, reverse=True)
    return g


class OffPolicyEpisodes(NamedTuple):
    """What :func:`off_policy_episodes` returns, one entry per episode."""

    returns: Float[Array, "N"]
    """G_0 = Σ_t γ^t r_{t+1} of each episode."""
    ratios: Float[Array, "N"]
    """ρ_{0:T−1}, the product of π(A_t | S_t) / μ(A_t | S_t) over the episode's steps."""
    lengths: Int[Array, "N"]
    """Steps taken in each episode."""


class _Loop(NamedTuple):
    state: Any  # S_t of the current episode
    g: Float[Array, ""]  # its return so far, Σ_{k<t} γ^k r_{k+1}
    rho: Float[Array, ""]  # its ratio so far, ρ_{0:t−1}
    weight: Float[Array, ""]  # γ^t
    t: Int[Array, ""]  # its steps so far
    key: PRNGKeyArray
    out: OffPolicyEpisodes  # the finished episodes, [N] each
    episodes: Int[Array, ""]  # episodes finished so far


def off_policy_episodes(env: Environment, params: Any, target: Callable, behaviour: Callable,
                        key: PRNGKeyArray, num_episodes: int, max_steps: int, gamma: float = 1.0,
                        initial: Callable | None = None) -> OffPolicyEpisodes:
    r"""Play ``num_episodes`` episodes one after another under μ; return each one's (G, ρ).

    ``target(obs)`` and ``behaviour(obs)`` give π's and μ's action
    probabilities [A] in an observation; actions are drawn from μ and ρ
    multiplies π(A_t | S_t) / μ(A_t | S_t) (the support condition is a
    precondition: check the tables with :func:`rlbook_lib.checks.check_support`).
    Every episode starts from ``initial(key)`` (default ``env.initial(key, params)``;
    S&B's Example 5.4: ``lambda k: env.initial_from(k, params, (13, 2, 1))``) and
    ends when it terminates or after ``max_steps`` steps.

    All episodes of one call run in a single ``lax.while_loop`` (episodes of
    different lengths cost no padding), so vmap this over keys for runs, e.g.
    100 runs × 10^4 episodes as 100 calls of 10^4, or, faster, 10^4 calls of
    100 reshaped to [100, 10^4]: a vmapped loop runs as long as its longest lane.
    """
    checks.check_environment(env)
    checks.check_positive_int("num_episodes", num_episodes)
    checks.check_positive_int("max_steps", max_steps)
    checks.check_hyperparameters(gamma=gamma)
    start = (lambda k: env.initial(k, params)) if initial is None else initial

    def one_step(loop: _Loop) -> _Loop:
        key, key_action, key_env, key_start = jax.random.split(loop.key, 4)
        obs = env.observation(loop.state, params)
        mu = behaviour(obs)
        action = jnp.sum(jax.random.uniform(key_action) >= jnp.cumsum(mu)[:-1])  # A_t ~ μ(· | obs)
        step = env.step(key_env, loop.state, action, params)
        g, t = loop.g + loop.weight * step.reward, loop.t + 1
        rho = loop.rho * target(obs)[action] / mu[action]
        ended = step.terminated | (t >= max_steps)
        slot = jnp.where(ended, loop.episodes, num_episodes)  # out of range: dropped
        out = jax.tree.map(lambda o, x: o.at[slot].set(x, mode="drop"), loop.out, OffPolicyEpisodes(g, rho, t))
        restart = lambda x, x0: jnp.where(ended, x0, x)  # noqa: E731
        return _Loop(jax.tree.map(restart, step.next_state, start(key_start)), restart(g, 0.0),
                     restart(rho, 1.0), restart(loop.weight * gamma, 1.0), restart(t, 0), key, out,
                     loop.episodes + ended)

    key_start, key_loop = jax.random.split(key)
    out = OffPolicyEpisodes(jnp.zeros(num_episodes, jnp.float32), jnp.zeros(num_episodes, jnp.float32),
                            jnp.zeros(num_episodes, jnp.int32))
    init = _Loop(start(key_start), jnp.float32(0.0), jnp.float32(1.0), jnp.float32(1.0), jnp.int32(0), key_loop,
                 out, jnp.int32(0))
    return jax.lax.while_loop(lambda loop: loop.episodes < num_episodes, one_step, init).out
