"""Throughput of RL on the book's language model: PPO-RLHF and GRPO, whole step under one jit vs
the loop most tutorials write.

Run ``python benchmarks/rlhf.py`` (a few minutes on two CPU cores). For each algorithm it reports
generated tokens per second and RL updates per second

* **fused**: ``jax.jit(make_train(config, ...))``: generation, scoring, advantages and the
  update of every step inside one compiled ``lax.scan``; at 1 seed, and at 4 seeds with
  ``jax.jit(jax.vmap(train))``;
* **host loop**: the structure of most tutorials: a Python loop that calls a jitted
  ``generate``, moves the replies to the host, scores them there with a Python reward
  function on the decoded words (as one calls an external scorer), and calls a jitted update
  (the same library functions: ``rlhf.prepare`` + ``rlhf.learn``, ``policy_gradient_lm.learn``).
  The fused 1-seed run and the host loop are timed in interleaved rounds.

and the ratio fused / host loop at 1 seed. The model is the pre-training architecture
(``pretrain.Config().model``) with random weights, so replies are long; tokens count the
generated tokens actually written (EOS included), taken from the metrics, so XLA cannot drop
the work. Compile time is reported apart and excluded from the rates, which are the best of
``REPEATS`` runs (the host loop's compile time is its first run minus the best).
"""

from __future__ import annotations

import os

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import jax
import jax.numpy as jnp
import numpy as np

from rlbook_lib.llm import grammar, pretrain, reward_model, rewards, rlhf
from rlbook_lib.llm import policy_gradient_lm as pg
from timing import best_of, interleaved_best, timed  # noqa: E402  benchmarks/timing.py

NUM_UPDATES, SEEDS, REPEATS = 16, 4, 5
WEIGHTS = rewards.RewardWeights()


def python_true_reward(row, mask_row) -> float:
    """r* on the host, from the decoded words (grammar.sentiment and the grammar's parser)."""
    words, ended = grammar.words_of(row)
    fluent = ended and grammar.is_grammatical(words)
    return (WEIGHTS.sentiment * grammar.sentiment(words) - WEIGHTS.ungrammatical * (not fluent)
            - WEIGHTS.length * float(np.sum(mask_row)))


def python_exact_match(row, mask_row) -> float:
    words, ended = grammar.words_of(row)
    return float(ended and len(words) == 6 and words[4:] == [str(int(words[0]) + int(words[2])), "."])


def host_scores(score, gen):
    tokens, mask = np.asarray(gen.tokens), np.asarray(gen.mask)  # device → host
    return jnp.asarray([score(t, m) for t, m in zip(tokens, mask)], jnp.float32)  # host → device


def fused(train, keys, tokens_of) -> dict:
    compiled, compile_time = timed(lambda: jax.jit(train).lower(keys).compile())
    out, run = best_of(lambda: jax.block_until_ready(compiled(keys)), REPEATS, pause=0.05)
    return dict(compile=compile_time, run=run, tokens=float(tokens_of(out)),
                call=lambda: float(tokens_of(compiled(keys))))


def side_by_side(one: dict, loop) -> tuple[dict, dict]:
    """The fused run at 1 seed and the host loop, timed in interleaved rounds (a fair share of a
    shared machine); the host loop's first call compiles its jitted pieces."""
    _, first = timed(loop)
    (fused_run, host_run), (fused_tokens, host_tokens) = interleaved_best([one["call"], loop], REPEATS, 0.05)
    one = rates(dict(one, run=fused_run, tokens=fused_tokens), 1)
    return one, rates(dict(compile=first - host_run, run=host_run, tokens=host_tokens), 1)


def rates(result: dict, seeds: int) -> dict:
    run = result["run"]
    return dict(result, tokens_per_s=result["tokens"] / run, updates_per_s=seeds * NUM_UPDATES / run)


def ppo_setup():
    model = pretrain.Config().model
    params = model.init(jax.random.key(0), jnp.zeros((1, model.context_length), jnp.int32))
    value_model = reward_model.RewardModel(model)
    value_init = reward_model.init_params(value_model, jax.random.key(1), params)
    config = rlhf.Config(num_updates=NUM_UPDATES, batch_size=64, num_epochs=4, num_minibatches=4)
    return model, params, value_model, value_init, config


def ppo_benchmark() -> dict:
    model, params, value_model, value_init, config = ppo_setup()
    prompts = rewards.review_prompts()
    train = rlhf.make_train(config, model, params, value_model, value_init, prompts, rewards.true_reward,
                            rewards.true_reward)
    tokens_of = lambda out: jnp.sum(out[1].length) * config.batch_size
    one = fused(lambda k: train(k[0]), jax.random.split(jax.random.key(2), 1), tokens_of)
    many = rates(fused(jax.vmap(train), jax.random.split(jax.random.key(2), SEEDS), tokens_of), SEEDS)

    controller = rlhf.make_controller(config, config.init_beta)
    sample = jax.jit(lambda key, p: rlhf.sample(key, config, model, p, prompts))

    @jax.jit
    def update(state, tokens, mask, score, key):
        batch = rlhf.prepare(tokens, mask, score, score, config, model, value_model, state.params, params,
                             state.kl.beta)
        return rlhf.learn(state, batch, key, config, model, value_model, controller)

    def loop():
        state, total = rlhf.init_state(config, params, value_init, controller), 0.0
        for key in jax.random.split(jax.random.key(3), NUM_UPDATES):
            sample_key, learn_key = jax.random.split(key)
            gen = sample(sample_key, state.params.policy)
            state, metrics = update(state, gen.tokens, gen.mask, host_scores(python_true_reward, gen), learn_key)
            total += float(metrics.length) * config.batch_size
        return total

    one, host = side_by_side(one, loop)
    return dict(fused_1=one, fused_4=many, host_1=host)


def grpo_benchmark() -> dict:
    model = pretrain.Config().model
    params = model.init(jax.random.key(0), jnp.zeros((1, model.context_length), jnp.int32))
    pairs = rewards.arithmetic_pairs()
    prompts = rewards.arithmetic_prompts(pairs)
    config = pg.Config(estimator="grpo", num_updates=NUM_UPDATES, eval_every=NUM_UPDATES, prompts_per_batch=8,
                       group_size=8, num_inner=1, eval_samples=1)
    exact = lambda tokens, mask: rewards.arithmetic_reward(tokens)
    train = pg.make_train(config, model, params, prompts, prompts[:1], exact)
    tokens_of = lambda out: jnp.sum(out[1].length) * config.batch_size
    one = fused(lambda k: train(k[0]), jax.random.split(jax.random.key(2), 1), tokens_of)
    many = rates(fused(jax.vmap(train), jax.random.split(jax.random.key(2), SEEDS), tokens_of), SEEDS)

    sample = jax.jit(lambda key, p: pg.sample(key, config, model, p, prompts))
    update = jax.jit(lambda state, tokens, mask, reward: pg.learn(state, tokens, mask, reward, config, model, params))

    def loop():
        state, total = pg.init_state(config, params), 0.0
        for key in jax.random.split(jax.random.key(3), NUM_UPDATES):
            gen = sample(key, state.params)
            state, metrics = update(state, gen.tokens, gen.mask, host_scores(python_exact_match, gen))
            total += float(metrics.length) * config.batch_size
        return total

    one, host = side_by_side(one, loop)
    return dict(fused_1=one, fused_4=many, host_1=host)


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; {NUM_UPDATES} updates per run")
    for name, bench in (("PPO-RLHF (B=64, 4 epochs x 4 minibatches)", ppo_benchmark),
                        ("GRPO (8 prompts x 8 replies, 1 update per batch)", grpo_benchmark)):
        result = bench()
        print(f"\n{name}")
        print(f"  {'structure':<24}{'compile s':>10}{'run s':>8}{'tokens/s':>11}{'updates/s':>11}")
        for key, label in (("fused_1", "one jit, 1 seed"), ("fused_4", f"jit(vmap), {SEEDS} seeds"),
                           ("host_1", "host loop, 1 seed")):
            r = result[key]
            print(f"  {label:<24}{r['compile']:>10.1f}{r['run']:>8.2f}{r['tokens_per_s']:>11.0f}"
                  f"{r['updates_per_s']:>11.2f}")
        ratio = result["fused_1"]["updates_per_s"] / result["host_1"]["updates_per_s"]
        print(f"  fused / host loop at 1 seed: {ratio:.2f}x updates per second")


if __name__ == "__main__":
    main()
