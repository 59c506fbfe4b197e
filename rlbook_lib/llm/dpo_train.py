r"""Training a policy with DPO on comparisons, and measuring any policy's true reward and KL.

:mod:`rlbook_lib.llm.dpo` holds the loss on sequence log-probabilities; this module feeds
it the transformer. The data are the reward model's own comparisons
(:class:`rlbook_lib.llm.reward_model.Comparisons`, e.g. from
:func:`rlbook_lib.llm.reward_model.simulate_comparisons`): rows ``tokens_a``, ``tokens_b``
``[N, L]`` that hold a shared prompt x in positions 0..P−1 (P = ``prompt_length``), then a
reply y up to and including EOS, then PAD, and the rater's label. The reply's
log-probability sums over its tokens only (:func:`reply_mask`):

.. math::

    \log \pi_\theta(y \mid x) = \sum_{t = P}^{t_{\text{EOS}}} \log \pi_\theta(y_t \mid y_{<t}),
    \qquad
    \mathcal L(\theta) = -\frac1B \sum_{i=1}^B \log \sigma(\beta u_i), \quad
    u_i = \log\frac{\pi_\theta(y^c_i|x_i)}{\pi_{\text{ref}}(y^c_i|x_i)}
        - \log\frac{\pi_\theta(y^r_i|x_i)}{\pi_{\text{ref}}(y^r_i|x_i)},

with (y^c, y^r) the chosen and rejected replies of :func:`rlbook_lib.llm.preferences.order_pairs`.
The reference log-probabilities are computed once, before the first step. Its gradient,
−(β/B) Σ_i σ(−β u_i)(∇ log π_θ(y^c_i|x_i) − ∇ log π_θ(y^r_i|x_i)), is checked in the tests.

At θ = θ_ref every u_i = 0 and the loss is log 2. β u_i is the difference of the *implicit
rewards* β log(π_θ/π_ref) of the two replies: the metrics report its mean (the margin) and
how often it is positive (the implicit-reward accuracy: would π_θ, read as a reward model,
agree with the rater?).

``make_train(config, policy, ref_params, comparisons, prompt_length, held_out=None)
-> train(key, beta=config.beta) -> Result`` runs Adam over shuffled minibatches under one
``jit``; ``jax.vmap(train)`` over keys gives seeds, ``jax.vmap(train, in_axes=(0, 0))`` over
(keys, betas) a β sweep in one compiled program.

:func:`evaluate_policy` samples replies of any policy (DPO's, PPO's, GRPO's) and returns
its mean true reward and the k₁ estimate of KL(π_θ ‖ π_ref), the quantity
:class:`rlbook_lib.llm.rlhf.Metrics` logs as ``kl``, so methods compare at matched KL.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int

from rlbook_lib import checks
from rlbook_lib.llm import dpo, generation, preferences
from rlbook_lib.llm import transformer as transformer_lib
from rlbook_lib.llm.reward_model import Comparisons
from rlbook_lib.llm.tokenizer import EOS


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of DPO training. ``beta`` and ``learning_rate`` are used only in arithmetic."""

    beta: float = 0.1
    """β, the KL weight of the objective DPO solves (``train``'s default; vmap ``train(key, beta)``)."""
    learning_rate: float = 1e-4
    """Adam step size, constant."""
    batch_size: int = 64
    """Comparisons per Adam step."""
    num_epochs: int = 4
    """Passes over the comparisons, reshuffled each time (a remainder below batch_size is left out)."""
    max_grad_norm: float = 1.0
    """Gradients are rescaled to at most this global norm."""
    eval_every: int = 4
    """Steps between evaluations on the held-out comparisons (num_steps must be a multiple)."""

    def __post_init__(self):
        for name in ("batch_size", "num_epochs", "eval_every"):
            checks.check_positive_int(name, getattr(self, name))
        checks.check_hyperparameters(step_size=self.learning_rate)
        dpo._check_beta(self.beta)
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")

    def num_steps(self, num_comparisons: int) -> int:
        """Adam steps on N comparisons: num_epochs · ⌊N / batch_size⌋."""
        return self.num_epochs * (num_comparisons // self.batch_size)


class Metrics(NamedTuple):
    """DPO on a set of comparisons (one entry per step for training, per evaluation for held-out)."""

    loss: Float[Array, "S"]
    """Mean −log σ(β u) (before the step, on that step's minibatch)."""
    accuracy: Float[Array, "S"]
    """Fraction of pairs with β u > 0 (½ for ties): the implicit reward agrees with the rater."""
    margin: Float[Array, "S"]
    """Mean β u, the implicit-reward margin of chosen over rejected."""
    chosen_reward: Float[Array, "S"]
    """Mean implicit reward β log(π_θ/π_ref) of the chosen replies."""
    rejected_reward: Float[Array, "S"]
    """Mean implicit reward of the rejected replies (both may fall while the margin grows)."""


class Result(NamedTuple):
    params: Any
    """θ after training."""
    metrics: Metrics
    """Training minibatches, leaves [num_steps]."""
    held_out: Metrics | None
    """On the held-out comparisons before training and every ``eval_every`` steps,
    leaves [num_steps / eval_every + 1]; None without held-out comparisons."""


def reply_mask(tokens: Int[Array, "*B L"], prompt_length) -> Bool[Array, "*B L"]:
    """True on the reply: positions ≥ P up to and including the first EOS after the prompt
    (to the end of the context if there is none). Equals :class:`generation.Generation`'s mask."""
    tokens = jnp.asarray(tokens)
    positions = jnp.arange(tokens.shape[-1])
    after = positions >= prompt_length
    eos = after & (tokens == EOS)
    eos_before = jnp.cumsum(eos, axis=-1) - eos  # EOS strictly before t, within the reply
    return after & (eos_before == 0)


class Pairs(NamedTuple):
    """Chosen and rejected rows with their reply masks and reference log-probabilities."""

    chosen: Int[Array, "N L"]
    rejected: Int[Array, "N L"]
    mask_chosen: Bool[Array, "N L"]
    mask_rejected: Bool[Array, "N L"]
    ref_chosen: Float[Array, "N"]
    """log π_ref(y^c | x)."""
    ref_rejected: Float[Array, "N"]


def prepare(policy: transformer_lib.Transformer, ref_params, data: Comparisons, prompt_length) -> Pairs:
    """Order each pair by its label and score both replies under π_ref."""
    chosen, rejected = preferences.order_pairs(data.tokens_a, data.tokens_b, data.prefers_a)
    mask_c, mask_r = reply_mask(chosen, prompt_length), reply_mask(rejected, prompt_length)
    return Pairs(chosen, rejected, mask_c, mask_r,
                 generation.sequence_log_probs(policy, ref_params, chosen, mask_c),
                 generation.sequence_log_probs(policy, ref_params, rejected, mask_r))


def pair_metrics(policy, params, pairs: Pairs, beta) -> Metrics:
    """:class:`Metrics` of π_θ on a batch of pairs (the loss is differentiable in ``params``)."""
    reward_c = beta * (generation.sequence_log_probs(policy, params, pairs.chosen, pairs.mask_chosen)
                       - pairs.ref_chosen)
    reward_r = beta * (generation.sequence_log_probs(policy, params, pairs.rejected, pairs.mask_rejected)
                       - pairs.ref_rejected)
    margin = reward_c - reward_r  # β u
    accuracy = jnp.mean(jnp.where(margin == 0, 0.5, (margin > 0).astype(jnp.float32)))
    return Metrics(jnp.mean(jax.nn.softplus(-margin)), accuracy, jnp.mean(margin), jnp.mean(reward_c),
                   jnp.mean(reward_r))


def loss(params, policy, pairs: Pairs, beta) -> tuple[Float[Array, ""], Metrics]:
    """(𝓛_DPO, metrics): the module docstring's loss, the same value as :func:`dpo.dpo_loss`."""
    metrics = pair_metrics(policy, params, pairs, beta)
    return metrics.loss, metrics


def _check(config: Config, policy, data: Comparisons, prompt_length, name: str) -> None:
    shape = np.shape(data.tokens_a)
    if len(shape) != 2 or np.shape(data.tokens_b) != shape or np.shape(data.prefers_a) != shape[:1]:
        raise ValueError(f"{name}: tokens_a and tokens_b must have one shape [N, L] and prefers_a shape [N], got "
                         f"{shape}, {np.shape(data.tokens_b)} and {np.shape(data.prefers_a)}")
    if shape[1] > policy.context_length:
        raise ValueError(f"{name}: rows of {shape[1]} tokens exceed the context of {policy.context_length}")
    if not isinstance(prompt_length, (int, np.integer)) or not 1 <= prompt_length < shape[1]:
        raise ValueError(f"prompt_length must be an int in [1, {shape[1]}), got {prompt_length!r}")
    if name == "comparisons" and shape[0] < config.batch_size:
        raise ValueError(f"{shape[0]} comparisons are fewer than batch_size={config.batch_size}")


def make_train(config: Config, policy: transformer_lib.Transformer, ref_params, comparisons: Comparisons,
               prompt_length: int, held_out: Comparisons | None = None) -> Callable:
    """``train(key, beta=config.beta) -> Result``: DPO from θ = θ_ref on ``comparisons``.

    ``ref_params`` is both the start and the reference (the pretrained model). ``ValueError``
    for mismatched shapes, a bad ``prompt_length``, fewer comparisons than a batch, a
    ``num_steps`` that is not a multiple of ``eval_every`` or (when concrete) β < 0.
    """
    _check(config, policy, comparisons, prompt_length, "comparisons")
    if held_out is not None:
        _check(config, policy, held_out, prompt_length, "held_out")
    n, batch = comparisons.tokens_a.shape[0], config.batch_size
    per_epoch, num_steps = n // batch, config.num_steps(comparisons.tokens_a.shape[0])
    if num_steps % config.eval_every:
        raise ValueError(f"num_steps={num_steps} must be a multiple of eval_every={config.eval_every}")
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))

    def train(key: jax.Array, beta=config.beta) -> Result:
        dpo._check_beta(beta)
        pairs = prepare(policy, ref_params, comparisons, prompt_length)
        held = None if held_out is None else prepare(policy, ref_params, held_out, prompt_length)
        orders = jax.vmap(lambda k: jax.random.permutation(k, n)[: per_epoch * batch])(
            jax.random.split(key, config.num_epochs))
        orders = orders.reshape(num_steps // config.eval_every, config.eval_every, batch)

        def step(carry, order):
            params, opt_state = carry
            part = jax.tree.map(lambda x: x[order], pairs)
            grads, metrics = jax.grad(loss, has_aux=True)(params, policy, part, beta)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        def evaluate(params):
            return None if held is None else pair_metrics(policy, params, held, beta)

        def chunk(carry, order):
            carry, metrics = jax.lax.scan(step, carry, order)
            return carry, (metrics, evaluate(carry[0]))

        (params, _), (metrics, evals) = jax.lax.scan(chunk, (ref_params, optimizer.init(ref_params)), orders)
        metrics = jax.tree.map(lambda x: x.reshape(num_steps), metrics)
        if held is not None:
            evals = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), evaluate(ref_params), evals)
        return Result(params, metrics, evals)

    return train


class PolicyEvaluation(NamedTuple):
    """Sampled replies of a policy, scored."""

    reward: Float[Array, ""]
    """Mean r*(x, y) of the replies."""
    kl: Float[Array, ""]
    """k₁ estimate of KL(π_θ ‖ π_ref): the mean sequence log-ratio log π_θ(y|x) − log π_ref(y|x)."""
    kl_stderr: Float[Array, ""]
    """Standard error of that mean (sample std / √n)."""
    length: Float[Array, ""]
    """Mean reply length in tokens (EOS included)."""


def evaluate_policy(key: jax.Array, policy: transformer_lib.Transformer, params, ref_params,
                    prompts: Int[Array, "P p"], reward_fn: Callable, num_samples: int) -> PolicyEvaluation:
    r"""Sample ``num_samples`` replies of π_θ (τ = 1) to uniformly drawn prompts and score them.

    KL(π_θ ‖ π_ref) = E_{y∼π_θ}[log π_θ(y|x) − log π_ref(y|x)], so the sample mean of the
    log-ratio is unbiased (though single samples can be negative). ``reward_fn(tokens, mask)
    -> [n]`` is e.g. :func:`rlbook_lib.llm.rewards.true_reward`. Jittable and vmappable.
    """
    prompt_key, sample_key = jax.random.split(key)
    chosen = prompts[jax.random.randint(prompt_key, (num_samples,), 0, prompts.shape[0])]
    gen = generation.generate(policy, params, chosen, sample_key)
    log_ratio = (generation.sequence_log_probs(policy, params, gen.tokens, gen.mask)  # same pass for both,
                 - generation.sequence_log_probs(policy, ref_params, gen.tokens, gen.mask))  # so 0 at θ_ref
    return PolicyEvaluation(jnp.mean(reward_fn(gen.tokens, gen.mask)), jnp.mean(log_ratio),
                            jnp.std(log_ratio) / jnp.sqrt(num_samples),
                            jnp.mean(jnp.sum(gen.mask, -1).astype(jnp.float32)))
