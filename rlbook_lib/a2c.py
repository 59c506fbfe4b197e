r"""Advantage actor-critic, A2C (the synchronous version of Mnih et al.'s 2016 A3C).

Each update steps N environments side by side for T steps with π_θ
(:func:`rlbook_lib.actor_critic.collect`), estimates advantages by GAE from the critic
v_𝐰 (:func:`rlbook_lib.actor_critic.make_batch`; λ = 1 with T steps is the T-step
return, λ = 0 the one-step TD error), and takes ONE gradient step on

.. math::

    L(\theta, \mathbf w) = -\frac{1}{NT}\sum_{i,t} \hat A^i_t \log \pi_\theta(a^i_t \mid s^i_t)
        + c_v \frac{1}{NT}\sum_{i,t} \tfrac12\big(v_{\mathbf w}(s^i_t) - G^{\lambda,i}_t\big)^2
        - c_H \frac{1}{NT}\sum_{i,t} H\big(\pi_\theta(\cdot \mid s^i_t)\big).

Â is held fixed (no gradient flows into it): the first term's gradient is the
actor-critic policy-gradient estimate, the second fits the critic to the λ-return,
and the third is the entropy bonus. Unlike REINFORCE the data are segments, not whole
episodes: the critic's bootstrap v_𝐰(s_{t+T}) stands in for the rest of the
episode (a source of bias when v_𝐰 is wrong, and of much lower variance).
Unlike PPO every segment is used for one step only, so the step size must stay small.

Example::

    env = cartpole.CartPole(); env_params = env.default_params()
    train = jax.jit(jax.vmap(a2c.make_train(a2c.Config(), env, env_params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))
    metrics.episode_return  # [8 seeds, num_updates]: mean of the last 10 finished episodes
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from rlbook_lib import actor_critic, on_policy, rollout
from rlbook_lib.actor_critic import ActorCritic, Batch
from rlbook_lib.envs.base import Environment


@dataclasses.dataclass(frozen=True)
class Config(on_policy.SegmentConfig):
    """A2C's settings, after those of :class:`~rlbook_lib.on_policy.SegmentConfig` (N, T, the budget,
    γ, λ, the network). The defaults, RL Baselines3 Zoo's for CartPole-v1 (with Adam instead of
    RMSprop, and an annealed step size), solve it (see tests/test_a2c.py)."""

    num_steps: int = 5
    """T, steps of each environment per update (the segment length)."""
    gae_lambda: float = 1.0
    """λ of GAE (1: returns of up to T steps, then the critic's bootstrap; 0: one-step TD errors)."""
    value_coef: float = 0.5
    """c_v, the value loss's weight."""
    entropy_coef: float = 0.0
    """c_H, the entropy bonus's weight."""
    learning_rate: float = 7e-4
    """Adam's step size (at the start, if annealed)."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over the updates. Static."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip before Adam."""
    normalize_advantages: bool = False
    """Standardise Â over each segment. Static."""
    shared_trunk: bool = False
    """One set of hidden layers for the actor and the critic (True) or one each (False). Static."""

    def __post_init__(self):
        super().__post_init__()
        on_policy.check_fields(self, positive=("learning_rate", "max_grad_norm"))


class TrainState(NamedTuple):
    params: Any
    """θ and 𝐰 (one parameter tree)."""
    opt_state: optax.OptState
    env_states: rollout.RolloutState
    """The N environments, [N, …], carried from one segment to the next."""
    recent: on_policy.RecentReturns
    """The last 10 finished episodes' returns."""
    key: PRNGKeyArray


class Metrics(NamedTuple):
    """Per update; every leaf has a leading update axis after ``train``."""

    episode_return: Float[Array, ""]
    """Mean return of the last 10 finished episodes (NaN before the first ends)."""
    episodes: Float[Array, ""]
    """Episodes finished in this update's segment."""
    policy_loss: Float[Array, ""]
    value_loss: Float[Array, ""]
    entropy: Float[Array, ""]
    explained_variance: Float[Array, ""]
    """1 − Var[G^λ − v]/Var[G^λ] of the critic that collected the segment."""


class LossInfo(NamedTuple):
    policy_loss: Float[Array, ""]
    value_loss: Float[Array, ""]
    entropy: Float[Array, ""]


def loss(config: Config, net: ActorCritic, params: Any, batch: Batch) -> tuple[Float[Array, ""], LossInfo]:
    """The A2C loss of the module docstring over a batch with any leading axes."""
    dist, value = net.apply(params, batch.transitions.obs)
    advantage = jax.lax.stop_gradient(batch.advantage)
    if config.normalize_advantages:
        advantage = actor_critic.normalize(advantage)
    policy_loss = -jnp.mean(advantage * dist.log_prob(batch.transitions.action))
    value_loss = jnp.mean(0.5 * jnp.square(value - batch.target))
    entropy = jnp.mean(dist.entropy())
    total = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
    return total, LossInfo(policy_loss, value_loss, entropy)


def optimizer(config: Config) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam (ε = 1e-5) with a step size annealed linearly per update."""
    return on_policy.adam(config.learning_rate, config.max_grad_norm, config.anneal_lr, config.num_updates)


make_network = on_policy.make_network


def init(config: Config, env: Environment, env_params: Any, net: ActorCritic, key: PRNGKeyArray) -> TrainState:
    params, env_states, key = on_policy.init(config, env, env_params, net, key)
    return TrainState(params, optimizer(config).init(params), env_states, on_policy.init_recent_returns(), key)


def update(config: Config, env: Environment, env_params: Any, net: ActorCritic,
           state: TrainState) -> tuple[TrainState, Metrics]:
    """Collect one segment of N × num_steps steps, then one gradient step."""
    key, key_collect = jax.random.split(state.key)
    segment = on_policy.collect_segment(config, env, env_params, net, state.params, key_collect, state.env_states)
    batch = segment.batch
    grads, info = jax.grad(lambda p: loss(config, net, p, batch), has_aux=True)(state.params)
    steps, opt_state = optimizer(config).update(grads, state.opt_state, state.params)
    recent, episode_return, episodes = on_policy.record_episodes(state.recent, segment.transitions)
    metrics = Metrics(episode_return, episodes, *info, actor_critic.explained_variance(batch.value, batch.target))
    return TrainState(optax.apply_updates(state.params, steps), opt_state, segment.env_states, recent, key), metrics


def make_train(config: Config, env: Environment, env_params: Any):
    """``train(key) -> (TrainState, Metrics)``: ``config.num_updates`` updates in one ``lax.scan``.

    ``jax.jit(jax.vmap(train))(keys)`` trains one agent per key in one call.
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be an a2c.Config, got {type(config).__name__}")
    return on_policy.make_train(config, env, env_params, init, update)
