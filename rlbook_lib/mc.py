r"""Monte Carlo prediction and control (Sutton & Barto, chapter 5).

Monte Carlo methods estimate values by averaging sampled returns. After an
episode S_0, A_0, r_1, S_1, ..., S_T, the return from step t is

.. math:: G_t = r_{t+1} + \gamma_{t+1} G_{t+1}, \qquad G_T = 0,

with :math:`\gamma_{t+1} = \gamma\,(1 - \mathrm{terminated}_{t+1})`
(:func:`rlbook_lib.returns.discounted_returns`), and each visited state moves
towards it:

.. math:: V(S_t) \leftarrow V(S_t) + \alpha_n \big[ G_t - V(S_t) \big].

**First-visit** MC uses only the first visit to s in each episode, **every-visit**
MC all of them (S&B §5.1).

* **Unbiased.** G_t is a sample of v_π(S_t) itself, E_π[G_t | S_t = s] = v_π(s):
  no estimate is built on another estimate. First-visit returns are i.i.d., so
  their average (α_n = 1/n) is unbiased and converges to v_π(s); every-visit
  averages are biased for finite n but converge too. A constant α keeps a
  weight (1 − α)^n on the initial value and forgets old returns.
* **High variance.** G_t sums every reward to the episode's end, so its
  variance grows with the episode's length and the randomness of each step.
* **Waits for the end.** G_t is known only once the episode has ended, so all
  updates of an episode come after its last step, backwards t = T−1, ..., 0 as
  in S&B's box; a cut at ``max_episode_steps`` counts the missing tail as 0.

**Control** (S&B §5.4, on-policy first-visit MC control for ε-soft policies):
the same averages for Q(S_t, A_t), while acting ε-greedily with respect to Q
(with ``exploring_start``, Monte Carlo ES of S&B §5.3 instead),

.. math:: \pi(a \mid s) = \frac{\varepsilon}{|A|} + (1 - \varepsilon)\,
          \frac{\mathbb{1}[a \in \operatorname{argmax}_b Q(s, b)]}{|\operatorname{argmax}_b Q(s, b)|}.

Each ε-greedy policy is at least as good as the ε-soft policy before it, so
the best policy it can settle on is the best ε-soft one.

**Step sizes**, here and in :mod:`rlbook_lib.td`: α_n = α · n^(−ω) for the n-th
update of an entry. ω = 0 is a constant α, (α, ω) = (1, 1) the sample average,
and ω in (1/2, 1] meets Robbins–Monro, Σ α_n = ∞ and Σ α_n² < ∞.

Functions work on one episode of one run; the drivers :func:`run_prediction`
and :func:`run_control` loop over episodes in ``lax.scan``; vmap them over keys::

    runs = jax.jit(jax.vmap(lambda k: mc.run_prediction(config, env, params, pi, k, 100)))
    values = runs(jax.random.split(jax.random.key(0), 100))   # [runs, 101, S]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib import returns, rollout
from rlbook_lib.action_selection import epsilon_greedy
from rlbook_lib.checks import check_hyperparameters, check_policy, check_positive_int
from rlbook_lib.envs.base import Environment
from rlbook_lib.tabular import ControlResult, step_size, tabular_sizes


class Episode(NamedTuple):
    """One episode in a buffer of fixed length T; steps t ≥ length are padding."""

    observations: Int[Array, "T"]  # S_t
    actions: Int[Array, "T"]  # A_t
    rewards: Float[Array, "T"]  # r_{t+1}
    discounts: Float[Array, "T"]  # γ_{t+1} = γ (1 − terminated_{t+1})
    mask: Bool[Array, "T"]  # t < length: step t happened

    @property
    def length(self) -> Int[Array, ""]:
        return jnp.sum(self.mask, dtype=jnp.int32)


def first_visits(index: Int[Array, "T"], mask: Bool[Array, "T"], num_entries: int) -> Bool[Array, "T"]:
    """True at t if ``index[t]`` does not occur at any earlier valid step."""
    t = jnp.arange(index.shape[0])
    first = jax.ops.segment_min(jnp.where(mask, t, index.shape[0]), index, num_segments=num_entries)
    return mask & (first[index] == t)


def _targets(index, episode, num_entries: int, first_visit: bool):
    """(G_t, whether step t counts as a visit of ``index[t]``) for one episode."""
    g = returns.discounted_returns(jnp.where(episode.mask, episode.rewards, 0.0), episode.discounts)
    return g, first_visits(index, episode.mask, num_entries) if first_visit else episode.mask


def _average_returns(table, counts, index, episode, alpha, power, first_visit: bool, targets=None):
    """table[i_t] += α_n (G_t − table[i_t]) for the visits t = T−1, ..., 0 (flat tables).

    ``targets``: :func:`_targets` of the episode, if already computed (e.g. under vmap).
    """
    g, visits = _targets(index, episode, table.shape[0], first_visit) if targets is None else targets

    def backwards(i, carry):
        table, counts = carry
        t = episode.length - 1 - i
        n = counts[index[t]] + visits[t]
        delta = jnp.where(visits[t], g[t] - table[index[t]], 0.0)
        alpha_n = step_size(alpha, power, jnp.maximum(n, 1))
        return table.at[index[t]].add(alpha_n * delta), counts.at[index[t]].set(n)

    return jax.lax.fori_loop(0, episode.length, backwards, (table, counts))


def prediction_update(v: Float[Array, "S"], counts: Int[Array, "S"], episode: Episode, *,
                      alpha=1.0, power=1.0, first_visit: bool = True):
    """MC prediction from one episode: V(S_t) += α_n [G_t − V(S_t)] at each (first) visit.

    ``counts`` holds the n of each state (visits averaged so far). With the
    defaults α_n = 1/n, V(s) is the average of every return seen from s.
    Returns the new ``(v, counts)``.
    """
    return _average_returns(v, counts, episode.observations, episode, alpha, power, first_visit)


def control_update(q: Float[Array, "S A"], counts: Int[Array, "S A"], episode: Episode, *,
                   alpha=1.0, power=1.0, first_visit: bool = True, targets=None):
    """MC control's evaluation step: Q(S_t, A_t) += α_n [G_t − Q(S_t, A_t)] at each
    (first) visit of the pair. Returns the new ``(q, counts)``. ``targets``: the
    returns and visits of :func:`control_targets`, if already computed."""
    S, A = q.shape
    index = episode.observations * A + episode.actions
    flat_q, flat_counts = _average_returns(q.reshape(-1), counts.reshape(-1), index, episode,
                                           alpha, power, first_visit, targets)
    return flat_q.reshape(S, A), flat_counts.reshape(S, A)


def control_targets(num_states: int, num_actions: int, episode: Episode, first_visit: bool = True):
    """(G_t, whether step t is a (first) visit of its pair (S_t, A_t)), for :func:`control_update`."""
    index = episode.observations * num_actions + episode.actions
    return _targets(index, episode, num_states * num_actions, first_visit)


class _Collecting(NamedTuple):
    episode: Episode  # the buffer, filled up to t
    state: rollout.RolloutState
    key: PRNGKeyArray
    t: Int[Array, ""]
    ended: Bool[Array, ""]


def collect_episode(env: Environment, params: Any, policy_fn: Callable, key: PRNGKeyArray,
                    gamma, max_steps: int, start: Callable | None = None) -> Episode:
    """Play one episode of ``policy_fn(key, obs) -> action`` into a buffer of ``max_steps``.

    Steps with :func:`rlbook_lib.rollout.step` until the episode terminates, the
    environment's time limit truncates it, or ``max_steps`` steps are taken (a
    cut there is a truncation too: its discount stays γ). ``start(key) ->
    (env_state, action)``, if given, replaces the reset: the episode begins in
    that state with that first action (exploring starts). Under vmap, a
    ``while_loop`` touches its whole carry at every step, so each step costs
    O(``max_steps``): keep the buffer near the longest episode you expect.
    """
    key_reset, key_loop = jax.random.split(key)
    zeros = jnp.zeros(max_steps)
    empty = Episode(zeros.astype(jnp.int32), zeros.astype(jnp.int32), zeros, zeros, zeros.astype(bool))
    if start is None:
        state, first_action = rollout.reset(env, params, key_reset), None
    else:
        env_state, first_action = start(key_reset)
        state = rollout.RolloutState(env_state, jnp.int32(0), jnp.float32(0.0))

    def one_step(c: _Collecting) -> _Collecting:
        key, key_policy, key_env = jax.random.split(c.key, 3)
        obs = rollout.observe(env, params, c.state)
        action = policy_fn(key_policy, obs)
        if first_action is not None:
            action = jnp.where(c.t == 0, first_action, action)
        state, tr = rollout.step(env, params, key_env, c.state, action)
        row = Episode(obs, tr.action, tr.reward, gamma * tr.discount, jnp.bool_(True))
        episode = jax.tree.map(lambda buffer, x: buffer.at[c.t].set(x), c.episode, row)
        return _Collecting(episode, state, key, c.t + 1, tr.episode_ended)

    init = _Collecting(empty, state, key_loop, jnp.int32(0), jnp.bool_(False))
    return jax.lax.while_loop(lambda c: ~c.ended & (c.t < max_steps), one_step, init).episode


@dataclasses.dataclass(frozen=True)
class PredictionConfig:
    """Monte Carlo prediction of v_π. Float fields may be vmapped (via ``dataclasses.replace``)."""

    gamma: float = 1.0
    """Discount γ."""
    step_size: float = 1.0
    """α in α_n = α n^(−ω)."""
    step_size_power: float = 1.0
    """ω in α_n = α n^(−ω): 0 for a constant α (S&B's constant-α MC); (α, ω) = (1, 1) averages."""
    first_visit: bool = True
    """Average the return after the first visit to s in each episode only (else every visit)."""
    initial_value: float = 0.0
    """V(s) before any update, in every state (S&B's random walk: 0.5)."""
    max_episode_steps: int = 1000
    """Buffer length: an episode is cut after this many steps (S&B's episodes never are)."""

    def __post_init__(self):
        check_hyperparameters(gamma=self.gamma, step_size=self.step_size,
                              step_size_power=self.step_size_power)
        check_positive_int("max_episode_steps", self.max_episode_steps)


def run_prediction(config: PredictionConfig, env: Environment, params: Any, pi: Float[Array, "S A"],
                   key: PRNGKeyArray, num_episodes: int) -> Float[Array, "E+1 S"]:
    """MC prediction over ``num_episodes`` episodes of π; row k is V after k episodes."""
    S, A = tabular_sizes(env, params)
    check_positive_int("num_episodes", num_episodes)
    check_policy(pi, S, A)
    policy_fn = lambda k, obs: jax.random.categorical(k, jnp.log(pi[obs]))  # noqa: E731

    def one_episode(carry, key):
        episode = collect_episode(env, params, policy_fn, key, config.gamma, config.max_episode_steps)
        v, counts = prediction_update(*carry, episode, alpha=config.step_size,
                                      power=config.step_size_power, first_visit=config.first_visit)
        return (v, counts), v

    v0 = jnp.full(S, config.initial_value, jnp.float32)
    _, vs = jax.lax.scan(one_episode, (v0, jnp.zeros(S, jnp.int32)), jax.random.split(key, num_episodes))
    return jnp.concatenate([v0[None], vs])


@dataclasses.dataclass(frozen=True)
class ControlConfig:
    """On-policy MC control with an ε-greedy policy (S&B §5.4); floats may be vmapped."""

    gamma: float = 1.0
    """Discount γ."""
    epsilon: float = 0.1
    """Probability of a uniformly random action."""
    step_size: float = 1.0
    """α in α_n = α n^(−ω)."""
    step_size_power: float = 1.0
    """ω; the default (α, ω) = (1, 1) averages returns, as in S&B's box."""
    first_visit: bool = True
    """First-visit (S&B's box) or every-visit averages of Q(s, a)."""
    initial_value: float = 0.0
    """Q(s, a) before any update."""
    max_episode_steps: int = 1000
    """Buffer length: an episode is cut after this many steps."""
    episodes_per_update: int = 1
    """Episodes played (in parallel, under vmap) with one policy before Q is updated
    with their returns, in order; 1 (S&B's box) improves the policy after every episode."""

    def __post_init__(self):
        check_hyperparameters(gamma=self.gamma, epsilon=self.epsilon, step_size=self.step_size,
                              step_size_power=self.step_size_power)
        check_positive_int("max_episode_steps", self.max_episode_steps)
        check_positive_int("episodes_per_update", self.episodes_per_update)


def run_control(config: ControlConfig, env: Environment, params: Any, key: PRNGKeyArray,
                num_episodes: int, exploring_start: Callable | None = None) -> ControlResult:
    """MC control: episodes act ε-greedily on the Q they start with, then update Q.

    ``exploring_start(key) -> (env_state, action)`` turns this into Monte Carlo
    ES (S&B §5.3): every episode begins in the state-action pair it draws (each
    pair must have a positive probability) and then follows the ε-greedy policy,
    with ε = 0 the greedy policy of S&B's box (ties broken at random).
    ``num_episodes`` must be a multiple of ``config.episodes_per_update``.
    """
    S, A = tabular_sizes(env, params)
    check_positive_int("num_episodes", num_episodes)
    batch = config.episodes_per_update
    if num_episodes % batch:
        raise ValueError(f"num_episodes ({num_episodes}) must be a multiple of episodes_per_update ({batch})")

    def one_batch(carry, keys):
        q = carry[0]
        policy_fn = lambda k, obs: epsilon_greedy(k, q[obs], config.epsilon)  # noqa: E731
        episodes = jax.vmap(lambda k: collect_episode(env, params, policy_fn, k, config.gamma,
                                                      config.max_episode_steps, exploring_start))(keys)

        # The returns of all episodes at once; then the updates, one episode after another.
        targets = jax.vmap(lambda e: control_targets(S, A, e, config.first_visit))(episodes)

        def learn(carry, episode_and_targets):
            episode, targets = episode_and_targets
            return control_update(*carry, episode, alpha=config.step_size, power=config.step_size_power,
                                  first_visit=config.first_visit, targets=targets), None

        carry, _ = jax.lax.scan(learn, carry, (episodes, targets))
        online_returns = jnp.sum(jnp.where(episodes.mask, episodes.rewards, 0.0), axis=-1)
        return carry, (online_returns, jnp.sum(episodes.mask, axis=-1, dtype=jnp.int32))

    init = (jnp.full((S, A), config.initial_value, jnp.float32), jnp.zeros((S, A), jnp.int32))
    keys = jax.random.split(key, num_episodes).reshape(num_episodes // batch, batch)
    (q, _), (episode_returns, lengths) = jax.lax.scan(one_batch, init, keys)
    return ControlResult(q, episode_returns.reshape(-1), lengths.reshape(-1))
