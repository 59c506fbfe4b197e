r"""RLHF with PPO on tokens: the third stage of the pipeline of Ziegler et al. (2019) and Ouyang et al. (2022).

Generating a reply is an episode (:mod:`rlbook_lib.llm.generation`): the state s_t is the
prompt and the tokens so far, the action a_t = y_t the next token, and the episode ends
with EOS or at the end of the context. Rewards arrive per token (:func:`per_token_rewards`):

.. math::

    r_t = -\beta\,\big(\log \pi_\theta(y_t \mid s_t) - \log \pi_{\text{ref}}(y_t \mid s_t)\big)
          + [t = t_{\text{last}}]\; r_\phi(x, y),

the k₁ estimate of the KL to the reference (pretrained) model on every token and the score
r_φ (a reward model, or any score function) on the last one
(:func:`rlbook_lib.llm.kl_control.kl_shaped_rewards`). A value network V_w(s_t) (a
transformer with a scalar head, :class:`rlbook_lib.llm.reward_model.RewardModel`, read at
the position *before* each action) gives GAE over the tokens of each reply
(:func:`token_advantages`, with γ = 1 by default); the end of the reply is terminal, the
end of the context too (the score is paid there, nothing follows). PPO's clipped surrogate
(:func:`rlbook_lib.ppo_loss.clipped_surrogate`) and clipped value loss are averaged over
the reply tokens of a minibatch (:func:`loss`). After every batch a KL controller
(:mod:`rlbook_lib.llm.kl_control`, fixed or Ziegler et al.'s adaptive one) updates β from
the batch's mean sequence KL.

One RL step (:func:`rl_step`) - generate, score, advantages, PPO epochs, β - runs under a
single ``jit``; ``make_train(config, ...) -> train(key, init_beta)`` scans it, and
``jax.jit(jax.vmap(train))`` trains one policy per seed (or per β).

==============  =====================  =======  =============================================
symbol          code                   shape    meaning
==============  =====================  =======  =============================================
y, m_t          ``tokens``, ``mask``   [B, L]   prompt and reply; m_t = 1 on reply tokens
log π_θold      ``old_logp``           [B, L]   the sampling policy's token log-probabilities
log π_ref       ``ref_logp``           [B, L]   the reference model's
V_w(s_t)        ``values``             [B, L]   value of the state before token t
Â_t, G_t        ``advantages``, ...    [B, L]   GAE and its λ-return Â_t + V_w(s_t)
==============  =====================  =======  =============================================
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int

from rlbook_lib import checks, ppo_loss, returns
from rlbook_lib import kl as kl_divergence
from rlbook_lib.llm import generation, kl_control, reward_model
from rlbook_lib.llm import transformer as transformer_lib


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of PPO-RLHF. Floats may be vmapped; the rest fix shapes or code paths."""

    num_updates: int = 100
    """RL steps: each samples one batch, then runs the PPO epochs on it."""
    batch_size: int = 64
    """B, episodes (prompt, reply) per step; prompts drawn uniformly from the prompt set."""
    num_epochs: int = 4
    """PPO passes over each batch."""
    num_minibatches: int = 4
    """Minibatches per pass (B must be divisible by it)."""
    learning_rate: float = 3e-4
    """Adam step size of the policy and the value network."""
    max_grad_norm: float = 1.0
    """Gradients are rescaled to at most this global norm."""
    clip_eps: float = 0.2
    """ε of the clipped surrogate and of the clipped value loss."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    gamma: float = 1.0
    """γ over tokens (1: a reply's return is its total reward)."""
    lambda_: float = 0.95
    """λ of GAE over tokens."""
    init_beta: float = 0.1
    """β₀ of the KL penalty (``train``'s default; vmap ``train(key, init_beta)`` to sweep it)."""
    adaptive_kl: bool = False
    """Ziegler et al.'s adaptive controller instead of a fixed β."""
    kl_target: float = 6.0
    """KL_target (nats per reply) of the adaptive controller."""
    kl_horizon: float = 10_000.0
    """H (episodes) of the adaptive controller."""
    whiten_advantages: bool = True
    """Normalise the advantages of each batch to mean 0, std 1 over reply tokens."""
    temperature: float = 1.0
    """Sampling temperature (1: sample π_θ itself, as the policy gradient assumes)."""

    def __post_init__(self):
        for name in ("num_updates", "batch_size", "num_epochs", "num_minibatches"):
            checks.check_positive_int(name, getattr(self, name))
        if self.batch_size % self.num_minibatches:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by "
                             f"num_minibatches={self.num_minibatches}")
        checks.check_hyperparameters(gamma=self.gamma, lambda_=self.lambda_, step_size=self.learning_rate)
        kl_control.fixed_kl_controller(self.init_beta)  # ValueError if β₀ < 0
        if self.adaptive_kl:
            kl_control.adaptive_kl_controller(self.init_beta, self.kl_target, self.kl_horizon)


class Params(NamedTuple):
    policy: Any
    """θ, parameters of the policy transformer."""
    value: Any
    """w, parameters of the value network."""


class TrainState(NamedTuple):
    params: Params
    opt_state: Any
    kl: kl_control.KLControllerState


class Batch(NamedTuple):
    """One RL step's episodes with everything PPO needs (leaves ``[B, L]`` or ``[B]``)."""

    tokens: Int[Array, "B L"]
    mask: Bool[Array, "B L"]
    old_logp: Float[Array, "B L"]
    ref_logp: Float[Array, "B L"]
    values: Float[Array, "B L"]
    rewards: Float[Array, "B L"]
    """r_t of :func:`per_token_rewards`."""
    advantages: Float[Array, "B L"]
    returns: Float[Array, "B L"]
    score: Float[Array, "B"]
    """r_φ(x, y), the proxy reward."""
    true_reward: Float[Array, "B"]
    """r*(x, y), for the record only (never optimised)."""


class Metrics(NamedTuple):
    """One entry per RL step (batch means, measured before the step's update)."""

    true_reward: Float[Array, "U"]
    score: Float[Array, "U"]
    kl: Float[Array, "U"]
    """Mean sequence log-ratio log π_θ(y|x) − log π_ref(y|x): the k₁ estimate of KL(π_θ ‖ π_ref)."""
    beta: Float[Array, "U"]
    """β used for this batch's rewards."""
    length: Float[Array, "U"]
    """Mean reply length in tokens (EOS included)."""
    policy_loss: Float[Array, "U"]
    value_loss: Float[Array, "U"]
    approx_kl: Float[Array, "U"]
    """Mean k₃ estimate of KL(π_θold ‖ π_θ) per token over the last epoch."""
    clip_fraction: Float[Array, "U"]


def per_token_rewards(logp: Float[Array, "B L"], ref_logp: Float[Array, "B L"], mask: Bool[Array, "B L"],
                      score: Float[Array, "B"], beta) -> Float[Array, "B L"]:
    """r_t = −β m_t (log π_θ − log π_ref) + [t = t_last] score, for each reply of a batch."""
    return jax.vmap(kl_control.kl_shaped_rewards, in_axes=(0, 0, 0, 0, None))(logp, ref_logp, mask, score, beta)


def token_advantages(rewards: Float[Array, "L"], values: Float[Array, "L"], mask: Bool[Array, "L"],
                     gamma: float, lambda_: float) -> tuple[Float[Array, "L"], Float[Array, "L"]]:
    r"""(Â_t, G^λ_t = Â_t + V(s_t)) of one reply by :func:`rlbook_lib.returns.gae` over its tokens.

    Â_t = δ_t + γλ Â_{t+1}, δ_t = r_t + γ V(s_{t+1}) − V(s_t), with the reply's last token
    terminal (discount 0 there). Positions outside the reply give 0 and do not reach it.
    """
    mask = jnp.asarray(mask, bool)
    positions = jnp.arange(mask.shape[-1])
    last = jnp.max(jnp.where(mask, positions, -1))
    discounts = jnp.where(mask & (positions != last), gamma, 0.0)
    values = jnp.where(mask, values, 0.0)
    advantages = returns.gae(jnp.where(mask, rewards, 0.0), discounts, values, jnp.float32(0.0), lambda_)
    advantages = jnp.where(mask, advantages, 0.0)
    return advantages, jnp.where(mask, advantages + values, 0.0)


def value_estimates(value_model: reward_model.RewardModel, value_params, tokens: Int[Array, "B L"],
                    mask: Bool[Array, "B L"]) -> Float[Array, "B L"]:
    """V_w(s_t) at each reply position t: the value head at position t − 1 (the state before y_t)."""
    heads = value_model.apply(value_params, tokens)
    shifted = jnp.concatenate([jnp.zeros_like(heads[:, :1]), heads[:, :-1]], axis=1)
    return jnp.where(mask, shifted, 0.0)


def _masked_mean(x, mask):
    mask = jnp.asarray(mask, jnp.float32)
    return jnp.sum(mask * x) / jnp.maximum(jnp.sum(mask), 1.0)


def sample(key: jax.Array, config: Config, policy: transformer_lib.Transformer, policy_params,
           prompts: Int[Array, "P p"]) -> generation.Generation:
    """B replies of π_θ to prompts drawn uniformly from ``prompts``."""
    prompt_key, sample_key = jax.random.split(key)
    chosen = prompts[jax.random.randint(prompt_key, (config.batch_size,), 0, prompts.shape[0])]
    return generation.generate(policy, policy_params, chosen, sample_key, temperature=config.temperature)


def prepare(tokens: Int[Array, "B L"], mask: Bool[Array, "B L"], score: Float[Array, "B"],
            true_reward: Float[Array, "B"], config: Config, policy, value_model, params: Params, ref_params,
            beta) -> Batch:
    """Per-token rewards, values and advantages of scored replies."""
    # log π_θold by the same full pass the loss uses, so the first ratio is exactly 1.
    old_logp = generation.token_log_probs(policy, params.policy, tokens, mask)
    ref_logp = generation.token_log_probs(policy, ref_params, tokens, mask)
    values = value_estimates(value_model, params.value, tokens, mask)
    rewards = per_token_rewards(old_logp, ref_logp, mask, score, beta)
    advantages, targets = jax.vmap(token_advantages, in_axes=(0, 0, 0, None, None))(
        rewards, values, mask, config.gamma, config.lambda_)
    if config.whiten_advantages:
        mean = _masked_mean(advantages, mask)
        std = jnp.sqrt(_masked_mean(jnp.square(advantages - mean), mask))
        advantages = jnp.where(mask, (advantages - mean) / (std + 1e-8), 0.0)
    return Batch(tokens, mask, old_logp, ref_logp, values, rewards, advantages, targets, score, true_reward)


def collect(key: jax.Array, config: Config, policy: transformer_lib.Transformer, value_model, params: Params,
            ref_params, prompts: Int[Array, "P p"], score_fn, true_reward_fn, beta) -> Batch:
    """:func:`sample` B replies, score them with ``score_fn`` (and ``true_reward_fn``), :func:`prepare`."""
    gen = sample(key, config, policy, params.policy, prompts)
    return prepare(gen.tokens, gen.mask, score_fn(gen.tokens, gen.mask), true_reward_fn(gen.tokens, gen.mask),
                   config, policy, value_model, params, ref_params, beta)


def loss(params: Params, batch: Batch, config: Config, policy, value_model):
    """−(clipped surrogate) + c_v · (clipped value loss), each averaged over the reply tokens.

    At θ = θold the surrogate's gradient is −mean_t Â_t ∇ log π_θ(y_t|s_t), the policy gradient.
    """
    logp = generation.token_log_probs(policy, params.policy, batch.tokens, batch.mask)
    log_ratio = jnp.where(batch.mask, logp - batch.old_logp, 0.0)
    ratio = jnp.exp(log_ratio)
    policy_loss = -_masked_mean(ppo_loss.clipped_surrogate(ratio, batch.advantages, config.clip_eps), batch.mask)
    values = value_estimates(value_model, params.value, batch.tokens, batch.mask)
    value_loss = _masked_mean(ppo_loss.value_loss(values, batch.values, batch.returns, config.clip_eps), batch.mask)
    info = (policy_loss, value_loss, _masked_mean(kl_divergence.k3(log_ratio), batch.mask),
            _masked_mean((jnp.abs(ratio - 1.0) > config.clip_eps).astype(jnp.float32), batch.mask))
    return policy_loss + config.vf_coef * value_loss, info


def make_optimizer(config: Config) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))


def learn(state: TrainState, batch: Batch, key: jax.Array, config: Config, policy, value_model,
          controller: kl_control.KLController) -> tuple[TrainState, Metrics]:
    """``num_epochs`` × ``num_minibatches`` PPO steps on a prepared batch, then update β."""
    optimizer = make_optimizer(config)
    size = config.batch_size // config.num_minibatches

    def minibatch_step(carry, index):
        params, opt_state = carry
        part = jax.tree.map(lambda x: x[index], batch)
        grads, info = jax.grad(loss, has_aux=True)(params, part, config, policy, value_model)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), info

    def epoch(carry, key):
        order = jax.random.permutation(key, config.batch_size).reshape(config.num_minibatches, size)
        return jax.lax.scan(minibatch_step, carry, order)

    (params, opt_state), info = jax.lax.scan(epoch, (state.params, state.opt_state),
                                             jax.random.split(key, config.num_epochs))
    last = jax.tree.map(lambda x: jnp.mean(x[-1]), info)
    kl = jnp.mean(jnp.sum(jnp.where(batch.mask, batch.old_logp - batch.ref_logp, 0.0), axis=-1))
    metrics = Metrics(jnp.mean(batch.true_reward), jnp.mean(batch.score), kl, state.kl.beta,
                      jnp.mean(jnp.sum(batch.mask, axis=-1)), *last)
    kl_state = controller.update(state.kl, kl, config.batch_size)
    return TrainState(params, opt_state, kl_state), metrics


def make_controller(config: Config, init_beta, kl_horizon=None) -> kl_control.KLController:
    """The fixed or adaptive KL controller of ``config``, starting at ``init_beta`` (the adaptive one
    with horizon ``kl_horizon``, default ``config.kl_horizon``; H = ∞ holds β fixed)."""
    if config.adaptive_kl:
        horizon = config.kl_horizon if kl_horizon is None else kl_horizon
        return kl_control.adaptive_kl_controller(init_beta, config.kl_target, horizon)
    return kl_control.fixed_kl_controller(init_beta)


def init_state(config: Config, ref_params, value_init, controller: kl_control.KLController) -> TrainState:
    """The policy at π_ref, the value network at ``value_init``, fresh Adam moments, β₀."""
    params = Params(ref_params, value_init)
    return TrainState(params, make_optimizer(config).init(params), controller.init())


def rl_step(state: TrainState, key: jax.Array, config: Config, policy, value_model, ref_params, prompts,
            score_fn, true_reward_fn, controller: kl_control.KLController) -> tuple[TrainState, Metrics]:
    """One RL step: :func:`collect` (generate, score, advantages), then :func:`learn`."""
    collect_key, learn_key = jax.random.split(key)
    batch = collect(collect_key, config, policy, value_model, state.params, ref_params, prompts, score_fn,
                    true_reward_fn, state.kl.beta)
    return learn(state, batch, learn_key, config, policy, value_model, controller)


def make_train(config: Config, policy: transformer_lib.Transformer, ref_params,
               value_model: reward_model.RewardModel, value_init, prompts: Int[Array, "P p"],
               score_fn: Callable, true_reward_fn: Callable):
    """``train(key, init_beta=config.init_beta, kl_horizon=None) -> (TrainState, Metrics)``: PPO-RLHF from π_ref.

    With ``adaptive_kl`` both β₀ and the horizon H may be vmapped; H = ``jnp.inf`` keeps β
    fixed, so fixed and adaptive runs share one compiled program.

    The policy starts at ``ref_params`` (the pretrained model, also the KL reference); the
    value network at ``value_init`` (e.g. :func:`rlbook_lib.llm.reward_model.init_params` with
    the pretrained trunk, or the reward model's parameters as in InstructGPT).
    ``score_fn(tokens, mask) -> [B]`` is optimised; ``true_reward_fn`` (same signature) is only
    logged. Both run inside the jitted step, so they must be JAX functions.
    """
    def train(key: jax.Array, init_beta=config.init_beta, kl_horizon=None) -> tuple[TrainState, Metrics]:
        controller = make_controller(config, init_beta, kl_horizon)
        state = init_state(config, ref_params, value_init, controller)

        def step(state, key):
            return rl_step(state, key, config, policy, value_model, ref_params, prompts, score_fn,
                           true_reward_fn, controller)

        return jax.lax.scan(step, state, jax.random.split(key, config.num_updates))

    return train
