r"""Temporal-difference learning: TD(0), SARSA, Expected SARSA, Q-learning (S&B ch. 6).

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
Expected SARSA      r_{t+1} + γ_{t+1} Σ_a π(a | S_{t+1}) Q(S_{t+1}, a),  π ε-greedy in Q
Q-learning          r_{t+1} + γ_{t+1} max_a Q(S_{t+1}, a)
==================  =================================================================

**When the bootstrap is 0.** ``discount`` is 0 only when S_{t+1} is terminal,
whose value is 0 by definition. A time-limit cut (``truncated``) leaves S_{t+1}
an ordinary state, so its discount stays γ and the target still bootstraps.

**Compared with Monte Carlo** (:mod:`rlbook_lib.mc`): the target is available
after one step, not at the episode's end, and has far lower variance (one
reward and one estimate instead of a whole return), but it is biased while the
estimate it bootstraps on is wrong. SARSA learns q_π of the ε-greedy policy it
follows (on-policy), Expected SARSA the same values with the randomness of A_{t+1}
averaged out, and Q-learning learns q_* whatever the behaviour (off-policy):
with every (s, a) updated infinitely often and Robbins–Monro step sizes
(``step_size_power`` in (1/2, 1]), Q → q_* with probability 1.

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
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import mc, rollout
from rlbook_lib.envs.base import Environment
from rlbook_lib.mc import ControlResult, epsilon_greedy, epsilon_greedy_probabilities, step_size

ALGORITHMS = ("sarsa", "expected_sarsa", "q_learning")

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


def q_learning_target(reward, discount, q_next: Float[Array, "A"]):
    """r_{t+1} + γ_{t+1} max_a Q(S_{t+1}, a)."""
    return reward + discount * jnp.max(q_next)


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
    """"sarsa", "expected_sarsa" or "q_learning": which target (static)."""
    gamma: float = 1.0
    """Discount γ."""
    epsilon: float = 0.1
    """Probability of a uniformly random action (1 gives uniform behaviour)."""
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
        mc.check_hyperparameters(gamma=self.gamma, epsilon=self.epsilon, step_size=self.step_size,
                                 step_size_power=self.step_size_power)
        mc.check_positive_int("max_steps", self.max_steps)


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
        mc.check_hyperparameters(gamma=self.gamma, step_size=self.step_size,
                                 step_size_power=self.step_size_power)
        mc.check_positive_int("max_steps", self.max_steps)


# --------------------------------------------------------------------------- one step


class AgentState(NamedTuple):
    q: Float[Array, "S A"]  # Q(s, a)
    counts: Int[Array, "S A"]  # n(s, a): updates of Q(s, a) so far


def control_target(config: ControlConfig, reward, discount, q_next: Float[Array, "A"], next_action):
    """The target of ``config.algorithm`` (``next_action`` is used by SARSA only)."""
    if config.algorithm == "sarsa":
        return sarsa_target(reward, discount, q_next, next_action)
    if config.algorithm == "expected_sarsa":
        return expected_sarsa_target(reward, discount, q_next,
                                     epsilon_greedy_probabilities(q_next, config.epsilon))
    return q_learning_target(reward, discount, q_next)


def control_update(config: ControlConfig, agent: AgentState, transition: rollout.Transition,
                   next_action) -> AgentState:
    """One update of Q(S_t, A_t) from one transition, with discount γ (1 − terminated)."""
    s, a = transition.obs, transition.action
    discount = config.gamma * transition.discount
    target = control_target(config, transition.reward, discount, agent.q[transition.next_obs], next_action)
    n = agent.counts[s, a] + 1
    alpha = step_size(config.step_size, config.step_size_power, n)
    return AgentState(update(agent.q, (s, a), target, alpha), agent.counts.at[s, a].set(n))


# ------------------------------------------------------------------------------ drivers


EPISODES_PER_CHUNK = 50
"""Episodes logged per ``while_loop`` (see :func:`_run`)."""


class _Loop(NamedTuple):
    learner: Any  # what is learned: AgentState, or (V, counts)
    env_state: rollout.RolloutState  # s_t and the bookkeeping of the current episode
    action: Int[Array, ""]  # A_t, to be taken next
    key: PRNGKeyArray
    episodes: Int[Array, ""]  # episodes finished so far
    steps: Int[Array, ""]  # steps taken so far, in all episodes


class _Chunk(NamedTuple):
    loop: _Loop
    log: Any  # records of this chunk's episodes, leaves [chunk, ...]
    first: Int[Array, ""]  # index of the chunk's first episode

def _run(env, params, num_episodes, max_steps, act, learn, record, learner, empty_record, key):
    """Step with auto-reset until ``num_episodes`` episodes have ended (or ``max_steps`` steps).

    ``act(key, learner, obs) -> action``; ``learn(learner, transition, key) ->
    (learner, A_{t+1} or None)``, where SARSA returns the A_{t+1} its target
    used and the others None (A_{t+1} is then chosen from the updated learner);
    ``record(learner, transition)`` is logged at each episode's end, and
    ``empty_record`` stands for episodes that never ended. Returns the final
    learner and the log, leaves [E, ...].

    Steps run in a ``while_loop``, so under vmap every run goes at its own pace
    and episodes of different lengths cost no padding. A vmapped ``while_loop``
    selects between the old and new value of its whole carry at every step, so
    the log is kept out of it: an outer ``scan`` runs one ``while_loop`` per
    chunk of ``EPISODES_PER_CHUNK`` episodes and stacks the chunks' logs.
    """
    chunk = min(num_episodes, EPISODES_PER_CHUNK)
    num_chunks = -(-num_episodes // chunk)
    key_reset, key_act, key_loop = jax.random.split(key, 3)
    env_state = rollout.reset(env, params, key_reset)
    action = act(key_act, learner, rollout.observe(env, params, env_state))

    def one_step(carry: _Chunk) -> _Chunk:
        loop, log, first = carry
        key, key_env, key_learn, key_act = jax.random.split(loop.key, 4)
        env_state, transition = rollout.step(env, params, key_env, loop.env_state, loop.action)
        learner, next_action = learn(loop.learner, transition, key_learn)
        ended = transition.episode_ended
        # o_{t+1}, or the first observation of the next episode if this one ended.
        action = act(key_act, learner, rollout.observe(env, params, env_state))
        if next_action is not None:
            action = jnp.where(ended, action, next_action)
        slot = jnp.where(ended, loop.episodes - first, chunk)  # out of range: dropped
        log = jax.tree.map(lambda buffer, x: buffer.at[slot].set(x, mode="drop"),
                           log, record(learner, transition))
        loop = _Loop(learner, env_state, action, key, loop.episodes + ended, loop.steps + 1)
        return _Chunk(loop, log, first)

    def one_chunk(loop, first):
        last = jnp.minimum(first + chunk, num_episodes)
        not_done = lambda c: (c.loop.episodes < last) & (c.loop.steps < max_steps)  # noqa: E731
        empty = jax.tree.map(lambda x: jnp.broadcast_to(x, (chunk, *jnp.shape(x))), empty_record)
        done = jax.lax.while_loop(not_done, one_step, _Chunk(loop, empty, first))
        return done.loop, done.log

    init = _Loop(learner, env_state, action, key_loop, jnp.int32(0), jnp.int32(0))
    loop, log = jax.lax.scan(one_chunk, init, jnp.arange(num_chunks) * chunk)
    return loop.learner, jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:num_episodes], log)


def run_control(config: ControlConfig, env: Environment, params: Any, key: PRNGKeyArray,
                num_episodes: int) -> ControlResult:
    """SARSA, Expected SARSA or Q-learning for ``num_episodes`` episodes of one run.

    Episodes end when they terminate or the environment's time limit truncates
    them (:func:`rlbook_lib.rollout.step`). SARSA picks A_{t+1} before the update
    (its target needs it); the others pick it from the updated Q, as in S&B's
    boxes. Returns the final Q and each episode's online return and length;
    episodes not finished within ``config.max_steps`` have return NaN and length 0.
    """
    S, A = mc.tabular_sizes(env, params)
    mc.check_positive_int("num_episodes", num_episodes)
    act = lambda key, agent, obs: epsilon_greedy(key, agent.q[obs], config.epsilon)  # noqa: E731

    def learn(agent, transition, key):
        if config.algorithm == "sarsa":
            next_action = act(key, agent, transition.next_obs)
            return control_update(config, agent, transition, next_action), next_action
        return control_update(config, agent, transition, None), None

    record = lambda agent, tr: (tr.episode_return, tr.episode_length)  # noqa: E731
    init = AgentState(jnp.full((S, A), config.initial_value, jnp.float32), jnp.zeros((S, A), jnp.int32))
    empty = (jnp.float32(jnp.nan), jnp.int32(0))
    agent, log = _run(env, params, num_episodes, config.max_steps, act, learn, record, init, empty, key)
    return ControlResult(agent.q, *log)


def run_prediction(config: PredictionConfig, env: Environment, params: Any, pi: Float[Array, "S A"],
                   key: PRNGKeyArray, num_episodes: int) -> Float[Array, "E+1 S"]:
    """TD(0) prediction of v_π, online, over ``num_episodes`` episodes; row k is V after k episodes.

    Rows of episodes not finished within ``config.max_steps`` are NaN.
    """
    S, A = mc.tabular_sizes(env, params)
    mc.check_positive_int("num_episodes", num_episodes)
    mc.check_policy(pi, S, A)
    act = lambda key, learner, obs: jax.random.categorical(key, jnp.log(pi[obs]))  # noqa: E731

    def learn(learner, tr, key):
        v, counts = learner
        n = counts[tr.obs] + 1
        alpha = step_size(config.step_size, config.step_size_power, n)
        v = td0_update(v, tr.obs, tr.reward, config.gamma * tr.discount, tr.next_obs, alpha)
        return (v, counts.at[tr.obs].set(n)), None

    v0 = jnp.full(S, config.initial_value, jnp.float32)
    _, vs = _run(env, params, num_episodes, config.max_steps, act, learn, lambda learner, tr: learner[0],
                 (v0, jnp.zeros(S, jnp.int32)), jnp.full(S, jnp.nan, jnp.float32), key)
    return jnp.concatenate([v0[None], vs])


def greedy_path(env: Environment, params: Any, q: Float[Array, "S A"], key: PRNGKeyArray,
                max_steps: int) -> tuple[Int[Array, "T+1"], Int[Array, ""]]:
    """Follow argmax_a Q(s, a) (ties to the lowest action) from s_0 for up to ``max_steps`` steps.

    Returns the observations o_0, ..., o_T (after the end of the episode, its
    last observation repeats) and the episode's length, or ``max_steps`` if it
    did not end (a greedy policy can walk in circles).
    """
    mc.tabular_sizes(env, params)
    mc.check_positive_int("max_steps", max_steps)
    key_reset, key_run = jax.random.split(key)
    state = rollout.reset(env, params, key_reset)
    _, tr = rollout.rollout(env, params, lambda k, obs: jnp.argmax(q[obs]), key_run, state, max_steps)
    ended = jnp.cumsum(tr.episode_ended) > 0  # [T]: the episode has ended at or before step t
    length = jnp.where(ended[-1], jnp.argmax(ended) + 1, max_steps)
    t = jnp.arange(max_steps)
    next_obs = jnp.where(t < length, tr.next_obs, tr.next_obs[length - 1])
    return jnp.concatenate([tr.obs[:1], next_obs]), length
