r"""Trust region policy optimisation, TRPO (Schulman et al., 2015), with a GAE critic.

Each update collects a segment of N environments × T steps with π_θold, computes GAE
advantages Â_t (:func:`rlbook_lib.actor_critic.make_batch`), and takes one
natural-gradient step on the surrogate inside the KL trust region
(:mod:`rlbook_lib.natural_gradient`):

.. math::

    \max_\theta\ L(\theta) = \frac{1}{NT}\sum_{i,t} \frac{\pi_\theta(a^i_t\mid s^i_t)}{\pi_{\theta_\text{old}}(a^i_t\mid s^i_t)}\,\hat A^i_t
    \quad\text{s.t.}\quad \bar D(\theta) = \frac{1}{NT}\sum_{i,t}
        \mathrm{KL}\big(\pi_{\theta_\text{old}}(\cdot\mid s^i_t)\,\|\,\pi_\theta(\cdot\mid s^i_t)\big) \le \delta:

conjugate gradient gives x ≈ F⁻¹∇L from Fisher-vector products, the step
√(2δ / xᵀFx) x reaches the boundary of the quadratic model of D̄, and a backtracking
line search halves it until D̄ ≤ δ and L has improved (or keeps θ_old). The critic
v_𝐰 is then fitted to the λ-returns by K epochs of M minibatch Adam steps, as in PPO.

The actor and the critic share one parameter tree. The natural step is taken on the
whole tree: neither L nor D̄ depends on the critic's weights, so their rows of F and
entries of ∇L are 0, and with damping λ > 0 conjugate gradient leaves them at exactly 0.
The critic's Adam step, in turn, sees a zero gradient for the actor's weights, and Adam
moves a weight whose gradients have all been 0 by exactly 0.

Example::

    env = cartpole.CartPole(); env_params = env.default_params()
    train = jax.jit(jax.vmap(trpo.make_train(trpo.Config(), env, env_params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))
    metrics.kl  # [8 seeds, num_updates], each ≤ δ = config.max_kl
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rlbook_lib import actor_critic, checks, natural_gradient, ppo_loss, rollout
from rlbook_lib.actor_critic import ActorCritic, Batch
from rlbook_lib.envs.base import Environment


@dataclasses.dataclass(frozen=True)
class Config:
    """TRPO's settings."""

    num_envs: int = 8
    """N, environments stepped side by side."""
    num_steps: int = 128
    """T, steps of each environment per update."""
    total_steps: int = 500_000
    """Environment steps of the whole run, all N together (rounded down to whole updates)."""
    gamma: float = 0.99
    """γ, the discount."""
    gae_lambda: float = 0.95
    """λ of GAE."""
    max_kl: float = 0.01
    """δ, the bound on the mean KL(π_old ‖ π_new) of one update."""
    cg_iterations: int = 10
    """Conjugate-gradient iterations for x ≈ F⁻¹ g."""
    cg_damping: float = 0.1
    """λ in (F + λI) x = g."""
    max_backtracks: int = 10
    """Step fractions 1, ½, ¼, … tried by the line search."""
    accept_ratio: float = 0.1
    """The line search needs an improvement of at least this share of the linear prediction."""
    normalize_advantages: bool = True
    """Standardise Â over each segment. Static."""
    value_learning_rate: float = 1e-3
    """Adam's step size for the critic."""
    value_epochs: int = 5
    """K, passes of the critic over each segment."""
    value_minibatches: int = 4
    """M, minibatches per pass; must divide N T."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the hidden tanh layers of the actor and of the critic."""
    orthogonal_init: bool = True
    """Orthogonal initialisation (see :class:`rlbook_lib.actor_critic.ActorCritic`). Static."""
    log_std_init: float = 0.0
    """Initial log σ of a Gaussian policy (continuous actions)."""

    def __post_init__(self):
        actor_critic.check_config_fields(
            self, ("num_envs", "num_steps", "total_steps", "cg_iterations", "max_backtracks", "value_epochs",
                   "value_minibatches"), ("gamma", "gae_lambda", "accept_ratio"),
            ("max_kl", "cg_damping", "value_learning_rate"))
        if (self.num_envs * self.num_steps) % self.value_minibatches:
            raise ValueError(f"value_minibatches ({self.value_minibatches}) must divide N T = "
                             f"{self.num_envs * self.num_steps}")
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


class TrainState(NamedTuple):
    params: Any
    """θ and 𝐰 (one parameter tree)."""
    value_opt_state: optax.OptState
    """Adam's moments for the critic's steps."""
    env_states: rollout.RolloutState
    recent: actor_critic.RecentReturns
    key: PRNGKeyArray


class Metrics(NamedTuple):
    """Per update; every leaf has a leading update axis after ``train``."""

    episode_return: Float[Array, ""]
    """Mean return of the last 10 finished episodes (NaN before the first ends)."""
    episodes: Float[Array, ""]
    """Episodes finished in this update's segment."""
    surrogate_improvement: Float[Array, ""]
    """L(θ_new) − L(θ_old) (0 if the line search kept θ_old)."""
    expected_improvement: Float[Array, ""]
    """gᵀΔ*, the linear model's prediction for the full step."""
    kl: Float[Array, ""]
    """D̄(θ_new), the mean KL(π_old ‖ π_new) over the segment; at most δ."""
    accepted: Bool[Array, ""]
    """The line search found a step."""
    step_fraction: Float[Array, ""]
    """The accepted fraction of the full step (0 if none)."""
    value_loss: Float[Array, ""]
    entropy: Float[Array, ""]
    explained_variance: Float[Array, ""]


class PolicyStep(NamedTuple):
    params: Any
    search: natural_gradient.LineSearchResult
    expected_improvement: Float[Array, ""]


def surrogate_and_kl(net: ActorCritic, batch: Batch, advantage: Array):
    """L(θ) and D̄(θ) of the module docstring, as functions of the parameters."""

    def surrogate(params):
        dist = net.apply(params, batch.transitions.obs)[0]
        return jnp.mean(jnp.exp(dist.log_prob(batch.transitions.action) - batch.log_prob) * advantage)

    def mean_kl(params):
        return jnp.mean(batch.dist.kl(net.apply(params, batch.transitions.obs)[0]))

    return surrogate, mean_kl


class LossInfo(NamedTuple):
    surrogate: Float[Array, ""]
    """L(θ)."""
    kl: Float[Array, ""]
    """D̄(θ), the mean KL(π_old ‖ π_θ) over the batch."""
    value_loss: Float[Array, ""]
    """Mean ½ (v_𝐰(s) − G^λ)²."""


def _advantage(config: Config, batch: Batch) -> Array:
    return actor_critic.normalize(batch.advantage) if config.normalize_advantages else batch.advantage


def loss(config: Config, net: ActorCritic, params: Any, batch: Batch) -> tuple[Float[Array, ""], LossInfo]:
    """−L(θ), what the trust-region step decreases, with L, D̄ and the value loss as info.

    TRPO does not follow this loss's gradient: it takes the natural step of :func:`policy_step`."""
    surrogate, mean_kl = surrogate_and_kl(net, batch, _advantage(config, batch))
    value = surrogate(params)
    return -value, LossInfo(value, mean_kl(params), value_loss(net, params, batch))


def policy_step(config: Config, net: ActorCritic, params: Any, batch: Batch) -> PolicyStep:
    """The natural-gradient step with line search on θ (module docstring)."""
    surrogate, mean_kl = surrogate_and_kl(net, batch, _advantage(config, batch))
    theta, unravel = ravel_pytree(params)
    flat_surrogate, flat_kl = (lambda t: surrogate(unravel(t))), (lambda t: mean_kl(unravel(t)))
    fvp = lambda v: natural_gradient.fisher_vector_product(flat_kl, theta, v, config.cg_damping)  # noqa: E731
    step = natural_gradient.natural_step(fvp, jax.grad(flat_surrogate)(theta), config.max_kl, config.cg_iterations)
    search = natural_gradient.backtracking_line_search(
        flat_surrogate, flat_kl, theta, step.step, step.expected_improvement, config.max_kl,
        config.max_backtracks, 0.5, config.accept_ratio)
    return PolicyStep(unravel(search.theta), search, step.expected_improvement)


def value_loss(net: ActorCritic, params: Any, batch: Batch) -> Float[Array, ""]:
    """Mean ½ (v_𝐰(s) − G^λ)² over a batch with any leading axes."""
    return jnp.mean(ppo_loss.value_loss(net.apply(params, batch.transitions.obs)[1], batch.value, batch.target, None))


def fit_value(config: Config, net: ActorCritic, params: Any, opt_state: optax.OptState, batch: Batch,
              key: PRNGKeyArray) -> tuple[Any, optax.OptState, Float[Array, ""]]:
    """K epochs of M minibatch Adam steps on the value loss; returns the mean loss over the steps."""
    tx = optax.adam(config.value_learning_rate)

    def step(carry, minibatch):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(lambda p: value_loss(net, p, minibatch))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def epoch(carry, key):
        return jax.lax.scan(step, carry, actor_critic.minibatches(key, batch, config.value_minibatches))

    (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state),
                                               jax.random.split(key, config.value_epochs))
    return params, opt_state, jnp.mean(losses)


def init(config: Config, env: Environment, env_params: Any, net: ActorCritic, key: PRNGKeyArray) -> TrainState:
    key, key_env, key_net = jax.random.split(key, 3)
    env_states = actor_critic.reset(env, env_params, key_env, config.num_envs)
    params = net.init(key_net, rollout.observe(env, env_params, jax.tree.map(lambda x: x[0], env_states)))
    return TrainState(params, optax.adam(config.value_learning_rate).init(params), env_states,
                      actor_critic.init_recent_returns(), key)


def update(config: Config, env: Environment, env_params: Any, net: ActorCritic,
           state: TrainState) -> tuple[TrainState, Metrics]:
    """Collect one segment, one trust-region step on θ, then fit v_𝐰."""
    key, key_collect, key_value = jax.random.split(state.key, 3)
    env_states, transitions = actor_critic.collect(env, env_params, net, state.params, key_collect,
                                                   state.env_states, config.num_steps)
    batch = actor_critic.make_batch(net, state.params, transitions, config.gamma, config.gae_lambda)
    step = policy_step(config, net, state.params, batch)
    params, opt_state, v_loss = fit_value(config, net, step.params, state.value_opt_state, batch, key_value)
    recent = actor_critic.update_recent_returns(state.recent, transitions)
    search = step.search
    metrics = Metrics(actor_critic.mean_recent_return(recent), jnp.sum(transitions.episode_ended, dtype=jnp.float32),
                      search.improvement, step.expected_improvement, search.kl, search.accepted,
                      search.step_fraction, v_loss, jnp.mean(batch.dist.entropy()),
                      actor_critic.explained_variance(batch.value, batch.target))
    return TrainState(params, opt_state, env_states, recent, key), metrics


def make_network(config: Config, env: Environment, env_params: Any) -> ActorCritic:
    return actor_critic.make_network(env, env_params, config.hidden_sizes, config.orthogonal_init,
                                     config.log_std_init)


def make_train(config: Config, env: Environment, env_params: Any):
    """``train(key) -> (TrainState, Metrics)``: ``config.num_updates`` updates in one ``lax.scan``.

    ``jax.jit(jax.vmap(train))(keys)`` trains one agent per key in one call.
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be a trpo.Config, got {type(config).__name__}")
    checks.check_environment(env)
    net = make_network(config, env, env_params)

    def train(key: PRNGKeyArray) -> tuple[TrainState, Metrics]:
        state = init(config, env, env_params, net, key)
        return jax.lax.scan(lambda s, _: update(config, env, env_params, net, s), state, None, config.num_updates)

    return train
