r"""The k-armed bandit, the 10-armed testbed and three ways to explore.

Sutton & Barto (2018), chapter 2; chapter 1 of this book. Time steps are
t = 0, 1, 2, ...: at step t the agent picks A_t and receives R_{t+1}, as in the rest
of the book (S&B's chapter 2 counts from 1 and writes R_t). Arms are numbered
a = 0, ..., k-1 and have unknown values q*(a) = E[R_{t+1} | A_t = a]. The testbed
draws q*(a) ~ N(mu, 1) once per run (mu = 0 in S&B) and pays R_{t+1} ~ N(q*(A_t), 1).

========  =====================  ==================================================
symbol    ``BanditState`` field  meaning (shape for k arms)
========  =====================  ==================================================
Q_t(a)    ``q``                  estimate of q*(a) before step t, [k]
N_t(a)    ``counts``             times arm a was selected before step t, [k]
H_t(a)    ``preferences``        gradient-bandit preferences, [k]
R̄_t       ``mean_reward``        average of R_1, ..., R_t, the rewards before step t, []
t         ``t``                  steps taken so far, the index of the next action A_t, []
========  =====================  ==================================================

**Incremental estimates** (S&B eqs. 2.3-2.6). Here R_n is the n-th reward of one arm
(not the reward at time n). After it,

.. math:: Q_{n+1} = Q_n + \alpha_n \left[ R_n - Q_n \right].

With alpha_n = 1/n this is the sample average (R_1 + ... + R_n) / n, kept without
storing the rewards. With a constant alpha in (0, 1] it is the exponential
recency-weighted average

.. math:: Q_{n+1} = (1-\alpha)^n Q_1 + \sum_{i=1}^{n} \alpha (1-\alpha)^{n-i} R_i,

which keeps tracking a nonstationary problem and slowly forgets the initial value Q_1.
An optimistic Q_1 (say 5, far above every q*) makes each arm disappoint at first, so
even a greedy agent tries them all.

**epsilon-greedy.** With probability epsilon pick an arm uniformly at random (it may be
the greedy one), otherwise pick argmax_a Q_t(a), breaking ties uniformly at random.

**Upper confidence bound** (eq. 2.10). Explore the arms whose value is most uncertain:

.. math:: A_t = \operatorname{argmax}_a \left[ Q_t(a) + c \sqrt{\ln (t + 1) / N_t(a)} \right],

where an arm with N_t(a) = 0 counts as maximising, so every arm is tried once first.
t + 1 counts the pulls including this one; it is S&B's ln t, who number steps from 1.

**Gradient bandit** (eqs. 2.11-2.12). Act with the soft-max policy
pi_t(a) = exp H_t(a) / sum_b exp H_t(b) and, after reward R_{t+1} for action A_t, update

.. math:: H_{t+1}(a) = H_t(a) + \alpha \left( R_{t+1} - \bar R_t \right)
          \left( \mathbb{1}_{a = A_t} - \pi_t(a) \right) \quad \text{for all } a,

a stochastic-gradient-ascent step on E[R_{t+1}]. The baseline R̄_t is the average of
the rewards R_1, ..., R_t before step t (at the first step, t = 0, it is R̄_0 = R_1). It
leaves the expected update unchanged but cuts its variance; without it (R̄_t = 0)
learning is much slower when all rewards are far from zero (testbed mean 4, S&B
Fig. 2.5).

**Usage.** An agent is an ``(init, select, update)`` triple of pure functions over one
run. ``run`` loops it in ``lax.scan``; the caller vmaps over runs, and, because every
hyperparameter (epsilon, c, alpha, Q_0, the testbed mean) enters only arithmetic, over
a hyperparameter too (S&B Fig. 2.6)::

    from rlbook_lib import bandits
    keys = jax.random.split(jax.random.key(0), 2000)
    trace = jax.jit(jax.vmap(lambda k: bandits.run(bandits.epsilon_greedy(0.1), k)))(keys)
    trace.optimal.mean(axis=0)      # % optimal action at each step, shape [1000]

    def mean_reward(eps):           # one point of the parameter study
        runs = jax.vmap(lambda k: bandits.run(bandits.epsilon_greedy(eps), k))(keys)
        return runs.rewards.mean()
    jax.jit(jax.vmap(mean_reward))(2.0 ** jnp.arange(-7, -1))
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


class BanditState(NamedTuple):
    """What an agent knows after ``t`` steps of one run (see the module table)."""

    q: Float[Array, "k"]  # Q(a), action-value estimates
    counts: Int[Array, "k"]  # N(a), times each arm was selected
    preferences: Float[Array, "k"]  # H(a), used by the gradient bandit only
    mean_reward: Float[Array, ""]  # R̄, average of all rewards so far
    t: Int[Array, ""]  # steps taken so far


class Agent(NamedTuple):
    """A bandit algorithm as three pure functions over one run."""

    init: Callable[[int], BanditState]  # num_arms -> initial state
    select: Callable[[PRNGKeyArray, BanditState], Int[Array, ""]]  # -> A_t
    update: Callable[[BanditState, Int[Array, ""], Float[Array, ""]], BanditState]


class Trace(NamedTuple):
    """What happened at each of the T steps of one run."""

    actions: Int[Array, "T"]  # A_t, t = 0, ..., T-1
    rewards: Float[Array, "T"]  # R_{t+1}, the reward for A_t
    optimal: Bool[Array, "T"]  # whether A_t was an optimal arm, q*(A_t) = max q* (at step t)


# ----------------------------------------------------------------------------- checks


def _check(name: str, value, ok: Callable, expected: str) -> None:
    """Raise ValueError unless ``ok(value)``; skipped for traced values (vmap, jit)."""
    if isinstance(value, jax.core.Tracer):
        return
    if not np.all(ok(np.asarray(value, dtype=np.float64))):
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _check_int(name: str, value, minimum: int) -> None:
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# ------------------------------------------------------------------ shared pieces


def _uniform_pick(u: Float[Array, ""], mask: Bool[Array, "k"]) -> Int[Array, ""]:
    """The index of the (j+1)-th True entry of ``mask``, j = floor(u m) for m True entries.

    With u ~ U[0, 1) this is a uniform draw among the m candidates, made with one
    random number however many arms there are. ``mask`` needs a True entry.
    """
    m = jnp.sum(mask)
    j = jnp.minimum(jnp.floor(u * m), m - 1)
    return jnp.argmax(jnp.cumsum(mask) > j)


def argmax_random_tie(key: PRNGKeyArray, values: Float[Array, "k"]) -> Int[Array, ""]:
    """argmax_a values(a), chosen uniformly at random among all maximisers.

    ``jnp.argmax`` alone returns the first maximiser: a greedy agent starting from
    Q_0(a) = 0 would always pull arm 0 first and, with epsilon = 0, might never leave it.
    """
    return _uniform_pick(jax.random.uniform(key), values == jnp.max(values))


def initial_state(num_arms: int, initial_value: float = 0.0) -> BanditState:
    """State before the first step, t = 0: Q_0(a) = ``initial_value``, N = H = R̄ = 0."""
    _check_int("num_arms", num_arms, 2)
    return BanditState(
        q=jnp.full((num_arms,), initial_value, dtype=jnp.float32),
        counts=jnp.zeros((num_arms,), dtype=jnp.int32),
        preferences=jnp.zeros((num_arms,), dtype=jnp.float32),
        mean_reward=jnp.zeros((), dtype=jnp.float32),
        t=jnp.zeros((), dtype=jnp.int32),
    )


def _count(state: BanditState, action, reward) -> BanditState:
    """Bookkeeping every agent does: N(A_t) += 1, t += 1, R̄ <- R̄ + (R_{t+1} - R̄) / (t + 1)."""
    t = state.t + 1
    return state._replace(
        counts=state.counts.at[action].add(1),
        mean_reward=state.mean_reward + (reward - state.mean_reward) / t,
        t=t,
    )


def update_values(
    state: BanditState, action: Int[Array, ""], reward: Float[Array, ""], step_size=None
) -> BanditState:
    """Q(A_t) <- Q(A_t) + alpha [R_{t+1} - Q(A_t)], alpha = 1 / N(A_t) if ``step_size`` is None."""
    state = _count(state, action, reward)
    alpha = 1.0 / state.counts[action] if step_size is None else step_size
    return state._replace(q=state.q.at[action].add(alpha * (reward - state.q[action])))


def upper_confidence_bounds(state: BanditState, c) -> Float[Array, "k"]:
    """Q_t(a) + c sqrt(ln(t + 1) / N_t(a)) for the coming step t = ``state.t``; +inf where N = 0."""
    pulls = (state.t + 1).astype(jnp.float32)  # t + 1, counting the coming pull
    n = jnp.maximum(state.counts, 1).astype(jnp.float32)  # N = 0 is replaced by +inf below
    return jnp.where(state.counts == 0, jnp.inf, state.q + c * jnp.sqrt(jnp.log(pulls) / n))


def update_preferences(
    state: BanditState,
    action: Int[Array, ""],
    reward: Float[Array, ""],
    step_size,
    baseline: bool = True,
) -> BanditState:
    """H(a) <- H(a) + alpha (R_{t+1} - R̄_t)(1{a = A_t} - pi_t(a)) for all a (R̄_t = 0 if no baseline).

    R̄_t averages the rewards R_1, ..., R_t *before* step t, so R_{t+1} is added to it after
    the update; on the first step R̄_0 = R_1 and the preferences do not move.
    """
    pi = jax.nn.softmax(state.preferences)
    if baseline:  # a structural switch, not a hyperparameter
        r_bar = jnp.where(state.t == 0, reward, state.mean_reward)
    else:
        r_bar = 0.0
    one_hot = jax.nn.one_hot(action, state.preferences.shape[0], dtype=pi.dtype)
    preferences = state.preferences + step_size * (reward - r_bar) * (one_hot - pi)
    return _count(state, action, reward)._replace(preferences=preferences)


# ------------------------------------------------------------------------- agents


def _check_value_step_size(step_size) -> None:
    if step_size is not None:
        _check("step_size", step_size, lambda a: (a > 0) & (a <= 1), "in (0, 1] or None")


def epsilon_greedy(epsilon, *, initial_value=0.0, step_size=None) -> Agent:
    """epsilon-greedy action selection over incremental value estimates.

    Args:
      epsilon: probability of picking an arm uniformly at random, in [0, 1].
      initial_value: Q_0(a) for every arm (S&B's Q_1); 5.0 with epsilon = 0 and
        step_size = 0.1 gives S&B's optimistic greedy agent (Fig. 2.3).
      step_size: constant alpha in (0, 1], or None for sample averages (alpha = 1/n).
    """
    _check("epsilon", epsilon, lambda e: (e >= 0) & (e <= 1), "in [0, 1]")
    _check_value_step_size(step_size)

    def select(key, state):
        # Exploring: uniform over all arms. Exploiting: uniform over the greedy arms.
        u_explore, u_arm = jax.random.uniform(key, (2,))
        explore = u_explore < epsilon
        return _uniform_pick(u_arm, explore | (state.q == jnp.max(state.q)))

    return Agent(
        init=lambda num_arms: initial_state(num_arms, initial_value),
        select=select,
        update=lambda state, a, r: update_values(state, a, r, step_size),
    )


def ucb(c, *, step_size=None) -> Agent:
    """Upper-confidence-bound action selection, A_t = argmax_a [Q_t(a) + c sqrt(ln(t+1) / N_t(a))].

    Args:
      c: degree of exploration, c >= 0 (S&B use c = 2 in Fig. 2.4).
      step_size: constant alpha in (0, 1], or None for sample averages.
    """
    _check("c", c, lambda x: x >= 0, ">= 0")
    _check_value_step_size(step_size)
    return Agent(
        init=initial_state,
        select=lambda key, state: argmax_random_tie(key, upper_confidence_bounds(state, c)),
        update=lambda state, a, r: update_values(state, a, r, step_size),
    )


def gradient_bandit(step_size, *, baseline: bool = True) -> Agent:
    """Soft-max action preferences learned by stochastic gradient ascent (S&B §2.8).

    Args:
      step_size: alpha > 0 (S&B Fig. 2.5 use 0.1 and 0.4).
      baseline: subtract the average reward R̄_t from R_{t+1} (True) or not (R̄_t = 0).
    """
    _check("step_size", step_size, lambda a: a > 0, "> 0")
    return Agent(
        init=initial_state,
        select=lambda key, state: jax.random.categorical(key, state.preferences),
        update=lambda state, a, r: update_preferences(state, a, r, step_size, baseline),
    )


# ------------------------------------------------------------------------ testbed


def testbed(key: PRNGKeyArray, num_arms: int = 10, mean=0.0) -> Float[Array, "k"]:
    """True action values of one bandit problem, q*(a) ~ N(mean, 1) independently.

    Rewards are then R_{t+1} ~ N(q*(A_t), 1); see ``run``.
    """
    _check_int("num_arms", num_arms, 2)
    return mean + jax.random.normal(key, (num_arms,))


def run(
    agent: Agent,
    key: PRNGKeyArray,
    *,
    num_arms: int = 10,
    num_steps: int = 1000,
    testbed_mean=0.0,
    drift=None,
) -> Trace:
    """One run: draw a testbed problem, then let ``agent`` act for ``num_steps`` steps.

    The reward is R_{t+1} = q*(A_t) + Z_{t+1} with Z_{t+1} ~ N(0, 1); the noise does not
    depend on the action, so all T noises are drawn up front. The key is split the same
    way for every agent: runs with the same key share q* and Z_1, ..., Z_T, so
    comparisons between agents are paired. ``num_arms`` and ``num_steps`` fix shapes and
    must be Python ints. Close over the agent to vmap over keys:
    ``jax.jit(jax.vmap(lambda k: run(agent, k)))(keys)``.

    Args:
      drift: None for a stationary problem, or a standard deviation sigma >= 0: after
        every step each q*(a) takes an independent N(0, sigma^2) step, a random walk
        (S&B Exercise 2.5 use sigma = 0.01). ``optimal`` then refers to the values at
        the time of the step. The increments come from their own key, so the rewards'
        noise and the agent's random numbers are those of the stationary run.
    """
    _check_int("num_arms", num_arms, 2)
    _check_int("num_steps", num_steps, 1)
    if drift is not None:
        _check("drift", drift, lambda x: x >= 0, ">= 0 or None")
    key_problem, key_noise, key_agent = jax.random.split(key, 3)
    key_drift = jax.random.fold_in(key_problem, 1)

    def step(carry, inputs):
        state, q_star = carry
        t, select_key, noise = inputs
        action = agent.select(select_key, state)
        reward = q_star[action] + noise
        trace = Trace(action, reward, q_star[action] == jnp.max(q_star))
        if drift is not None:  # a structural switch: a stationary run draws nothing here
            q_star = q_star + drift * jax.random.normal(jax.random.fold_in(key_drift, t), q_star.shape)
        return (agent.update(state, action, reward), q_star), trace

    inputs = (
        jnp.arange(num_steps),
        jax.random.split(key_agent, num_steps),
        jax.random.normal(key_noise, (num_steps,)),
    )
    carry = (agent.init(num_arms), testbed(key_problem, num_arms, testbed_mean))
    _, trace = jax.lax.scan(step, carry, inputs)
    return trace
