r"""Online drivers for linear value-function approximation (the updates are in :mod:`rlbook_lib.vfa`).

:func:`run_prediction` learns v̂ ≈ v_π by gradient Monte Carlo, semi-gradient
TD(0) or n-step semi-gradient TD while following a policy; :func:`run_sarsa` learns q̂ ≈ q_* by
semi-gradient SARSA acting ε-greedily (S&B §10.1). Both step one run with
:func:`rlbook_lib.episode_loop.run` (auto-reset, time limits) and take the
features as a function ``features(obs) -> x`` (a dense vector or active
indices, :mod:`rlbook_lib.features`). vmap over keys::

    coding = features.TileCoding(low=(-1.2, -0.07), high=(0.6, 0.07), num_tilings=8)
    config = vfa_train.SarsaConfig(step_size=0.5 / 8)
    run = lambda k: vfa_train.run_sarsa(config, env, params, partial(features.active_tiles, coding),
                                        coding.num_features, k, 500)
    result = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 30))

**Gradient MC online.** The return G_t is known only at the episode's end.
We hold w fixed during an episode and apply the summed update
Δw = α Σ_t [G_t − v̂(S_t, w)] x_t at its end, accumulated step by step through
Σ_t G_t x_t = Σ_k r_{k+1} z_k with the trace z_k = γ z_{k−1} + x_k, so memory
does not grow with the episode. S&B's box applies the T updates one after the
other; the two differ by O(α²) per episode. If a time limit cuts the episode
at S_T, the return bootstraps on γ v̂(S_T, w).

**Termination and truncation.** Targets use γ_{t+1} = γ (1 − terminated_{t+1});
a time-limit cut still bootstraps (:mod:`rlbook_lib.rollout`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import action_selection, checks, episode_loop, rollout, vfa
from rlbook_lib.envs.base import Environment

PREDICTION_ALGORITHMS = ("gradient_mc", "semi_gradient_td", "n_step_td")


@dataclasses.dataclass(frozen=True)
class PredictionConfig:
    """Linear prediction of v_π. Float fields may be vmapped (``dataclasses.replace``)."""

    algorithm: str = "semi_gradient_td"
    """"gradient_mc", "semi_gradient_td" or "n_step_td" (static)."""
    gamma: float = 1.0
    """Discount γ."""
    step_size: float = 0.1
    """α, constant."""
    n: int = 1
    """The n of "n_step_td" (static); n = 1 is semi-gradient TD(0)."""
    max_steps: int = 10_000_000
    """Safety cap on the steps of one run, all episodes together."""

    def __post_init__(self):
        if self.algorithm not in PREDICTION_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {PREDICTION_ALGORITHMS}, got {self.algorithm!r}")
        checks.check_hyperparameters(gamma=self.gamma, step_size=self.step_size)
        checks.check_positive_int("n", self.n)
        checks.check_positive_int("max_steps", self.max_steps)


@dataclasses.dataclass(frozen=True)
class SarsaConfig:
    """Episodic semi-gradient SARSA (S&B §10.1). Float fields may be vmapped."""

    gamma: float = 1.0
    """Discount γ."""
    epsilon: float = 0.0
    """Exploration probability of the ε-greedy behaviour (S&B's MountainCar: 0, optimistic q̂ = 0)."""
    step_size: float = 0.5 / 8
    """α in w ← w + α δ ∇q̂; with 8 tilings S&B write it as 0.5/8 (0.5 per state overall)."""
    initial_value: float = 0.0
    """Every weight before any update (0 is optimistic when rewards are −1)."""
    max_steps: int = 10_000_000
    """Safety cap on the steps of one run, all episodes together."""

    def __post_init__(self):
        checks.check_hyperparameters(gamma=self.gamma, epsilon=self.epsilon, step_size=self.step_size)
        checks.check_positive_int("max_steps", self.max_steps)


class PredictionResult(NamedTuple):
    weights: Float[Array, "E+1 d"]
    """w after k episodes in row k (row 0: the initial w = 0); NaN for episodes never finished."""
    episode_lengths: Int[Array, "E"]
    """T of each episode (0 if not finished within max_steps)."""


class SarsaResult(NamedTuple):
    weights: Float[Array, "A d"]
    """w_a of q̂(s, a, w) = w_aᵀ x(s) after the last episode."""
    episode_returns: Float[Array, "E"]
    """Undiscounted return of each episode (NaN if not finished)."""
    episode_lengths: Int[Array, "E"]
    """T of each episode (0 if not finished)."""


class MonteCarloLearner(NamedTuple):
    w: Float[Array, "d"]  # weights, fixed during an episode
    pending: Float[Array, "d"]  # Σ_t [G_t − v̂(S_t, w)] x_t so far, as Σ_k r_{k+1} z_k − v̂(S_k) x_k
    trace: Float[Array, "d"]  # z_t = γ z_{t−1} + x_t


class NStepLearner(NamedTuple):
    w: Float[Array, "d"]  # weights
    xs: Array  # [n, *x]: x(S_i) of the last n steps of the episode, step i in slot i mod n
    rewards: Float[Array, "n"]  # R_{i+1} in slot i mod n
    steps: Int[Array, "n"]  # i, the step held in each slot (−1: empty)
    t: Int[Array, ""]  # steps taken in the current episode


def n_step_init(n: int, num_features: int, x_example: vfa.Features) -> NStepLearner:
    """w = 0 and an empty buffer shaped like ``x_example``."""
    x = jnp.asarray(x_example)
    return NStepLearner(jnp.zeros(num_features, jnp.float32), jnp.zeros((n, *x.shape), x.dtype),
                        jnp.zeros(n, jnp.float32), jnp.full(n, -1, jnp.int32), jnp.int32(0))


def n_step_learn(config: PredictionConfig, learner: NStepLearner, x, reward, terminated, ended,
                 x_next) -> NStepLearner:
    """n-step semi-gradient TD (S&B §9.4, p. 209) after the step S_t → R_{t+1}, S_{t+1}.

    With m = t + 1 steps taken, S_τ for τ = m − n is updated towards

        G_{τ:m} = Σ_{i=τ}^{m−1} γ^{i−τ} R_{i+1} + γ^{m−τ} (1 − terminated) v̂(S_m, w),

    and when the episode ends every τ still pending (max(0, m − n) ≤ τ < m) is,
    one after the other, with the current w each time.
    """
    slot = learner.t % config.n
    xs = learner.xs.at[slot].set(x)
    rewards = learner.rewards.at[slot].set(reward)
    steps = learner.steps.at[slot].set(learner.t)
    m = learner.t + 1
    first = jnp.maximum(m - config.n, 0)
    count = jnp.where(ended, m - first, (m >= config.n).astype(jnp.int32))
    keep = 1.0 - terminated.astype(jnp.float32)

    def update(i, w):
        tau = first + i
        inside = (steps >= tau) & (steps < m)
        g = jnp.sum(jnp.where(inside, config.gamma ** (steps - tau) * rewards, 0.0))
        g = g + config.gamma ** (m - tau) * keep * vfa.linear_value(w, x_next)
        return vfa.gradient_mc_update(w, xs[tau % config.n], g, config.step_size)

    w = jax.lax.fori_loop(0, count, update, learner.w)
    return NStepLearner(w, xs, rewards, jnp.where(ended, -1, steps), jnp.where(ended, 0, m))


def _check_features(num_features) -> None:
    checks.check_positive_int("num_features", num_features)


def gradient_mc_learn(config: PredictionConfig, learner: MonteCarloLearner, x, reward, terminated,
                      ended, x_next) -> MonteCarloLearner:
    """One step of online gradient MC (module docstring); applies α · pending when ``ended``."""
    w = learner.w
    bootstrap = jnp.where(ended & ~terminated, config.gamma * vfa.linear_value(w, x_next), 0.0)
    trace = vfa.add_gradient(config.gamma * learner.trace, x, 1.0)
    pending = vfa.add_gradient(learner.pending + (reward + bootstrap) * trace, x, -vfa.linear_value(w, x))
    zero = jnp.zeros_like(w)
    return MonteCarloLearner(jnp.where(ended, w + config.step_size * pending, w),
                             jnp.where(ended, zero, pending), jnp.where(ended, zero, trace))


def run_prediction(config: PredictionConfig, env: Environment, params: Any,
                   policy: Callable[[PRNGKeyArray, Array], Int[Array, ""]],
                   features: Callable[[Array], vfa.Features], num_features: int,
                   key: PRNGKeyArray, num_episodes: int) -> PredictionResult:
    """Gradient MC, semi-gradient TD(0) or n-step semi-gradient TD on v̂(s, w) = wᵀ x(s), from
    w = 0, while following ``policy(key, obs) -> action`` for ``num_episodes`` episodes."""
    _check_features(num_features)
    checks.check_positive_int("num_episodes", num_episodes)
    act = lambda key, learner, obs: policy(key, obs)  # noqa: E731
    zeros = jnp.zeros(num_features, jnp.float32)

    def learn(learner, tr, key):
        x, x_next = features(tr.obs), features(tr.next_obs)
        if config.algorithm == "gradient_mc":
            return gradient_mc_learn(config, learner, x, tr.reward, tr.terminated, tr.episode_ended,
                                     x_next), None
        if config.algorithm == "n_step_td":
            return n_step_learn(config, learner, x, tr.reward, tr.terminated, tr.episode_ended, x_next), None
        discount = config.gamma * tr.discount
        return vfa.semi_gradient_td_update(learner, x, tr.reward, discount, x_next, config.step_size), None

    init = {"gradient_mc": MonteCarloLearner(zeros, zeros, zeros), "semi_gradient_td": zeros,
            "n_step_td": None}[config.algorithm]
    if config.algorithm == "n_step_td":
        x_example = jax.eval_shape(features, rollout.observe(env, params, rollout.reset(env, params, key)))
        init = n_step_init(config.n, num_features, jnp.zeros(x_example.shape, x_example.dtype))
    weights = (lambda learner: learner) if config.algorithm == "semi_gradient_td" else (lambda learner: learner.w)
    record = lambda learner, tr: (weights(learner), tr.episode_length)  # noqa: E731
    empty = (jnp.full(num_features, jnp.nan, jnp.float32), jnp.int32(0))
    _, (ws, lengths) = episode_loop.run(env, params, num_episodes, config.max_steps, act, learn, record,
                                        init, empty, key)
    return PredictionResult(jnp.concatenate([zeros[None], ws]), lengths)


def run_sarsa(config: SarsaConfig, env: Environment, params: Any,
              features: Callable[[Array], vfa.Features], num_features: int,
              key: PRNGKeyArray, num_episodes: int) -> SarsaResult:
    """Episodic semi-gradient SARSA, ε-greedy in q̂ (ties broken at random), for ``num_episodes``.

    A_{t+1} is drawn before the update, which bootstraps on q̂(S_{t+1}, A_{t+1});
    after a time-limit cut it bootstraps on an action drawn in the cut state.
    """
    _check_features(num_features)
    checks.check_positive_int("num_episodes", num_episodes)
    num_actions = int(env.action_space(params).n)

    def act(key, w, obs):
        return action_selection.epsilon_greedy(key, vfa.action_values(w, features(obs)), config.epsilon)

    def learn(w, tr, key):
        next_action = act(key, w, tr.next_obs)
        w = vfa.semi_gradient_sarsa_update(w, features(tr.obs), tr.action, tr.reward,
                                           config.gamma * tr.discount, features(tr.next_obs),
                                           next_action, config.step_size)
        return w, next_action

    w0 = jnp.full((num_actions, num_features), config.initial_value, jnp.float32)
    record = lambda w, tr: (tr.episode_return, tr.episode_length)  # noqa: E731
    empty = (jnp.float32(jnp.nan), jnp.int32(0))
    w, (returns, lengths) = episode_loop.run(env, params, num_episodes, config.max_steps, act, learn,
                                             record, w0, empty, key)
    return SarsaResult(w, returns, lengths)
