r"""The training loop that A2C, PPO and TRPO share around their different updates.

The three algorithms differ only in what they do with a segment once they have it: A2C
takes one gradient step (:mod:`rlbook_lib.a2c`), PPO K epochs of minibatch steps on a
clipped or penalised surrogate (:mod:`rlbook_lib.ppo`), TRPO one natural-gradient step
inside a KL ball (:mod:`rlbook_lib.trpo`). Everything around that step is the same, and
lives here:

* :class:`SegmentConfig`, the settings of the segments and of the network that every
  algorithm's ``Config`` extends: N environments × T steps per update, the total budget,
  γ and λ of GAE, and the actor-critic network;
* :func:`init` and :func:`collect_segment`: N fresh environments and the network's
  parameters; then one segment with its GAE batch (:mod:`rlbook_lib.actor_critic`);
* :func:`record_episodes`: the mean return of the last ``RECENT`` finished episodes
  (:class:`RecentReturns`), the learning curve every ``Metrics`` starts with;
* :func:`adam` (gradient-norm clipping, then Adam with a linearly annealed step size) and
  :func:`make_train`, which runs ``config.num_updates`` updates in one ``lax.scan``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import actor_critic, checks, rollout
from rlbook_lib.actor_critic import ActorCritic, Batch
from rlbook_lib.envs.base import Environment


def check_fields(config: Any, positive_ints: Sequence[str] = (), unit: Sequence[str] = (),
                 positive: Sequence[str] = ()) -> None:
    """ValueError for a non-positive int, a value outside [0, 1] or a non-positive float (traced ones skipped)."""
    for name in positive_ints:
        checks.check_positive_int(name, getattr(config, name))
    for names, ok, expected in ((unit, lambda v: 0 <= v <= 1, "in [0, 1]"), (positive, lambda v: v > 0, "> 0")):
        for name in names:
            value = getattr(config, name)
            if isinstance(value, (int, float)) and not ok(value):
                raise ValueError(f"{name} must be {expected}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    """The settings every on-policy actor-critic ``Config`` starts with (each may change the defaults)."""

    num_envs: int = 8
    """N, environments stepped side by side."""
    num_steps: int = 128
    """T, steps of each environment per update (the segment length)."""
    total_steps: int = 500_000
    """Environment steps of the whole run, all N together (rounded down to whole updates)."""
    gamma: float = 0.99
    """γ, the discount."""
    gae_lambda: float = 0.95
    """λ of GAE (1: returns of up to T steps, then the critic's bootstrap; 0: one-step TD errors)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the hidden tanh layers of the actor and of the critic."""
    orthogonal_init: bool = True
    """Orthogonal initialisation (see :class:`rlbook_lib.actor_critic.ActorCritic`). Static."""
    log_std_init: float = 0.0
    """Initial log σ of a Gaussian policy (continuous actions)."""

    def __post_init__(self):
        check_fields(self, ("num_envs", "num_steps", "total_steps"), ("gamma", "gae_lambda"))
        sizes = self.hidden_sizes
        if not isinstance(sizes, tuple) or not all(isinstance(w, int) and w > 0 for w in sizes):
            raise ValueError(f"hidden_sizes must be a tuple of positive ints, got {sizes!r}")
        if self.num_updates < 1:
            raise ValueError(f"total_steps ({self.total_steps}) must be at least N T = {self.steps_per_update}")

    @property
    def steps_per_update(self) -> int:
        """N T, environment steps per update."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        """total_steps // (N T)."""
        return self.total_steps // self.steps_per_update

    def check_divides_segment(self, name: str) -> None:
        """ValueError unless the field ``name`` (a number of minibatches) divides N T."""
        if self.steps_per_update % getattr(self, name):
            raise ValueError(f"{name} ({getattr(self, name)}) must divide N T = {self.steps_per_update}")


def make_network(config: SegmentConfig, env: Environment, env_params: Any) -> ActorCritic:
    """The :class:`~rlbook_lib.actor_critic.ActorCritic` that ``config`` describes, sized for ``env``."""
    return actor_critic.make_network(env, env_params, config.hidden_sizes, config.orthogonal_init,
                                     config.log_std_init, getattr(config, "shared_trunk", False))


def adam(learning_rate: Float[Array, ""] | float, max_grad_norm: Float[Array, ""] | float, anneal: bool,
         num_updates: int, steps_per_update: int = 1) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam (ε = 1e-5) whose step size, if ``anneal``, falls linearly
    from ``learning_rate`` to 0 over ``num_updates`` updates of ``steps_per_update`` Adam steps each."""

    def schedule(count):
        if not anneal:
            return learning_rate
        return learning_rate * (1.0 - (count // steps_per_update) / num_updates)

    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(schedule, eps=1e-5))


def init(config: SegmentConfig, env: Environment, env_params: Any, net: ActorCritic,
         key: PRNGKeyArray) -> tuple[Any, rollout.RolloutState, PRNGKeyArray]:
    """(params, N fresh environments [N, …], the key to carry on with)."""
    key, key_env, key_net = jax.random.split(key, 3)
    env_states = actor_critic.reset(env, env_params, key_env, config.num_envs)
    params = net.init(key_net, rollout.observe(env, env_params, jax.tree.map(lambda x: x[0], env_states)))
    return params, env_states, key


class Segment(NamedTuple):
    env_states: rollout.RolloutState
    """The N environments after the segment, to continue from."""
    transitions: rollout.Transition
    """[N, T, …]."""
    batch: Batch
    """π_θ, log-probabilities, values, Â and G^λ of the segment, [N, T]."""


def collect_segment(config: SegmentConfig, env: Environment, env_params: Any, net: ActorCritic, params: Any,
                    key: PRNGKeyArray, env_states: rollout.RolloutState) -> Segment:
    """T steps of π_θ in each of the N environments, and their GAE batch (γ, λ of ``config``)."""
    env_states, transitions = actor_critic.collect(env, env_params, net, params, key, env_states, config.num_steps)
    return Segment(env_states, transitions,
                   actor_critic.make_batch(net, params, transitions, config.gamma, config.gae_lambda))


RECENT = 10
"""Finished episodes in the running mean :func:`update_recent_returns` keeps."""


class RecentReturns(NamedTuple):
    """The returns of the last ``RECENT`` finished episodes, in a ring."""

    returns: Float[Array, "K"]
    count: Int[Array, ""]
    """Episodes finished so far, all of them."""


def init_recent_returns() -> RecentReturns:
    return RecentReturns(jnp.zeros(RECENT, jnp.float32), jnp.int32(0))


def update_recent_returns(recent: RecentReturns, transitions: rollout.Transition) -> RecentReturns:
    """Add the episodes that ended in a segment [N, T], in time order, keeping the last K.

    The j-th finished episode overall goes to slot j mod K; of the new ones only those
    among the last K overall are written, so no two writes hit the same slot.
    """
    ended = jnp.swapaxes(transitions.episode_ended, 0, 1).reshape(-1)  # time-major
    values = jnp.swapaxes(transitions.episode_return, 0, 1).reshape(-1)
    index = recent.count + jnp.cumsum(ended) - 1  # overall index of each finished episode
    total = recent.count + jnp.sum(ended, dtype=jnp.int32)
    keep = ended & (index >= total - RECENT)
    slots = jnp.where(keep, index % RECENT, RECENT)  # slot RECENT is a dump for the rest
    ring = jnp.concatenate([recent.returns, jnp.zeros(1)]).at[slots].set(values)[:RECENT]
    return RecentReturns(ring, total)


def mean_recent_return(recent: RecentReturns) -> Float[Array, ""]:
    """Mean of the last min(K, count) finished episodes' returns; NaN before any has finished."""
    filled = jnp.arange(RECENT) < recent.count
    n = jnp.sum(filled)
    return jnp.where(n > 0, jnp.sum(jnp.where(filled, recent.returns, 0.0)) / jnp.maximum(n, 1), jnp.nan)


def record_episodes(recent: RecentReturns, transitions: rollout.Transition
                    ) -> tuple[RecentReturns, Float[Array, ""], Float[Array, ""]]:
    """The ring after a segment, the mean of its last K returns, and the episodes the segment finished."""
    recent = update_recent_returns(recent, transitions)
    return recent, mean_recent_return(recent), jnp.sum(transitions.episode_ended, dtype=jnp.float32)


State = Any
Init = Callable[[Any, Environment, Any, ActorCritic, PRNGKeyArray], State]
Update = Callable[[Any, Environment, Any, ActorCritic, State], tuple[State, Any]]


def make_train(config: SegmentConfig, env: Environment, env_params: Any, init_fn: Init, update_fn: Update
               ) -> Callable[[PRNGKeyArray], tuple[State, Any]]:
    """``train(key) -> (state, metrics)``: ``init_fn``, then ``config.num_updates`` calls of
    ``update_fn`` in one ``lax.scan`` (metrics get a leading update axis).

    ``jax.jit(jax.vmap(train))(keys)`` trains one agent per key in one call.
    """
    checks.check_environment(env)
    net = make_network(config, env, env_params)

    def train(key: PRNGKeyArray) -> tuple[State, Any]:
        state = init_fn(config, env, env_params, net, key)
        return jax.lax.scan(lambda s, _: update_fn(config, env, env_params, net, s), state, None,
                            config.num_updates)

    return train
