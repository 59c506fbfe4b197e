r"""REINFORCE (Williams, 1992), with or without a learned state-value baseline.

Each update samples N complete episodes with the current policy π_θ and takes one
gradient step along

.. math::

    \hat g = \frac{1}{N} \sum_{i=1}^{N} \sum_{t=0}^{T_i - 1}
        \Gamma_t\, \big(G^i_t - b(S^i_t)\big)\, \nabla_\theta \log \pi_\theta(A^i_t \mid S^i_t),
    \qquad G_t = \sum_{k=t}^{T_i-1} \gamma^{k-t} R_{k+1}.

With Γ_t = γ^t (``config.weight_by_discount=True``) this is the score-function
estimate of ∇J(θ) of :func:`rlbook_lib.score_function.reinforce_estimate`, averaged
over the N episodes, and it is unbiased. With Γ_t = 1, the default and what almost
every implementation does, it is a *biased* estimate of ∇J: its expectation is not
the gradient of J, and in general not the gradient of any function (Thomas, 2014;
Nota & Thomas, 2020). With a baseline, b(s) = v_𝐰(s) is a value network fitted to
the same returns by least squares; without, b = 0. The baseline does not change the
expectation of either version.

================================  =====================  ======  =======================================================
symbol                            code                   shape   meaning
================================  =====================  ======  =======================================================
N                                 ``config.num_envs``    []      episodes per update
H                                 ``max_episode_steps``  []      time limit: steps each environment runs per update
:math:`T_i`                       ``valid.sum(-1)``      [N]     length of episode i (≤ H)
:math:`G_t`                       ``returns``            [N, H]  discounted return from :math:`S_t` to the episode's end
:math:`v_{\mathbf w}(S_t)`        ``values``             [N, H]  learned baseline (0 without one)
:math:`G_t - v_{\mathbf w}(S_t)`  ``advantages``         [N, H]  weight of the score; no gradient flows into it
:math:`\Gamma_t`                  ``weights``            [H]     γ^t, or 1 (``config.weight_by_discount``)
================================  =====================  ======  =======================================================

**Complete episodes, the first of each environment.** Every update runs N
environments from a reset for exactly H = ``env.max_episode_steps`` steps
(:func:`rlbook_lib.rollout.rollout`, which resets an environment as soon as an
episode ends). The first episode of each therefore always ends within those H
steps, by termination or by the time limit at step H. Only that first episode is
used (:func:`rlbook_lib.rollout.first_episode_mask`): a later one may be cut off
by the end of the run, and taking every episode that fits into a window of fixed length would
over-represent short episodes. The steps after the first end are computed (under
``vmap`` all environments run equally long anyway) and then masked out.

**Time limits.** REINFORCE optimises the time-limited, episodic objective
J(θ) = E[G_0] = E[Σ_{t<T} γ^t R_{t+1}], where the final step T ≤ H = ``max_episode_steps``:
an episode cut by the limit simply ends, and its return is the time-limited return
(bootstrap 0).
This is not a termination in disguise: truncation and termination stay apart in
the transitions, and with ``config.bootstrap_truncation`` (needs a baseline) the
return of a truncated episode continues with γ v_𝐰(S_H), as if the objective had
no time limit. The baseline cannot see the clock, so near the limit it is a poor
fit to the time-limited return; any baseline that depends on the state alone
still leaves the expectation of the update unchanged.

**γ^t.** The exact gradient of J weights step t by γ^t (the discounting inside
d^π; see :func:`rlbook_lib.score_function.reinforce_estimate`).
``config.weight_by_discount = True`` implements that; False (the default) drops it,
as most implementations do. That gives the late steps of long episodes their full
weight, but the update is then a biased estimate of ∇J, and its expectation is in
general not the gradient of any objective (Thomas, 2014, "Bias in natural
actor-critic algorithms"; Nota & Thomas, 2020, "Is the policy gradient a
gradient?"). Chapter 5 of the book compares the two on CartPole.

Example::

    config = reinforce.Config()
    env = cartpole.CartPole(); env_params = env.default_params()
    train = jax.jit(jax.vmap(reinforce.make_train(config, env, env_params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))
    metrics.episode_return  # [8 seeds, num_updates]
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rlbook_lib import checks, networks, returns, rollout
from rlbook_lib.envs.base import Environment


@dataclasses.dataclass(frozen=True)
class Config:
    """REINFORCE's settings. The defaults solve CartPole-v1 (with a baseline) and the walk."""

    num_envs: int = 8
    """N, episodes per update: environments run side by side, each from a reset."""
    num_updates: int = 150
    """Gradient steps; each samples N fresh episodes."""
    gamma: float = 0.99
    """γ, the discount of the objective and of the returns."""
    policy_learning_rate: float = 0.01
    """Adam step size for the policy network."""
    value_learning_rate: float = 0.01
    """Adam step size for the value network (unused without a baseline)."""
    hidden_sizes: tuple[int, ...] = (32,)
    """Widths of the hidden layers of both networks; () is a linear model."""
    baseline: bool = True
    """Learn v_𝐰 and subtract it from the returns. Static: it changes the state's structure."""
    weight_by_discount: bool = False
    """Weight step t by γ^t (True): an unbiased estimate of ∇J. Or by 1 (False, the common practice):
    a biased estimate, whose expectation is not the gradient of J, nor in general of any function."""
    normalize_advantages: bool = False
    """Standardise G_t − b(S_t) over the batch's valid steps before weighting the scores.

    Subtracting the batch mean is itself a (constant) baseline: leave this off to
    compare REINFORCE with and without a learned baseline."""
    bootstrap_truncation: bool = False
    """At a time limit, continue the return with γ v_𝐰(S_H) instead of ending it (needs a baseline)."""

    def __post_init__(self):
        for name in ("num_envs", "num_updates"):
            checks.check_positive_int(name, getattr(self, name))
        sizes = self.hidden_sizes
        if not isinstance(sizes, tuple) or not all(isinstance(w, int) and w > 0 for w in sizes):
            raise ValueError(f"hidden_sizes must be a tuple of positive ints, got {sizes!r}")
        if self.bootstrap_truncation and not self.baseline:
            raise ValueError("bootstrap_truncation=True needs baseline=True (a value to bootstrap from)")
        checks.check_hyperparameters(gamma=self.gamma)

    @property
    def num_episodes(self) -> int:
        """Episodes used for learning over the whole run: N · num_updates."""
        return self.num_envs * self.num_updates


def steps_per_update(config: Config, env: Environment) -> int:
    """Environment steps simulated per update, N · H, including those masked out."""
    return config.num_envs * env.max_episode_steps


class Networks(NamedTuple):
    policy: networks.Policy
    """π_θ: observation → logits."""
    value: networks.Value
    """v_𝐰: observation → value (built, but never initialised, without a baseline)."""


class TrainState(NamedTuple):
    policy_params: Any
    """θ."""
    value_params: Any
    """The value weights 𝐰; None without a baseline."""
    policy_opt_state: optax.OptState
    """Adam's moments for θ."""
    value_opt_state: optax.OptState
    """Adam's moments for 𝐰; None without a baseline."""
    key: PRNGKeyArray
    """Key for the next update's episodes."""


class Metrics(NamedTuple):
    """Per update; every leaf has a leading update axis after ``train``."""

    episode_return: Float[Array, ""]
    """Mean undiscounted return of the update's N episodes (before its gradient step)."""
    episode_length: Float[Array, ""]
    """Mean length T_i of those episodes."""
    policy_loss: Float[Array, ""]
    """The surrogate −(1/N) Σ Γ_t A_t log π(A_t | S_t); its gradient is −ĝ."""
    value_loss: Float[Array, ""]
    """Mean of (v_𝐰(S_t) − G_t)² over valid steps; 0 without a baseline."""
    entropy: Float[Array, ""]
    """Mean entropy of π_θ(· | S_t) over valid steps, in nats."""
    policy_step_norm: Float[Array, ""]
    """‖θ_new − θ‖, the Euclidean length of the update's Adam step on the policy's parameters."""


class Batch(NamedTuple):
    """N runs of H steps, fields [N, H, ...]."""

    transitions: rollout.Transition
    """What the environments did, episodes after the first included."""
    valid: Bool[Array, "N H"]
    """Step t belongs to the environment's first episode."""


def make_networks(config: Config, env: Environment, env_params: Any) -> Networks:
    """Policy and value networks sized for ``env``'s observation and action spaces."""
    action_space = env.action_space(env_params)
    categories = networks.num_categories(env.observation_space(env_params))
    return Networks(
        policy=networks.Policy(int(action_space.n), config.hidden_sizes, categories),
        value=networks.Value(config.hidden_sizes, categories),
    )


def policy_fn(nets: Networks, policy_params: Any, greedy: bool = False) -> rollout.Policy:
    """``act(key, obs) -> action``: a sample of π_θ(· | obs), or its most likely action if ``greedy``."""

    def act(key: PRNGKeyArray, obs: Array) -> Array:
        logits = nets.policy.apply(policy_params, obs)
        if greedy:
            return jnp.argmax(logits, axis=-1)
        return jax.random.categorical(key, logits)

    return act


def action_probabilities(nets: Networks, policy_params: Any, obs: Array) -> Float[Array, "*B A"]:
    """π_θ(· | obs) for one or a batch of observations."""
    return jax.nn.softmax(nets.policy.apply(policy_params, obs), axis=-1)


def collect(config: Config, env: Environment, env_params: Any, nets: Networks, policy_params: Any,
            key: PRNGKeyArray) -> Batch:
    """N environments, each reset and run for H = ``env.max_episode_steps`` steps of π_θ."""
    act = policy_fn(nets, policy_params)

    def one_run(key):
        key_reset, key_run = jax.random.split(key)
        state = rollout.reset(env, env_params, key_reset)
        _, transitions = rollout.rollout(env, env_params, act, key_run, state, env.max_episode_steps)
        return Batch(transitions, rollout.first_episode_mask(transitions))

    return jax.vmap(one_run)(jax.random.split(key, config.num_envs))


def episode_returns(gamma: Float[Array, ""] | float, transitions: rollout.Transition, valid: Bool[Array, "H"],
                    bootstrap_value: Float[Array, ""] = 0.0) -> Float[Array, "H"]:
    """G_t of the first episode of one run: G_t = R_{t+1} + γ (1 − terminated_{t+1}) G_{t+1}.

    Rewards after the first episode are zeroed. ``bootstrap_value`` is G_H after
    the run's last step; pass a nonzero value only when the first episode was
    truncated there (a terminated episode's zero discount ignores it anyway).
    Entries after the first episode are meaningless; mask them with ``valid``.
    """
    rewards = jnp.where(valid, transitions.reward, 0.0)
    return returns.discounted_returns(rewards, gamma * transitions.discount, bootstrap_value)


def _masked_mean(x: Array, mask: Array) -> Float[Array, ""]:
    return jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


class LossInfo(NamedTuple):
    policy_loss: Float[Array, ""]
    value_loss: Float[Array, ""]
    entropy: Float[Array, ""]


def loss(config: Config, nets: Networks, policy_params: Any, value_params: Any,
         batch: Batch) -> tuple[Float[Array, ""], LossInfo]:
    r"""Policy surrogate plus value loss; ``jax.grad`` of it gives −ĝ for θ and the value step for 𝐰.

    ĝ is the update of the module docstring: with ``config.weight_by_discount`` an
    unbiased estimate of ∇J, without it (the default) a biased one.

    .. math::

        L(\theta, \mathbf{w}) = -\frac{1}{N} \sum_{i, t \le T_i - 1} \Gamma_t\, \mathrm{sg}[G^i_t - v_{\mathbf w}(S^i_t)]
              \log \pi_\theta(A^i_t \mid S^i_t)
            + \operatorname{mean}_{i, t \le T_i - 1} \big(v_{\mathbf w}(S^i_t) - G^i_t\big)^2,

    sg = stop-gradient. The policy term is a sum over each episode's steps and a
    mean over episodes, so its gradient is exactly minus the mean over the N
    episodes of the score-function estimate; the value term is a plain mean
    square over the valid steps. The two parameter sets are disjoint, so each
    term only moves its own.
    """
    tr, valid = batch.transitions, batch.valid
    num_steps = valid.shape[-1]
    logits = nets.policy.apply(policy_params, tr.obs)  # [N, H, A]
    log_pi = networks.log_policy(logits, tr.action)  # [N, H]
    if config.baseline:
        values = nets.value.apply(value_params, tr.obs)  # [N, H]
        bootstrap = jnp.zeros(valid.shape[0])
        if config.bootstrap_truncation:
            cut = tr.truncated[:, -1] & valid[:, -1]  # the first episode hit the time limit
            last = jax.lax.stop_gradient(nets.value.apply(value_params, tr.next_obs[:, -1]))
            bootstrap = jnp.where(cut, last, 0.0)
    else:
        values, bootstrap = jnp.zeros(valid.shape), jnp.zeros(valid.shape[0])
    G = jax.vmap(episode_returns, (None, 0, 0, 0))(config.gamma, tr, valid, bootstrap)  # [N, H]
    advantages = jax.lax.stop_gradient(G - values)
    if config.normalize_advantages:
        mean = _masked_mean(advantages, valid)
        std = jnp.sqrt(_masked_mean(jnp.square(advantages - mean), valid))
        advantages = (advantages - mean) / (std + 1e-8)
    if config.weight_by_discount:
        weights = config.gamma ** jnp.arange(num_steps)  # Γ_t = γ^t: every first episode starts at t = 0
    else:
        weights = jnp.ones(num_steps)
    policy_loss = -jnp.sum(jnp.where(valid, weights * advantages * log_pi, 0.0)) / valid.shape[0]
    value_loss = _masked_mean(jnp.square(values - G), valid) if config.baseline else jnp.zeros(())
    entropy = _masked_mean(networks.entropy(logits), valid)
    return policy_loss + value_loss, LossInfo(policy_loss, value_loss, entropy)


def optimizers(config: Config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Adam for the policy and for the value network, each with its own step size."""
    return optax.adam(config.policy_learning_rate), optax.adam(config.value_learning_rate)


def init(config: Config, env: Environment, env_params: Any, nets: Networks, key: PRNGKeyArray) -> TrainState:
    """Fresh parameters and optimiser states; everything is a function of ``key``."""
    key, key_obs, key_policy, key_value = jax.random.split(key, 4)
    obs = env.observation(env.initial(key_obs, env_params), env_params)  # an example, for shapes
    policy_tx, value_tx = optimizers(config)
    policy_params = nets.policy.init(key_policy, obs)
    value_params = nets.value.init(key_value, obs) if config.baseline else None
    return TrainState(
        policy_params=policy_params,
        value_params=value_params,
        policy_opt_state=policy_tx.init(policy_params),
        value_opt_state=value_tx.init(value_params) if config.baseline else None,
        key=key,
    )


def update(config: Config, env: Environment, env_params: Any, nets: Networks,
           state: TrainState) -> tuple[TrainState, Metrics]:
    """Collect N episodes with π_θ, then one Adam step on θ (and on 𝐰 with a baseline)."""
    key, key_collect = jax.random.split(state.key)
    batch = collect(config, env, env_params, nets, state.policy_params, key_collect)
    grad_fn = jax.grad(lambda p, v: loss(config, nets, p, v, batch), argnums=(0, 1), has_aux=True)
    (policy_grads, value_grads), info = grad_fn(state.policy_params, state.value_params)
    policy_tx, value_tx = optimizers(config)
    steps_policy, policy_opt_state = policy_tx.update(policy_grads, state.policy_opt_state, state.policy_params)
    policy_params = optax.apply_updates(state.policy_params, steps_policy)
    value_params, value_opt_state = state.value_params, state.value_opt_state
    if config.baseline:
        steps, value_opt_state = value_tx.update(value_grads, value_opt_state, value_params)
        value_params = optax.apply_updates(value_params, steps)
    tr = batch.transitions
    first_episodes = tr._replace(terminated=tr.terminated & batch.valid, truncated=tr.truncated & batch.valid)
    stats = rollout.episode_statistics(first_episodes)  # exactly N finished episodes
    metrics = Metrics(stats.mean_return, stats.mean_length, info.policy_loss, info.value_loss, info.entropy,
                      networks.global_norm(steps_policy))
    return TrainState(policy_params, value_params, policy_opt_state, value_opt_state, key), metrics


def _check(config: Config, env: Environment, env_params: Any) -> None:
    if not isinstance(config, Config):
        raise ValueError(f"config must be a reinforce.Config, got {type(config).__name__}")
    checks.check_environment(env)
    if env.max_episode_steps is None:
        raise ValueError("env.max_episode_steps must be an int: each update runs that many steps per episode")
    space = env.action_space(env_params)
    if not hasattr(space, "n"):
        raise ValueError(f"REINFORCE here needs a Discrete action space, got {space!r}")
    networks.num_categories(env.observation_space(env_params))  # raises for other spaces


def make_train(config: Config, env: Environment, env_params: Any):
    """``train(key) -> (TrainState, Metrics)``: ``config.num_updates`` updates in one ``lax.scan``.

    ``jax.jit(jax.vmap(train))(keys)`` trains one agent per key in one call.
    """
    _check(config, env, env_params)
    nets = make_networks(config, env, env_params)

    def train(key: PRNGKeyArray) -> tuple[TrainState, Metrics]:
        state = init(config, env, env_params, nets, key)
        return jax.lax.scan(lambda s, _: update(config, env, env_params, nets, s), state,
                            None, config.num_updates)

    return train
