r"""A reward model: the transformer with a scalar head, trained on Bradley–Terry comparisons.

The second stage of the RLHF pipeline (Ziegler et al., 2019; Ouyang et al., 2022). The
reward model r_φ is the language model's own architecture with its next-token head
replaced by a linear map to one number per position; the score of a text is read at
its **last token** (EOS, or the last position of a reply cut off by the context):

.. math::

    r_\phi(x, y) = w^\top h_{t_{\text{last}}} + b, \qquad
    \mathcal L(\phi) = -\frac1N \sum_{i=1}^N \log \sigma\big(r_\phi(x_i, y^c_i) - r_\phi(x_i, y^r_i)\big),

with h_t the transformer's final hidden state and (y^c, y^r) the chosen and rejected replies
of comparison i (:func:`rlbook_lib.llm.preferences.bradley_terry_loss`). The trunk starts
from the pretrained policy's parameters (:func:`init_params`), so the reward model begins
with everything the language model knows about the language.

**Data.** :func:`policy_sampler` draws two replies to the same prompt from the pretrained
model; simulated raters label each pair with probability σ(r*(a) − r*(b)) from the hidden
reward of :mod:`rlbook_lib.llm.rewards`. Held-out pairs, never trained on, measure accuracy
against the Bayes-optimal accuracy that r* allows
(:func:`rlbook_lib.llm.preferences.bayes_optimal_accuracy`).

``make_train(config, model, init_params, sample_pairs, reward_fn) -> train(key) -> Result``
runs sampling, labelling, Adam on the loss and the held-out evaluation under one ``jit``;
``jax.vmap(train)`` over keys trains one reward model per seed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int

from rlbook_lib import checks
from rlbook_lib.llm import generation, preferences
from rlbook_lib.llm import transformer as transformer_lib
from rlbook_lib.llm.tokenizer import PAD


class RewardModel(nn.Module):
    """A transformer trunk and a scalar head: ``apply(params, tokens)`` → r_φ at every position ``[*B, T]``.

    Also serves as a value network V(s_t) (:mod:`rlbook_lib.llm.rlhf`), read at every position.
    """

    transformer: transformer_lib.Transformer
    """The trunk (same architecture as the policy); its parameters live under ``"transformer"``."""

    @nn.compact
    def __call__(self, tokens: Int[Array, "*B T"]) -> Float[Array, "*B T"]:
        _, hidden = self.transformer(tokens, return_hidden=True)
        return nn.Dense(1, name="head")(hidden)[..., 0]


def init_params(model: RewardModel, key: jax.Array, pretrained_params=None):
    """Parameters of ``model``: a fresh head, and the trunk copied from ``pretrained_params``
    (parameters of ``model.transformer``, e.g. :func:`rlbook_lib.llm.pretrain.pretrain`'s) if given."""
    params = model.init(key, jnp.zeros((1, model.transformer.context_length), jnp.int32))
    if pretrained_params is None:
        return params
    inner = dict(params["params"])
    inner["transformer"] = pretrained_params["params"]
    return {"params": inner}


def last_index(tokens: Int[Array, "*B T"]) -> Int[Array, "*B"]:
    """Position of each row's last non-PAD token (its EOS, or the last token of a cut-off reply)."""
    return jnp.sum(jnp.asarray(tokens) != PAD, axis=-1) - 1


def score(model: RewardModel, params, tokens: Int[Array, "*B T"]) -> Float[Array, "*B"]:
    """r_φ(x, y): the head's output at :func:`last_index` of each row."""
    values = model.apply(params, tokens)
    return jnp.take_along_axis(values, last_index(tokens)[..., None], axis=-1)[..., 0]


def score_fn(model: RewardModel, params) -> Callable:
    """``(tokens, mask) -> [B]`` r_φ of each row, the signature RL trainers take
    (:func:`rlbook_lib.llm.rlhf.make_train`'s ``score_fn``); ``mask`` is not needed."""
    return lambda tokens, mask: score(model, params, tokens)


@dataclasses.dataclass(frozen=True)
class Config:
    """Comparisons and training settings of a reward model."""

    num_comparisons: int = 1024
    """N, labelled pairs to train on."""
    num_held_out: int = 512
    """Labelled pairs kept apart to measure accuracy."""
    batch_size: int = 64
    """Pairs per Adam step."""
    num_epochs: int = 4
    """Passes over the training pairs (reshuffled each time)."""
    learning_rate: float = 1e-3
    """Adam step size, constant."""
    max_grad_norm: float = 1.0
    """Gradients are rescaled to at most this global norm."""

    def __post_init__(self):
        for name in ("num_comparisons", "num_held_out", "batch_size", "num_epochs"):
            checks.check_positive_int(name, getattr(self, name))
        if self.num_comparisons % self.batch_size:
            raise ValueError(f"num_comparisons={self.num_comparisons} must be a multiple of "
                             f"batch_size={self.batch_size}")
        checks.check_hyperparameters(step_size=self.learning_rate)

    @property
    def num_steps(self) -> int:
        """Adam steps: num_epochs · num_comparisons / batch_size."""
        return self.num_epochs * self.num_comparisons // self.batch_size


class Comparisons(NamedTuple):
    """N pairs of texts (a, b) with their true rewards and a simulated rater's label."""

    tokens_a: Int[Array, "N L"]
    tokens_b: Int[Array, "N L"]
    true_a: Float[Array, "N"]
    """r*(a)."""
    true_b: Float[Array, "N"]
    prefers_a: Bool[Array, "N"]
    """The rater's choice, drawn with probability σ(r*(a) − r*(b))."""


class HeldOut(NamedTuple):
    """The reward model on held-out comparisons (scores for a calibration plot)."""

    score_a: Float[Array, "M"]
    """r_φ(a)."""
    score_b: Float[Array, "M"]
    true_a: Float[Array, "M"]
    true_b: Float[Array, "M"]
    prefers_a: Bool[Array, "M"]
    accuracy: Float[Array, ""]
    """Agreement with the raters' labels."""
    expected_accuracy: Float[Array, ""]
    """Agreement in expectation over the raters' noise (:func:`preferences.expected_accuracy`)."""
    bayes_accuracy: Float[Array, ""]
    """The best expected accuracy any model can reach on these pairs."""


class Metrics(NamedTuple):
    loss: Float[Array, "S"]
    """Bradley–Terry loss of each step's minibatch, before the step."""
    accuracy: Float[Array, "S"]
    """Agreement with the labels of that minibatch."""


class Result(NamedTuple):
    params: Any
    """φ after training."""
    metrics: Metrics
    held_out: HeldOut


SamplePairs = Callable[[jax.Array, int], tuple[Int[Array, "N L"], Bool[Array, "N L"], Int[Array, "N L"],
                                               Bool[Array, "N L"]]]
"""``sample_pairs(key, n) -> (tokens_a, mask_a, tokens_b, mask_b)``: n pairs of replies to shared prompts."""


def policy_sampler(policy: transformer_lib.Transformer, policy_params, prompts: Int[Array, "P p"],
                   temperature: float = 1.0) -> SamplePairs:
    """Pairs of replies of the (pretrained) policy: each pair answers one uniformly drawn prompt."""
    def sample_pairs(key, n):
        prompt_key, key_a, key_b = jax.random.split(key, 3)
        chosen = prompts[jax.random.randint(prompt_key, (n,), 0, prompts.shape[0])]
        a = generation.generate(policy, policy_params, chosen, key_a, temperature=temperature)
        b = generation.generate(policy, policy_params, chosen, key_b, temperature=temperature)
        return a.tokens, a.mask, b.tokens, b.mask
    return sample_pairs


def simulate_comparisons(key: jax.Array, sample_pairs: SamplePairs, reward_fn, n: int) -> Comparisons:
    """n pairs from ``sample_pairs``, scored by ``reward_fn(tokens, mask) -> [n]`` (r*) and labelled
    by Bradley–Terry raters."""
    pair_key, label_key = jax.random.split(key)
    tokens_a, mask_a, tokens_b, mask_b = sample_pairs(pair_key, n)
    true_a, true_b = reward_fn(tokens_a, mask_a), reward_fn(tokens_b, mask_b)
    prefers_a = preferences.simulate_preferences(label_key, true_a, true_b)
    return Comparisons(tokens_a, tokens_b, true_a, true_b, prefers_a)


def loss(model: RewardModel, params, chosen: Int[Array, "N L"], rejected: Int[Array, "N L"]) -> Float[Array, ""]:
    """The Bradley–Terry loss of r_φ on (chosen, rejected) pairs."""
    return preferences.bradley_terry_loss(score(model, params, chosen), score(model, params, rejected))


def evaluate(model: RewardModel, params, data: Comparisons) -> HeldOut:
    """Scores and accuracies of r_φ on comparisons it was not trained on."""
    score_a, score_b = score(model, params, data.tokens_a), score(model, params, data.tokens_b)
    return HeldOut(score_a, score_b, data.true_a, data.true_b, data.prefers_a,
                   preferences.preference_accuracy(score_a, score_b, data.prefers_a),
                   preferences.expected_accuracy(score_a, score_b, data.true_a, data.true_b),
                   preferences.bayes_optimal_accuracy(data.true_a, data.true_b))


def make_train(config: Config, model: RewardModel, init: Any, sample_pairs: SamplePairs, reward_fn):
    """``train(key, num_used=None) -> Result``: simulate N + M comparisons, fit r_φ on N, evaluate on M.

    With ``num_used`` = n ≤ N (may be traced, so ``vmap`` sweeps it in one program) only the
    first n comparisons are trained on, each repeated N/n times per epoch: the same number of
    Adam steps on less data. ``num_used = N`` is the default run exactly.

    ``init`` is φ₀ (from :func:`init_params`); ``reward_fn(tokens, mask) -> [n]`` is the
    hidden r* the raters follow (e.g. :func:`rlbook_lib.llm.rewards.true_reward`).
    """
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))
    n, batch = config.num_comparisons, config.batch_size

    def step(carry, inputs):
        params, opt_state = carry
        chosen, rejected = inputs
        def objective(p):
            margin = score(model, p, chosen) - score(model, p, rejected)
            return preferences.bradley_terry_loss(margin, jnp.zeros_like(margin)), margin

        (value, margin), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        accuracy = jnp.mean(jnp.where(margin == 0, 0.5, (margin > 0).astype(jnp.float32)))
        return (optax.apply_updates(params, updates), opt_state), Metrics(value, accuracy)

    def epoch(carry, key):
        params, opt_state, chosen, rejected = carry
        order = jax.random.permutation(key, n).reshape(n // batch, batch)
        (params, opt_state), metrics = jax.lax.scan(step, (params, opt_state), (chosen[order], rejected[order]))
        return (params, opt_state, chosen, rejected), metrics

    def train(key: jax.Array, num_used=None) -> Result:
        data_key, held_key, shuffle_key = jax.random.split(key, 3)
        data = simulate_comparisons(data_key, sample_pairs, reward_fn, n)
        held = simulate_comparisons(held_key, sample_pairs, reward_fn, config.num_held_out)
        chosen, rejected = preferences.order_pairs(data.tokens_a, data.tokens_b, data.prefers_a)
        if num_used is not None:  # slot i holds comparison i mod num_used: only the first num_used are seen
            slot = jnp.arange(n) % jnp.clip(jnp.asarray(num_used, jnp.int32), 1, n)
            chosen, rejected = chosen[slot], rejected[slot]
        carry = (init, optimizer.init(init), chosen, rejected)
        (params, *_), metrics = jax.lax.scan(epoch, carry, jax.random.split(shuffle_key, config.num_epochs))
        metrics = jax.tree.map(lambda x: x.reshape(config.num_steps), metrics)
        return Result(params, metrics, evaluate(model, params, held))

    return train
