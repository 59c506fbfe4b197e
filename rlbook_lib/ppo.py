r"""Proximal policy optimisation (Schulman et al., 2017): PPO-clip and PPO with the adaptive KL penalty.

Each update collects a segment of N environments × T steps with π_θold
(:func:`rlbook_lib.actor_critic.collect`), computes GAE advantages Â_t and λ-return
targets G^λ_t once (:func:`rlbook_lib.actor_critic.make_batch`), and then takes
K epochs × M minibatch Adam steps on

.. math::

    L(\theta, \mathbf w) = -L^{\pi}(\theta) + c_v\, \mathbb{E}_t\big[\ell_v(v_{\mathbf w}(s_t), G^\lambda_t)\big]
        - c_H\, \mathbb{E}_t\big[H(\pi_\theta(\cdot\mid s_t))\big],

where L^π is the clipped surrogate L^{CLIP} (``objective="clip"``, or 0) or the KL-penalised
L^{KLPEN} (``objective="kl"``, or 1; an integer objective may be traced, so one ``vmap`` runs both), and ℓ_v the (optionally clipped) squared error of
:mod:`rlbook_lib.ppo_loss`. With the KL penalty, β is adapted after the K epochs from the
exact mean KL(π_θold ‖ π_θ) over the segment. The data are reused K times; the clip
(or the penalty) is what keeps π_θ close to π_θold while doing so.

=====  ========================================  ====================================================
sym.   code                                      meaning
=====  ========================================  ====================================================
N, T   ``num_envs``, ``num_steps``               environments, steps of each per update
K, M   ``num_epochs``, ``num_minibatches``       passes over the segment, minibatches per pass
ε      ``clip_eps``                              clip range of the ratio (and of the value change)
β      ``TrainState.kl_beta``                    KL penalty coefficient, adapted (``objective="kl"``)
=====  ========================================  ====================================================

The defaults are PureJaxRL's CartPole configuration (N = 4, T = 128, K = 4, M = 4,
64-64 tanh networks with orthogonal initialisation, Adam 2.5e-4 annealed linearly to 0,
5·10⁵ steps). Example::

    env = cartpole.CartPole(); env_params = env.default_params()
    train = jax.jit(jax.vmap(ppo.make_train(ppo.Config(), env, env_params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))
    metrics.episode_return  # [8 seeds, num_updates]: mean of the last 10 finished episodes
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import actor_critic, choices, on_policy, ppo_loss, rollout
from rlbook_lib.actor_critic import ActorCritic, Batch
from rlbook_lib.envs.base import Environment


OBJECTIVES = ("clip", "kl")
"""The policy objectives; an integer ``Config.objective`` indexes this tuple."""


@dataclasses.dataclass(frozen=True)
class Config(on_policy.SegmentConfig):
    """PPO's settings, after those of :class:`~rlbook_lib.on_policy.SegmentConfig` (N, T, the budget,
    γ, λ, the network); the defaults are PureJaxRL's for CartPole-v1."""

    num_envs: int = 4
    """N, environments stepped side by side."""
    num_epochs: int = 4
    """K, passes over each segment."""
    num_minibatches: int = 4
    """M, minibatches per pass; must divide N T."""
    objective: str | int | Int[Array, ""] = "clip"
    """"clip": L^CLIP; "kl": L^KLPEN with the adaptive β (static, one program each). Or an index into
    :data:`OBJECTIVES` (0 clip, 1 kl), which may be traced: ``jax.vmap`` over it runs both objectives in
    one compiled program (each computes both surrogates and selects one)."""
    clip_eps: float = 0.2
    """ε, the clip range of the ratio (and of the value change, with ``clip_value_loss``)."""
    kl_target: float = 0.01
    """d_targ of the adaptive KL penalty."""
    kl_beta_init: float = 1.0
    """β at the start (adaptive KL penalty)."""
    clip_value_loss: bool = True
    """Clip the value change to ±ε in the value loss. Static."""
    value_coef: float = 0.5
    """c_v, the value loss's weight."""
    entropy_coef: float = 0.01
    """c_H, the entropy bonus's weight."""
    learning_rate: float = 2.5e-4
    """Adam's step size (at the start, if annealed)."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over the updates. Static."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip before Adam."""
    normalize_advantages: bool = True
    """Standardise Â within each minibatch. Static."""

    def __post_init__(self):
        super().__post_init__()
        on_policy.check_fields(self, ("num_epochs", "num_minibatches"), (),
                               ("clip_eps", "kl_target", "kl_beta_init", "learning_rate", "max_grad_norm"))
        choices.check("objective", self.objective, OBJECTIVES)
        self.check_divides_segment("num_minibatches")

    def by_objective(self, clip: Callable[[], Any], kl: Callable[[], Any]) -> Any:
        """``clip()`` or ``kl()``, whichever ``objective`` picks (:func:`rlbook_lib.choices.select`)."""
        return choices.select(self.objective, OBJECTIVES, lambda name: {"clip": clip, "kl": kl}[name]())

    @property
    def minibatch_size(self) -> int:
        """N T / M samples per gradient step."""
        return self.steps_per_update // self.num_minibatches


PENDULUM = Config(num_envs=8, num_steps=256, total_steps=200_000, num_epochs=10, num_minibatches=32, gamma=0.95,
                  learning_rate=1e-3, entropy_coef=0.0, clip_value_loss=False)
"""Settings that swing Pendulum-v1 up with a Gaussian policy (tests/test_ppo.py): larger segments,
minibatches of 64 and 10 epochs, γ = 0.95, and no value clipping (Pendulum's returns are in the
hundreds, so a value change of ±ε = 0.2 per update would stall the critic)."""


class TrainState(NamedTuple):
    params: Any
    """θ and 𝐰 (one parameter tree: the actor's and the critic's weights)."""
    opt_state: optax.OptState
    env_states: rollout.RolloutState
    """The N environments, [N, …], carried from one segment to the next."""
    recent: on_policy.RecentReturns
    """The last 10 finished episodes' returns."""
    kl_beta: Float[Array, ""]
    """β of the KL penalty (unused by PPO-clip)."""
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
    approx_kl: Float[Array, ""]
    """k₃ estimate of KL(π_old ‖ π_θ), mean over the update's gradient steps."""
    clip_fraction: Float[Array, ""]
    kl: Float[Array, ""]
    """Exact mean KL(π_old ‖ π_new) over the segment after the K epochs (d of the KL rule)."""
    kl_beta: Float[Array, ""]
    """β used in this update's penalty."""
    explained_variance: Float[Array, ""]
    """1 − Var[G^λ − v]/Var[G^λ] of the critic that collected the segment."""


def loss(config: Config, net: ActorCritic, params: Any, batch: Batch, kl_beta: Float[Array, ""] | float
         ) -> tuple[Float[Array, ""], ppo_loss.LossInfo]:
    """The PPO loss of the module docstring on a (flat) minibatch [B]."""
    dist, value = net.apply(params, batch.transitions.obs)
    log_ratio = dist.log_prob(batch.transitions.action) - batch.log_prob
    ratio = jnp.exp(log_ratio)
    advantage = batch.advantage
    if config.normalize_advantages:
        advantage = actor_critic.normalize(advantage)
    clipped = lambda: ppo_loss.clipped_surrogate(ratio, advantage, config.clip_eps)
    penalized = lambda: ppo_loss.kl_penalized_surrogate(ratio, advantage, batch.dist.kl(dist), kl_beta)
    surrogate = config.by_objective(clipped, penalized)
    clip = config.clip_eps if config.clip_value_loss else None
    value_loss = jnp.mean(ppo_loss.value_loss(value, batch.value, batch.target, clip))
    entropy = jnp.mean(dist.entropy())
    policy_loss = -jnp.mean(surrogate)
    total = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
    info = ppo_loss.LossInfo(policy_loss, value_loss, entropy, ppo_loss.approx_kl_k3(log_ratio),
                             ppo_loss.clip_fraction(ratio, config.clip_eps))
    return total, info


def optimizer(config: Config) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam (ε = 1e-5) with a step size annealed linearly per update
    (constant over the update's K M minibatch steps)."""
    return on_policy.adam(config.learning_rate, config.max_grad_norm, config.anneal_lr, config.num_updates,
                          config.num_epochs * config.num_minibatches)


def init(config: Config, env: Environment, env_params: Any, net: ActorCritic, key: PRNGKeyArray) -> TrainState:
    params, env_states, key = on_policy.init(config, env, env_params, net, key)
    return TrainState(params, optimizer(config).init(params), env_states, on_policy.init_recent_returns(),
                      jnp.float32(config.kl_beta_init), key)


def learn(config: Config, net: ActorCritic, params: Any, opt_state: optax.OptState, batch: Batch,
          kl_beta: Float[Array, ""], key: PRNGKeyArray) -> tuple[Any, optax.OptState, ppo_loss.LossInfo]:
    """K epochs of M minibatch steps on one segment; the info is averaged over the K M steps."""
    tx = optimizer(config)
    grad_fn = jax.grad(lambda p, mb: loss(config, net, p, mb, kl_beta), has_aux=True)

    def minibatch_step(carry, minibatch):
        params, opt_state = carry
        grads, info = grad_fn(params, minibatch)
        steps, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, steps), opt_state), info

    def epoch(carry, key):
        return jax.lax.scan(minibatch_step, carry, actor_critic.minibatches(key, batch, config.num_minibatches))

    (params, opt_state), info = jax.lax.scan(epoch, (params, opt_state),
                                             jax.random.split(key, config.num_epochs))
    return params, opt_state, jax.tree.map(jnp.mean, info)


def update(config: Config, env: Environment, env_params: Any, net: ActorCritic,
           state: TrainState) -> tuple[TrainState, Metrics]:
    """Collect one segment, learn from it for K epochs, adapt β (``objective="kl"``)."""
    key, key_collect, key_learn = jax.random.split(state.key, 3)
    segment = on_policy.collect_segment(config, env, env_params, net, state.params, key_collect, state.env_states)
    batch = segment.batch
    params, opt_state, info = learn(config, net, state.params, state.opt_state, batch, state.kl_beta, key_learn)
    kl = jnp.mean(batch.dist.kl(net.apply(params, batch.transitions.obs)[0]))
    kl_beta = config.by_objective(lambda: state.kl_beta,
                                  lambda: ppo_loss.adaptive_kl_beta(state.kl_beta, kl, config.kl_target))
    recent, episode_return, episodes = on_policy.record_episodes(state.recent, segment.transitions)
    metrics = Metrics(episode_return, episodes, *info[:3], info.approx_kl, info.clip_fraction, kl, state.kl_beta,
                      actor_critic.explained_variance(batch.value, batch.target))
    return TrainState(params, opt_state, segment.env_states, recent, kl_beta, key), metrics


make_network = on_policy.make_network


def make_train(config: Config, env: Environment, env_params: Any):
    """``train(key) -> (TrainState, Metrics)``: ``config.num_updates`` updates in one ``lax.scan``.

    ``jax.jit(jax.vmap(train))(keys)`` trains one agent per key in one call.
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be a ppo.Config, got {type(config).__name__}")
    return on_policy.make_train(config, env, env_params, init, update)
