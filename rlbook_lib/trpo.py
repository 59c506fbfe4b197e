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

from rlbook_lib import actor_critic, natural_gradient, on_policy, ppo_loss, rollout
from rlbook_lib.actor_critic import ActorCritic, Batch
from rlbook_lib.envs.base import Environment


@dataclasses.dataclass(frozen=True)
class Config(on_policy.SegmentConfig):
    """TRPO's settings, after those of :class:`~rlbook_lib.on_policy.SegmentConfig` (N, T, the budget,
    γ, λ, the network)."""

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

    def __post_init__(self):
        super().__post_init__()
        on_policy.check_fields(self, ("cg_iterations", "max_backtracks", "value_epochs", "value_minibatches"),
                               ("accept_ratio",), ("max_kl", "cg_damping", "value_learning_rate"))
        self.check_divides_segment("value_minibatches")


class TrainState(NamedTuple):
    params: Any
    """θ and 𝐰 (one parameter tree)."""
    value_opt_state: optax.OptState
    """Adam's moments for the critic's steps."""
    env_states: rollout.RolloutState
    recent: on_policy.RecentReturns
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
    params, env_states, key = on_policy.init(config, env, env_params, net, key)
    return TrainState(params, optax.adam(config.value_learning_rate).init(params), env_states,
                      on_policy.init_recent_returns(), key)


def update(config: Config, env: Environment, env_params: Any, net: ActorCritic,
           state: TrainState) -> tuple[TrainState, Metrics]:
    """Collect one segment, one trust-region step on θ, then fit v_𝐰."""
    key, key_collect, key_value = jax.random.split(state.key, 3)
    segment = on_policy.collect_segment(config, env, env_params, net, state.params, key_collect, state.env_states)
    batch = segment.batch
    step = policy_step(config, net, state.params, batch)
    params, opt_state, v_loss = fit_value(config, net, step.params, state.value_opt_state, batch, key_value)
    recent, episode_return, episodes = on_policy.record_episodes(state.recent, segment.transitions)
    search = step.search
    metrics = Metrics(episode_return, episodes, search.improvement, step.expected_improvement, search.kl,
                      search.accepted, search.step_fraction, v_loss, jnp.mean(batch.dist.entropy()),
                      actor_critic.explained_variance(batch.value, batch.target))
    return TrainState(params, opt_state, segment.env_states, recent, key), metrics


make_network = on_policy.make_network


def make_train(config: Config, env: Environment, env_params: Any):
    """``train(key) -> (TrainState, Metrics)``: ``config.num_updates`` updates in one ``lax.scan``.

    ``jax.jit(jax.vmap(train))(keys)`` trains one agent per key in one call.
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be a trpo.Config, got {type(config).__name__}")
    return on_policy.make_train(config, env, env_params, init, update)
