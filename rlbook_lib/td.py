r"""Temporal-difference learning: TD(0), SARSA, Expected SARSA, Q-learning, Double Q-learning (S&B ch. 6).

TD methods update after every step, towards a target that *bootstraps* on the
current estimate of the next state's value:

.. math::

    \delta_t = \text{target}_t - Q(S_t, A_t), \qquad
    Q(S_t, A_t) \leftarrow Q(S_t, A_t) + \alpha_n \delta_t .

==================  =================================================================
method              target (``discount`` = γ_{t+1} = γ (1 − terminated_{t+1}))
==================  =================================================================
TD(0) for v_π       r_{t+1} + γ_{t+1} V(S_{t+1})
SARSA               r_{t+1} + γ_{t+1} Q(S_{t+1}, A_{t+1}),  A_{t+1} the action taken next
Expected SARSA      r_{t+1} + γ_{t+1} Σ_a π(a | S_{t+1}) Q(S_{t+1}, a),  π a target policy
Q-learning          r_{t+1} + γ_{t+1} max_a Q(S_{t+1}, a)
Double Q-learning   r_{t+1} + γ_{t+1} Q_2(S_{t+1}, argmax_a Q_1(S_{t+1}, a))  (or 1 ↔ 2)
==================  =================================================================

**When the bootstrap is 0.** ``discount`` is 0 only when S_{t+1} is terminal,
whose value is 0 by definition. A time-limit cut (``truncated``) leaves S_{t+1}
an ordinary state, so its discount stays γ and the target still bootstraps.

**Compared with Monte Carlo** (:mod:`rlbook_lib.mc`): the target is available
after one step, not at the episode's end, and has far lower variance (one
reward and one estimate instead of a whole return), but it is biased while the
estimate it bootstraps on is wrong. SARSA learns q_μ of the ε-greedy policy μ it
follows (on-policy). Expected SARSA learns q_π of whichever target policy π its
target averages over, whatever the behaviour μ (S&B §6.6): here π is ε-greedy
in Q with ``target_epsilon`` (by default the behaviour's ε, which makes it
on-policy); with ``target_epsilon = 0`` π is greedy and its target *is*
Q-learning's. Q-learning learns q_* whatever the behaviour (off-policy): with
every (s, a) updated infinitely often and Robbins–Monro step sizes
(``step_size_power`` in (1/2, 1]), Q → q_* with probability 1. Its max over
noisy estimates is biased upwards (*maximisation bias*); Double Q-learning
(van Hasselt 2010; S&B §6.7) keeps two tables, selects the next action with
one and evaluates it with the other, and updates one of them, chosen by a fair
coin, at every step; it acts ε-greedily in Q_1 + Q_2.

**Action masks.** In some tasks not every action exists in every state (S&B's
Example 6.7: two actions in A, many in B). ``run_control(..., action_mask=M)``
with a boolean M[s, a] restricts acting, the max, the argmax and π to the
valid actions of each state.

The update functions are pure and work on one transition; :func:`run_control`
and :func:`run_prediction` step one run with :func:`rlbook_lib.rollout.step`
(auto-reset) in a ``lax.while_loop`` until a number of episodes have ended,
logging each episode at its end. vmap them over keys::

    config = td.ControlConfig("sarsa", epsilon=0.1, step_size=0.5)
    runs = jax.jit(jax.vmap(lambda k: td.run_control(config, env, params, k, 500)))
    result = runs(jax.random.split(jax.random.key(0), 100))   # result.episode_returns: [100, 500]
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib import checks, episode_loop, rollout, tabular
from rlbook_lib.action_selection import epsilon_greedy, epsilon_greedy_probabilities
from rlbook_lib.envs.base import Environment
from rlbook_lib.tabular import ControlResult, step_size

ALGORITHMS = ("sarsa", "expected_sarsa", "q_learning", "double_q_learning")

# ------------------------------------------------------------------ targets and the update


def td0_target(reward: Float[Array, ""], discount: Float[Array, ""], v_next: Float[Array, ""]):
    """r_{t+1} + γ_{t+1} V(S_{t+1})."""
    return reward + discount * v_next


def sarsa_target(reward, discount, q_next: Float[Array, "A"], next_action: Int[Array, ""]):
    """r_{t+1} + γ_{t+1} Q(S_{t+1}, A_{t+1})."""
    return reward + discount * q_next[next_action]


def expected_sarsa_target(reward, discount, q_next: Float[Array, "A"], pi_next: Float[Array, "A"]):
    """r_{t+1} + γ_{t+1} Σ_a π(a | S_{t+1}) Q(S_{t+1}, a)."""
    return reward + discount * jnp.dot(pi_next, q_next)


def q_learning_target(reward, discount, q_next: Float[Array, "A"], valid: Bool[Array, "A"] | None = None):
    """r_{t+1} + γ_{t+1} max_a Q(S_{t+1}, a), the max over the ``valid`` actions (default all)."""
    return reward + discount * jnp.max(_masked(q_next, valid))


def double_q_learning_target(reward, discount, q_select_next: Float[Array, "A"],
                             q_evaluate_next: Float[Array, "A"], valid: Bool[Array, "A"] | None = None):
    """r_{t+1} + γ_{t+1} Q_2(S_{t+1}, argmax_a Q_1(S_{t+1}, a)): Q_1 = ``q_select_next``
    picks the action (ties to the lowest valid one), Q_2 = ``q_evaluate_next`` values it."""
    return reward + discount * q_evaluate_next[jnp.argmax(_masked(q_select_next, valid))]


def _masked(q: Float[Array, "A"], valid: Bool[Array, "A"] | None) -> Float[Array, "A"]:
    """q with −∞ at invalid actions, so that max and argmax ignore them."""
    return q if valid is None else jnp.where(valid, q, -jnp.inf)


def update(table: Float[Array, "*S"], index, target, alpha) -> Float[Array, "*S"]:
    """table[index] += α (target − table[index]): V(s) with index s, Q(s, a) with (s, a)."""
    return table.at[index].add(alpha * (target - table[index]))


def td0_update(v: Float[Array, "S"], state, reward, discount, next_state, alpha) -> Float[Array, "S"]:
    """TD(0): V(S_t) += α [r_{t+1} + γ_{t+1} V(S_{t+1}) − V(S_t)]."""
    return update(v, state, td0_target(reward, discount, v[next_state]), alpha)


# ------------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class ControlConfig:
    """A TD control agent acting ε-greedily. Float fields may be vmapped (``dataclasses.replace``)."""

    algorithm: str = "q_learning"
    """"sarsa", "expected_sarsa", "q_learning" or "double_q_learning": which target (static)."""
    gamma: float = 1.0
    """Discount γ."""
    epsilon: float = 0.1
    """Probability of a uniformly random action (1 gives uniform behaviour)."""
    epsilon_decay: float = 0.0
    """d in ε_k = ε / (1 + d k), k the number of episodes finished: 0 keeps ε fixed;
    d > 0 makes ε_k → 0 with Σ_k ε_k = ∞. Because k counts episodes, not visits to
    each state, this need not be GLIE (greedy in the limit with infinite
    exploration) in every state; Singh et al. (2000) give per-state schedules such
    as ε_t(s) = c / n_t(s) that are."""
    target_epsilon: float | None = None
    """Expected SARSA's target policy π: ε-greedy in Q with this ε; None: the
    behaviour's ε_k (π = μ, on-policy); 0: greedy π, which makes the target Q-learning's."""
    step_size: float = 0.5
    """α in α_n = α n^(−ω), n the number of updates of Q(s, a) so far, this one included."""
    step_size_power: float = 0.0
    """ω: 0 for a constant α (S&B), (1, 1) for 1/n(s, a), (1/2, 1] for convergence to q_*."""
    initial_value: float = 0.0
    """Q(s, a) before any update."""
    max_steps: int = 10_000_000
    """Safety cap on the steps of one run, all episodes together (a greedy policy can loop forever)."""

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        checks.check_hyperparameters(gamma=self.gamma, epsilon=self.epsilon, step_size=self.step_size,
                                 step_size_power=self.step_size_power, epsilon_decay=self.epsilon_decay)
        if self.target_epsilon is not None:
            checks.check_hyperparameters(epsilon=self.target_epsilon)
        checks.check_positive_int("max_steps", self.max_steps)

    @property
    def num_tables(self) -> int:
        """2 for Double Q-learning (Q_1 and Q_2), else 1."""
        return 2 if self.algorithm == "double_q_learning" else 1


@dataclasses.dataclass(frozen=True)
class PredictionConfig:
    """TD(0) prediction of v_π. Float fields may be vmapped (``dataclasses.replace``)."""

    gamma: float = 1.0
    """Discount γ."""
    step_size: float = 0.1
    """α in α_n = α n^(−ω), n the number of updates of V(s) so far."""
    step_size_power: float = 0.0
    """ω: 0 for a constant α (S&B's random walk)."""
    initial_value: float = 0.0
    """V(s) before any update (S&B's random walk: 0.5)."""
    max_steps: int = 10_000_000
    """Safety cap on the steps of one run, all episodes together (π might never end an episode)."""

    def __post_init__(self):
        checks.check_hyperparameters(gamma=self.gamma, step_size=self.step_size,
                                 step_size_power=self.step_size_power)
        checks.check_positive_int("max_steps", self.max_steps)


# --------------------------------------------------------------------------- one step


class AgentState(NamedTuple):
    q: Float[Array, "*K S A"]  # Q(s, a); Double Q-learning: [2, S, A], Q_1 and Q_2
    counts: Int[Array, "*K S A"]  # n(s, a): updates of each entry so far
    episodes: Int[Array, ""] | int = 0  # k: episodes finished so far (for ε_k)


def behaviour_epsilon(config: ControlConfig, agent: AgentState) -> Float[Array, ""]:
    """ε_k = ε / (1 + d k) after k finished episodes (``config.epsilon_decay`` = d)."""
    return config.epsilon / (1.0 + config.epsilon_decay * agent.episodes)


def action_values(agent: AgentState) -> Float[Array, "S A"]:
    """The Q that the agent acts on: Q, or (Q_1 + Q_2) / 2 for Double Q-learning."""
    return agent.q if agent.q.ndim == 2 else agent.q.mean(axis=0)


def control_target(config: ControlConfig, reward, discount, q_next: Float[Array, "A"], next_action,
                   valid_next: Bool[Array, "A"] | None = None, epsilon=None):
    """The target of SARSA, Expected SARSA or Q-learning (``next_action``: SARSA only;
    ``epsilon``: the behaviour's ε_k, default ``config.epsilon``, Expected SARSA's π if
    ``config.target_epsilon`` is None)."""
    if config.algorithm == "sarsa":
        return sarsa_target(reward, discount, q_next, next_action)
    if config.algorithm == "expected_sarsa":
        eps = config.target_epsilon if config.target_epsilon is not None else (
            config.epsilon if epsilon is None else epsilon)
        return expected_sarsa_target(reward, discount, q_next,
                                     epsilon_greedy_probabilities(q_next, eps, valid_next))
    return q_learning_target(reward, discount, q_next, valid_next)


def control_update(config: ControlConfig, agent: AgentState, transition: rollout.Transition,
                   next_action, key: PRNGKeyArray | None = None,
                   valid_next: Bool[Array, "A"] | None = None) -> AgentState:
    """One update of Q(S_t, A_t) from one transition, with discount γ (1 − terminated).

    Double Q-learning (``agent.q`` [2, S, A]) draws with ``key`` which table i
    learns, with probability 1/2 each, and bootstraps on
    :func:`double_q_learning_target` with Q_i selecting and Q_{1−i} evaluating.
    """
    s, a, s_next = transition.obs, transition.action, transition.next_obs
    discount = config.gamma * transition.discount
    if config.algorithm == "double_q_learning":
        i = jax.random.bernoulli(key).astype(jnp.int32)
        target = double_q_learning_target(transition.reward, discount, agent.q[i, s_next],
                                          agent.q[1 - i, s_next], valid_next)
        index = (i, s, a)
    else:
        target = control_target(config, transition.reward, discount, agent.q[s_next], next_action,
                                valid_next, behaviour_epsilon(config, agent))
        index = (s, a)
    n = agent.counts[index] + 1
    alpha = step_size(config.step_size, config.step_size_power, n)
    return AgentState(update(agent.q, index, target, alpha), agent.counts.at[index].set(n), agent.episodes)


# ------------------------------------------------------------------------------ drivers


def run_control(config: ControlConfig, env: Environment, params: Any, key: PRNGKeyArray,
                num_episodes: int, action_mask: Bool[Array, "S A"] | None = None) -> ControlResult:
    """SARSA, Expected SARSA, Q-learning or Double Q-learning for ``num_episodes`` episodes.

    Episodes end when they terminate or the environment's time limit truncates
    them (:func:`rlbook_lib.rollout.step`). SARSA picks A_{t+1} before the update
    (its target needs it); the others pick it from the updated Q, as in S&B's
    boxes. ``action_mask[s, a]`` (default: all True) marks the actions that
    exist in s. Returns the final Q ((Q_1 + Q_2) / 2 for Double Q-learning) and
    each episode's online return and length; episodes not finished within
    ``config.max_steps`` have return NaN and length 0.
    """
    S, A = tabular.tabular_sizes(env, params)
    checks.check_positive_int("num_episodes", num_episodes)
    if action_mask is not None and (np.shape(action_mask) != (S, A) or not np.all(np.any(action_mask, -1))):
        raise ValueError(f"action_mask must be a boolean [S, A] = {(S, A)} array with a valid action "
                         f"in every state, got shape {np.shape(action_mask)}")

    def valid(obs):
        return None if action_mask is None else jnp.asarray(action_mask, bool)[obs]

    def act(key, agent, obs):
        return epsilon_greedy(key, action_values(agent)[obs], behaviour_epsilon(config, agent), valid(obs))

    def learn(agent, transition, key):
        next_action = act(key, agent, transition.next_obs) if config.algorithm == "sarsa" else None
        agent = control_update(config, agent, transition, next_action, key, valid(transition.next_obs))
        return agent._replace(episodes=agent.episodes + transition.episode_ended), next_action

    record = lambda agent, tr: (tr.episode_return, tr.episode_length)  # noqa: E731
    shape = (S, A) if config.num_tables == 1 else (2, S, A)
    init = AgentState(jnp.full(shape, config.initial_value, jnp.float32), jnp.zeros(shape, jnp.int32),
                      jnp.int32(0))
    empty = (jnp.float32(jnp.nan), jnp.int32(0))
    agent, log = episode_loop.run(env, params, num_episodes, config.max_steps, act, learn, record,
                                  init, empty, key)
    return ControlResult(action_values(agent), *log)


def run_prediction(config: PredictionConfig, env: Environment, params: Any, pi: Float[Array, "S A"],
                   key: PRNGKeyArray, num_episodes: int) -> Float[Array, "E+1 S"]:
    """TD(0) prediction of v_π, online, over ``num_episodes`` episodes; row k is V after k episodes.

    Rows of episodes not finished within ``config.max_steps`` are NaN.
    """
    S, A = tabular.tabular_sizes(env, params)
    checks.check_positive_int("num_episodes", num_episodes)
    checks.check_policy(pi, S, A)
    act = lambda key, learner, obs: jax.random.categorical(key, jnp.log(pi[obs]))  # noqa: E731

    def learn(learner, tr, key):
        v, counts = learner
        n = counts[tr.obs] + 1
        alpha = step_size(config.step_size, config.step_size_power, n)
        v = td0_update(v, tr.obs, tr.reward, config.gamma * tr.discount, tr.next_obs, alpha)
        return (v, counts.at[tr.obs].set(n)), None

    v0 = jnp.full(S, config.initial_value, jnp.float32)
    record = lambda learner, tr: learner[0]  # noqa: E731
    _, vs = episode_loop.run(env, params, num_episodes, config.max_steps, act, learn, record,
                             (v0, jnp.zeros(S, jnp.int32)), jnp.full(S, jnp.nan, jnp.float32), key)
    return jnp.concatenate([v0[None], vs])


def greedy_path(env: Environment, params: Any, q: Float[Array, "S A"], key: PRNGKeyArray,
                max_steps: int) -> tuple[Int[Array, "T+1"], Int[Array, ""]]:
    """Follow argmax_a Q(s, a) (ties to the lowest action) from s_0 for up to ``max_steps`` steps.

    Returns the observations o_0, ..., o_T (after the end of the episode, its
    last observation repeats) and the episode's length, or ``max_steps`` if it
    did not end (a greedy policy can walk in circles).
    """
    tabular.tabular_sizes(env, params)
    checks.check_positive_int("max_steps", max_steps)
    key_reset, key_run = jax.random.split(key)
    state = rollout.reset(env, params, key_reset)
    _, tr = rollout.rollout(env, params, lambda k, obs: jnp.argmax(q[obs]), key_run, state, max_steps)
    ended = jnp.cumsum(tr.episode_ended) > 0  # [T]: the episode has ended at or before step t
    length = jnp.where(ended[-1], jnp.argmax(ended) + 1, max_steps)
    t = jnp.arange(max_steps)
    next_obs = jnp.where(t < length, tr.next_obs, tr.next_obs[length - 1])
    return jnp.concatenate([tr.obs[:1], next_obs]), length
