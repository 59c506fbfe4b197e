r"""REINFORCE, RLOO and GRPO for a language model, in one training loop with a verifiable reward.

No critic: for each of P prompts the policy writes k replies y_1..y_k, a reward function
scores each whole reply (e.g. exact match on a sum, :func:`rlbook_lib.llm.rewards.arithmetic_reward`),
and a *baseline* turns rewards into advantages Â_i. The three estimators differ only there
(:func:`advantages`):

==============  ==================================================  =================================
estimator       Â_i                                                 baseline
==============  ==================================================  =================================
``reinforce``   r_i − b̄, b̄ ← δ b̄ + (1 − δ) mean(r) after the step   moving average of past batches
``rloo``        r_i − (1/(k−1)) Σ_{j≠i} r_j                          the other replies to the prompt
``grpo``        (r_i − mean r)/(std r + ε)                           the group, scaled by its std
==============  ==================================================  =================================

All three share the loss of :func:`rlbook_lib.llm.grpo.grpo_loss`: the clipped ratio
ρ_t = π_θ/π_θold times Â_i on every token of reply i, plus β k₃ to the reference model, with
the token average of ``config.aggregation``. ``"sequence_sum"`` sums a reply's tokens and
averages over replies, −(1/B) Σ_i Â_i log π_θ(y_i|x) at ρ = 1: the sequence-level REINFORCE
estimator (:func:`rlbook_lib.llm.rloo.reinforce_loss`). With ``num_inner = 1`` every update
is on fresh samples, so ρ = 1 in value and the clip never acts; with ``num_inner > 1`` each
batch is reused for several Adam steps and the clip bounds how far they go.

``make_train(config, policy, ref_params, train_prompts, eval_prompts, reward_fn) -> train(key)``
runs the whole loop under ``jit`` (``jax.vmap`` over keys for seeds) and evaluates held-out
prompts every ``eval_every`` updates: the mean reward of sampled (τ = 1) and of greedy
replies and, given the right replies, their exact probability (the expected exact-match
accuracy, free of sampling noise). The pieces :func:`sample` and :func:`learn` are public so
that a host-side loop can call them between its own steps (``benchmarks/rlhf.py``).

On the book's sums, the defaults favour many prompts per batch over many replies per prompt:
with a fixed number of replies, 64 prompts × 4 replies raised held-out accuracy more reliably
than 16 × 8 or 32 × 8, because every update on a few prompts also moves the answers to all
the others.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from rlbook_lib import checks, choices, networks
from rlbook_lib.llm import generation, grpo, rloo
from rlbook_lib.llm import transformer as transformer_lib
from rlbook_lib.llm.tokenizer import PAD

ESTIMATORS = ("reinforce", "rloo", "grpo")
AGGREGATIONS = grpo.AGGREGATIONS + ("sequence_sum",)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the critic-free trainers."""

    estimator: str | int | Int[Array, ""] = "grpo"
    """``"reinforce"``, ``"rloo"`` or ``"grpo"`` (module docstring), or an index into :data:`ESTIMATORS`,
    which may be traced: ``jax.vmap`` over it runs several estimators in one compiled program."""
    num_updates: int = 40
    """Batches in all (each used for ``num_inner`` Adam steps)."""
    prompts_per_batch: int = 64
    """P, prompts drawn (uniformly, with replacement) for each batch."""
    group_size: int = 4
    """k, replies per prompt (≥ 2 for RLOO and GRPO); B = P k replies per batch."""
    learning_rate: float = 5e-4
    """Adam step size, after the warm-up."""
    warmup_updates: int = 10
    """Updates of linear warm-up from 0 to the step size: Adam's first steps move every
    parameter by about the step size whatever its gradient's noise, which can undo a
    pretrained model's fragile skills before the moment estimates settle."""
    max_grad_norm: float = 1.0
    """Gradients are rescaled to at most this global norm."""
    num_inner: int = 4
    """Adam steps per batch; 1 keeps the ratio at 1 (fresh samples every step)."""
    clip_eps: float = 0.2
    """ε of the clipped ratio."""
    beta: float = 0.0
    """Weight of the k₃ KL term to the reference model in the loss."""
    kl_form: str = "k3"
    """``"k3"`` (GRPO's, biased gradient) or ``"k3_ratio"`` (corrected); see :func:`grpo.kl_penalty`."""
    aggregation: str | int | Int[Array, ""] = "sequence_mean"
    """Token average: ``"sequence_mean"``, ``"token_mean"``, ``"constant"`` or ``"sequence_sum"``, or an
    index into :data:`AGGREGATIONS` (possibly traced, like ``estimator``)."""
    baseline_decay: float = 0.9
    """δ of REINFORCE's moving-average baseline."""
    eps: float = 1e-4
    """ε of GRPO's std normalisation."""
    temperature: float = 1.0
    """Sampling temperature of the training replies."""
    eval_every: int = 10
    """Updates between held-out evaluations (num_updates must be a multiple)."""
    eval_samples: int = 4
    """Sampled replies per held-out prompt."""

    def __post_init__(self):
        choices.check("estimator", self.estimator, ESTIMATORS)
        choices.check("aggregation", self.aggregation, AGGREGATIONS)
        if self.kl_form not in grpo.KL_FORMS:
            raise ValueError(f"kl_form must be one of {grpo.KL_FORMS}, got {self.kl_form!r}")
        for name in ("num_updates", "prompts_per_batch", "group_size", "num_inner", "eval_every", "eval_samples"):
            checks.check_positive_int(name, getattr(self, name))
        checks.check_positive_int("warmup_updates + 1", self.warmup_updates + 1)
        if not choices.is_named(self.estimator, ESTIMATORS, "reinforce") and self.group_size < 2:
            raise ValueError(f"group_size must be at least 2 for {self.estimator} (a baseline from the other "
                             f"replies), got {self.group_size}")
        if self.num_updates % self.eval_every:
            raise ValueError(f"num_updates={self.num_updates} must be a multiple of eval_every={self.eval_every}")
        checks.check_hyperparameters(step_size=self.learning_rate)
        if not self.beta >= 0 or not self.clip_eps >= 0 or not 0 <= self.baseline_decay <= 1:
            raise ValueError(f"beta and clip_eps must be >= 0 and baseline_decay in [0, 1], got beta={self.beta}, "
                             f"clip_eps={self.clip_eps}, baseline_decay={self.baseline_decay}")

    @property
    def batch_size(self) -> int:
        """B = P k replies per batch."""
        return self.prompts_per_batch * self.group_size

    @property
    def num_evals(self) -> int:
        """Held-out evaluations after the one before training."""
        return self.num_updates // self.eval_every


class TrainState(NamedTuple):
    params: Any
    """θ, the policy's parameters."""
    opt_state: Any
    baseline: Float[Array, ""]
    """b̄, REINFORCE's moving average of the batch-mean reward (unused by RLOO and GRPO)."""


class Metrics(NamedTuple):
    """One entry per update (batch statistics before the update)."""

    reward: Float[Array, "U"]
    """Mean reward of the batch (training accuracy, for exact match)."""
    kl: Float[Array, "U"]
    """Mean sequence log-ratio log π_θ(y|x) − log π_ref(y|x) (k₁ estimate of the KL)."""
    length: Float[Array, "U"]
    """Mean reply length in tokens (EOS included)."""
    length_rewarded: Float[Array, "U"]
    """Mean length of replies with reward > 0 (0 if none)."""
    length_unrewarded: Float[Array, "U"]
    """Mean length of replies with reward ≤ 0 (0 if none)."""
    loss: Float[Array, "U"]
    """The loss on the first inner update (≈ 0 at ρ = 1 with zero-mean advantages)."""
    grad_norm: Float[Array, "U"]
    """Global gradient norm of that update."""
    true_reward: Float[Array, "U"]
    """Mean of ``true_reward_fn`` over the batch (logged, never optimised; NaN without one)."""


class Evaluation(NamedTuple):
    """Held-out accuracy before training and after every ``eval_every`` updates ([E + 1])."""

    sampled: Float[Array, "E"]
    """Mean reward of replies sampled at τ = 1."""
    greedy: Float[Array, "E"]
    """Mean reward of greedy replies (top-k = 1)."""
    answer_probability: Float[Array, "E"]
    """Mean π_θ(y*|x) of the right reply y* to each held-out prompt: for exact match, the expected
    accuracy at τ = 1 without sampling noise (NaN when no ``eval_answers`` are given)."""


def advantages(estimator: str, rewards: Float[Array, "P k"], baseline: Float[Array, ""] | float = 0.0,
               eps: float = 1e-4) -> Float[Array, "P k"]:
    """Â of each reply for one estimator (module docstring), from the rewards grouped by prompt.

    ``estimator`` is a name or an index into :data:`ESTIMATORS` (possibly traced)."""
    def compute(name):
        if name == "reinforce":
            return rewards - baseline
        if name == "rloo":
            return jax.vmap(rloo.rloo_advantages)(rewards)
        return jax.vmap(lambda r: grpo.group_advantages(r, eps))(rewards)
    return choices.select(estimator, ESTIMATORS, compute)


def loss(params, policy, tokens, mask, old_logp, ref_logp, adv: Float[Array, "B"], config: Config):
    """The shared clipped, KL-penalised loss of :func:`rlbook_lib.llm.grpo.grpo_loss`."""
    logp = generation.token_log_probs(policy, params, tokens, mask)

    def compute(aggregation):
        max_length = None
        if aggregation == "sequence_sum":
            aggregation, max_length = "constant", 1  # Σ_i Σ_t ℓ_{i,t} / B
        return grpo.grpo_loss(logp, old_logp, ref_logp, mask, adv, config.clip_eps, config.beta, aggregation,
                              config.kl_form, max_length)
    return choices.select(config.aggregation, AGGREGATIONS, compute)


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam after a linear warm-up of ``warmup_updates`` updates, with gradient clipping."""
    schedule = optax.linear_schedule(0.0, config.learning_rate, config.warmup_updates * config.num_inner)
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule))


def sample(key: jax.Array, config: Config, policy, params, train_prompts: Int[Array, "N p"]) -> generation.Generation:
    """k replies to each of P prompts drawn uniformly (rows grouped by prompt)."""
    prompt_key, sample_key = jax.random.split(key)
    chosen = train_prompts[jax.random.randint(prompt_key, (config.prompts_per_batch,), 0, train_prompts.shape[0])]
    return generation.generate(policy, params, jnp.repeat(chosen, config.group_size, axis=0), sample_key,
                               temperature=config.temperature)


def learn(state: TrainState, tokens: Int[Array, "B L"], mask, reward: Float[Array, "B"], config: Config, policy,
          ref_params) -> tuple[TrainState, Metrics]:
    """Advantages of scored replies, ``num_inner`` Adam steps on :func:`loss`, then the baseline."""
    optimizer = make_optimizer(config)
    old_logp = generation.token_log_probs(policy, state.params, tokens, mask)
    ref_logp = generation.token_log_probs(policy, ref_params, tokens, mask)
    adv = advantages(config.estimator, reward.reshape(config.prompts_per_batch, config.group_size),
                     state.baseline, config.eps).reshape(-1)

    def inner(carry, _):
        params, opt_state = carry
        (value, _), grads = jax.value_and_grad(loss, has_aux=True)(
            params, policy, tokens, mask, old_logp, ref_logp, adv, config)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), (value, networks.global_norm(grads))

    (params, opt_state), (values, norms) = jax.lax.scan(inner, (state.params, state.opt_state), None,
                                                        config.num_inner)
    baseline = config.baseline_decay * state.baseline + (1 - config.baseline_decay) * jnp.mean(reward)
    length = jnp.sum(mask, axis=-1).astype(jnp.float32)
    good = reward > 0
    mean_where = lambda x, w: jnp.sum(jnp.where(w, x, 0.0)) / jnp.maximum(jnp.sum(w), 1)
    metrics = Metrics(jnp.mean(reward), jnp.mean(jnp.sum(jnp.where(mask, old_logp - ref_logp, 0.0), -1)),
                      jnp.mean(length), mean_where(length, good), mean_where(length, ~good), values[0], norms[0],
                      jnp.float32(jnp.nan))
    return TrainState(params, opt_state, baseline), metrics


def init_state(config: Config, ref_params) -> TrainState:
    """The policy at π_ref, fresh Adam moments, baseline 0."""
    return TrainState(ref_params, make_optimizer(config).init(ref_params), jnp.float32(0.0))


def make_train(config: Config, policy: transformer_lib.Transformer, ref_params, train_prompts: Int[Array, "N p"],
               eval_prompts: Int[Array, "M p"], reward_fn: Callable, eval_answers: Int[Array, "M L"] | None = None,
               true_reward_fn: Callable | None = None):
    """``train(key) -> (TrainState, Metrics, Evaluation)``, starting from (and regularised to) ``ref_params``.

    ``reward_fn(tokens, mask) -> [B]`` scores whole replies inside the jitted loop.
    ``eval_answers`` (optional) holds each held-out prompt followed by its right reply, EOS and
    PAD (e.g. :func:`rlbook_lib.llm.rewards.arithmetic_answers`). ``true_reward_fn(tokens, mask) -> [B]``
    (optional) is only logged (:attr:`Metrics.true_reward`), e.g. r* while a reward model is optimised.
    """
    eval_batch = jnp.repeat(eval_prompts, config.eval_samples, axis=0)
    if eval_answers is not None:  # the reply: after the prompt, up to EOS
        answer_mask = (eval_answers != PAD) & (jnp.arange(eval_answers.shape[-1]) >= eval_prompts.shape[-1])

    def update(state: TrainState, key) -> tuple[TrainState, Metrics]:
        gen = sample(key, config, policy, state.params, train_prompts)
        state, metrics = learn(state, gen.tokens, gen.mask, reward_fn(gen.tokens, gen.mask), config, policy,
                               ref_params)
        if true_reward_fn is not None:
            metrics = metrics._replace(true_reward=jnp.mean(true_reward_fn(gen.tokens, gen.mask)))
        return state, metrics

    def evaluate(params, key) -> tuple[Float[Array, ""], Float[Array, ""]]:
        sampled = generation.generate(policy, params, eval_batch, key)
        greedy = generation.generate(policy, params, eval_prompts, key, top_k=1)
        if eval_answers is None:
            exact = jnp.float32(jnp.nan)
        else:
            exact = jnp.mean(jnp.exp(generation.sequence_log_probs(policy, params, eval_answers, answer_mask)))
        return (jnp.mean(reward_fn(sampled.tokens, sampled.mask)), jnp.mean(reward_fn(greedy.tokens, greedy.mask)),
                exact)

    def chunk(state, key):
        train_key, eval_key = jax.random.split(key)
        state, metrics = jax.lax.scan(update, state, jax.random.split(train_key, config.eval_every))
        return state, (metrics, evaluate(state.params, eval_key))

    def train(key: jax.Array):
        eval_key, key = jax.random.split(key)
        state = init_state(config, ref_params)
        first = evaluate(ref_params, eval_key)
        state, (metrics, evals) = jax.lax.scan(chunk, state, jax.random.split(key, config.num_evals))
        metrics = jax.tree.map(lambda x: x.reshape(config.num_updates), metrics)
        evaluation = Evaluation(*(jnp.concatenate([f[None], e]) for f, e in zip(first, evals)))
        return state, metrics, evaluation

    return train
