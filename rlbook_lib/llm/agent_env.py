r"""The language model as an agent: a two-turn conversation with a simulated reader, paid at the end.

One episode has two turns, and the model writes a whole reply in each (one *action* per turn,
made of tokens):

1. The reader asks for a review, prompt x₁ = ``<bos> the NOUN was``. The model writes y₁.
   No reward: r₁ = 0. The reader's state changes with y₁: the reader is *pleased* if y₁
   completes a grammatical review whose sentiment (:func:`rlbook_lib.llm.rewards.sentiment`)
   is at least ``min_sentiment``; a reader who is not pleased leaves (the episode terminates).
2. A pleased reader asks a question, x₂ = ``<bos> a + b =`` (a, b drawn at the start), the
   model answers y₂, and the reader pays r₂ = ``reward`` · [y₂ = ``a+b . <eos>``]
   (:func:`rlbook_lib.llm.rewards.arithmetic_reward`). The episode ends.

The model sees only the current prompt (the 16-token context has no room for the history),
so the second prompt, built from the reader's state, is all it knows of turn 1. The review is
worth nothing by itself; its value is that it keeps the reader. The returns over turns,
with γ₂ = γ (1 − terminated after turn 1) (:func:`turn_returns`),

.. math::

    G_2 = r_2, \qquad G_1 = r_1 + \gamma_2\, G_2 = \gamma_2\, r_2,

carry the late reward back to y₁: REINFORCE with a baseline pushes on each turn's reply by
its own return, ∇J ≈ (1/B) Σ_i Σ_τ (G_{i,τ} − b_τ) ∇ log π_θ(y_{i,τ} | x_{i,τ}) (:func:`loss`).
Episodes come in groups of k from one start state (noun, a, b), and b_τ is the leave-one-out
mean of the group's other returns (RLOO, :func:`rlbook_lib.llm.rloo.rloo_advantages`),
which does not depend on episode i's own replies, so the estimate stays unbiased.

The environment is pure JAX in the functional style (:func:`reset`, :func:`step` over token
rows, jittable and vmappable); :func:`rollout` plays a batch of episodes with
:func:`rlbook_lib.llm.generation.generate`, and ``make_train(config, policy, init_params,
env_params) -> train(key) -> (params, Metrics)`` runs the whole loop under one ``jit``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int

from rlbook_lib import checks, returns
from rlbook_lib.llm import generation, grammar, rewards, rloo
from rlbook_lib.llm.tokenizer import BOS, PAD

PROMPT_WIDTH = rewards.PROMPT_LENGTH
"""Columns of every prompt (5, the sum's ``<bos> a + b =``; the review prompt has one PAD)."""
_ID = grammar.TOKENIZER.token_id
_NOUNS = np.array([_ID(n) for n in grammar.NOUNS], np.int32)
_NUMBERS = np.array([_ID(str(i)) for i in range(grammar.MAX_OPERAND + 1)], np.int32)


@dataclasses.dataclass(frozen=True)
class EnvParams:
    """The reader."""

    min_sentiment: float = 1.0
    """The review's sentiment the reader needs to be pleased (1: any positive review)."""
    reward: float = 1.0
    """Paid for a right answer in turn 2."""


class State(NamedTuple):
    noun: Int[Array, ""]
    """Token id of the noun to review."""
    a: Int[Array, ""]
    """The summands the reader will ask about (0..MAX_OPERAND)."""
    b: Int[Array, ""]
    turn: Int[Array, ""]
    """Replies written so far (0, 1, 2)."""
    pleased: Bool[Array, ""]
    """The reader liked the review (set by turn 1)."""
    done: Bool[Array, ""]


def review_prompt(state: State) -> Int[Array, "5"]:
    """x₁ = ``<bos> the NOUN was <pad>``."""
    return jnp.array([BOS, _ID("the"), 0, _ID("was"), PAD]).at[2].set(state.noun)


def question_prompt(state: State) -> Int[Array, "5"]:
    """x₂ = ``<bos> a + b =``."""
    numbers = jnp.asarray(_NUMBERS)
    return jnp.array([BOS, 0, _ID("+"), 0, _ID("=")]).at[1].set(numbers[state.a]).at[3].set(numbers[state.b])


def reset(key: jax.Array) -> tuple[State, Int[Array, "5"]]:
    """A start state (noun, a, b uniform) and the first prompt x₁."""
    k_noun, k_a, k_b = jax.random.split(key, 3)
    top = grammar.MAX_OPERAND + 1
    noun = jnp.asarray(_NOUNS)[jax.random.randint(k_noun, (), 0, len(grammar.NOUNS))]
    state = State(noun, jax.random.randint(k_a, (), 0, top), jax.random.randint(k_b, (), 0, top), jnp.int32(0),
                  jnp.bool_(False), jnp.bool_(False))
    return state, review_prompt(state)


def step(params: EnvParams, state: State, tokens: Int[Array, "L"]) -> tuple[State, Int[Array, "5"], Float[Array, ""],
                                                                              Bool[Array, ""]]:
    """(next state, next prompt, reward, done) after the reply in ``tokens`` (prompt ⊕ reply, then PAD).

    After the episode ends the prompt returned is the question again, a placeholder whose
    reply the caller must ignore (mask it with ``~done``).
    """
    first = state.turn == 0
    liked = rewards.grammatical(tokens) & (rewards.sentiment(tokens) >= params.min_sentiment)
    pleased = jnp.where(first, liked, state.pleased)
    reward = jnp.where(first | state.done, 0.0, params.reward * rewards.arithmetic_reward(tokens))
    done = state.done | ~first | ~pleased
    return state._replace(turn=state.turn + 1, pleased=pleased, done=done), question_prompt(state), reward, done


def turn_returns(turn_rewards: Float[Array, "2"], done_after_first: Bool[Array, ""], gamma) -> Float[Array, "2"]:
    """(G₁, G₂) by :func:`rlbook_lib.returns.discounted_returns` with discounts (γ(1 − done₁), 0)."""
    discounts = jnp.stack([gamma * (1.0 - done_after_first.astype(jnp.float32)), jnp.float32(0.0)])
    return returns.discounted_returns(turn_rewards, discounts)


class Episodes(NamedTuple):
    tokens: Int[Array, "B 2 L"]
    """Each turn's row, prompt ⊕ reply."""
    mask: Bool[Array, "B 2 L"]
    """The model's actions: reply tokens, and none in turn 2 once the reader has left."""
    rewards: Float[Array, "B 2"]
    pleased: Bool[Array, "B"]


def rollout(key: jax.Array, policy, params, env_params: EnvParams, states: State, temperature=1.0) -> Episodes:
    """Play one episode from each start state (leaves [B]) with π_θ."""
    k1, k2 = jax.random.split(key)
    gen1 = generation.generate(policy, params, jax.vmap(review_prompt)(states), k1, temperature=temperature)
    states, prompts, r1, done = jax.vmap(step, in_axes=(None, 0, 0))(env_params, states, gen1.tokens)
    gen2 = generation.generate(policy, params, prompts, k2, temperature=temperature)
    _, _, r2, _ = jax.vmap(step, in_axes=(None, 0, 0))(env_params, states, gen2.tokens)
    mask2 = gen2.mask & ~done[:, None]
    return Episodes(jnp.stack([gen1.tokens, gen2.tokens], 1), jnp.stack([gen1.mask, mask2], 1),
                    jnp.stack([r1, r2], 1), states.pleased)


def advantages(episodes: Episodes, group_size: int, gamma) -> Float[Array, "B 2"]:
    """G_{i,τ} − b_τ with b_τ the leave-one-out mean over the other episodes of i's group (rows grouped)."""
    g = jax.vmap(turn_returns, in_axes=(0, 0, None))(episodes.rewards, ~episodes.pleased, gamma)  # [B, 2]
    grouped = g.reshape(-1, group_size, 2)
    return jax.vmap(jax.vmap(rloo.rloo_advantages, in_axes=1, out_axes=1))(grouped).reshape(g.shape)


def surrogate(token_logp: Float[Array, "B 2 L"], mask: Bool[Array, "B 2 L"], adv: Float[Array, "B 2"]):
    """−(1/B) Σ_i Σ_τ Â_{i,τ} log π_θ(y_{i,τ}|x_{i,τ}) from token log-probabilities (Â held fixed)."""
    sequence_logp = jnp.sum(jnp.where(mask, token_logp, 0.0), axis=-1)
    return -jnp.sum(jax.lax.stop_gradient(adv) * sequence_logp) / adv.shape[0]


def loss(params, policy, episodes: Episodes, adv: Float[Array, "B 2"]) -> Float[Array, ""]:
    """:func:`surrogate` on π_θ's token log-probabilities of both turns (one forward pass on [B, 2, L])."""
    return surrogate(generation.token_log_probs(policy, params, episodes.tokens, episodes.mask), episodes.mask, adv)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of REINFORCE with a leave-one-out baseline on the two-turn task."""

    num_updates: int = 20
    """Adam steps, each on a fresh batch."""
    num_starts: int = 32
    """P start states per batch."""
    group_size: int = 4
    """k episodes per start state (≥ 2 for the leave-one-out baseline); B = P k."""
    learning_rate: float = 3e-4
    """Adam step size."""
    max_grad_norm: float = 1.0
    """Gradients are rescaled to at most this global norm."""
    gamma: float = 1.0
    """γ between the turns."""

    def __post_init__(self):
        for name in ("num_updates", "num_starts", "group_size"):
            checks.check_positive_int(name, getattr(self, name))
        if self.group_size < 2:
            raise ValueError(f"group_size must be at least 2 (leave-one-out baseline), got {self.group_size}")
        checks.check_hyperparameters(gamma=self.gamma, step_size=self.learning_rate)


class Metrics(NamedTuple):
    """One entry per update, on the batch played before it."""

    reward: Float[Array, "U"]
    """Mean episode return r₁ + r₂ (γ = 1)."""
    pleased: Float[Array, "U"]
    """Fraction of readers pleased by the review (reached turn 2)."""
    correct: Float[Array, "U"]
    """Fraction of right answers among pleased readers."""


def episode_metrics(episodes: Episodes, env_params: EnvParams) -> tuple[Array, Array, Array]:
    """(mean return, fraction pleased, fraction right among the pleased) of a batch."""
    pleased = episodes.pleased.astype(jnp.float32)
    right = episodes.rewards[:, 1] / env_params.reward
    return (jnp.mean(episodes.rewards.sum(-1)), jnp.mean(pleased),
            jnp.sum(right) / jnp.maximum(jnp.sum(pleased), 1.0))


def start_states(key: jax.Array, num_starts: int, group_size: int) -> State:
    """P start states, each repeated k times (rows grouped by start state)."""
    states, _ = jax.vmap(reset)(jax.random.split(key, num_starts))
    return jax.tree.map(lambda x: jnp.repeat(x, group_size, axis=0), states)


def evaluate(key: jax.Array, policy, params, env_params: EnvParams, num_episodes: int) -> Metrics:
    """Mean return, pleased fraction and accuracy of π_θ over fresh episodes (scalars)."""
    start_key, play_key = jax.random.split(key)
    return Metrics(*episode_metrics(rollout(play_key, policy, params, env_params,
                                            start_states(start_key, num_episodes, 1)), env_params))


def make_train(config: Config, policy, init_params, env_params: EnvParams = EnvParams()):
    """``train(key) -> (params, Metrics)``: REINFORCE with RLOO baselines from ``init_params``."""
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))

    def update(carry, key):
        params, opt_state = carry
        start_key, play_key = jax.random.split(key)
        states = start_states(start_key, config.num_starts, config.group_size)
        episodes = rollout(play_key, policy, params, env_params, states)
        adv = advantages(episodes, config.group_size, config.gamma)
        grads = jax.grad(loss)(params, policy, episodes, adv)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), Metrics(*episode_metrics(episodes, env_params))

    def train(key: jax.Array):
        (params, _), metrics = jax.lax.scan(update, (init_params, optimizer.init(init_params)),
                                            jax.random.split(key, config.num_updates))
        return params, metrics

    return train
