"""Sampling from the book's transformer with and without the key-value cache, and
pre-training throughput.

Run ``python benchmarks/generate.py`` (about a minute on two CPU cores). It reports

* **generation**: 256 sequences of 64 new tokens each (a BOS prompt, a context of 65
  positions), with :func:`rlbook_lib.llm.generation.generate` under ``jit``, with the
  cache (each step feeds one token through the model) and without (each step
  recomputes all 65 positions). The model is the pre-training architecture
  (``pretrain.Config()``) with random weights, so few sequences end early; the scan
  runs all 64 steps for every sequence either way, so tokens/s counts 256 × 64
  tokens. Compile time, the best of ``REPEATS`` runs, tokens/s and the ratio.
* **pre-training**: ``pretrain.make_train(pretrain.Config())`` once compiled, one
  run: steps/s, and tokens/s counted two ways, every position of the batch
  (batch × context) and only the predicted ones (the expected sentence length).

The outputs depend on every step (all tokens are returned and summed), so XLA cannot
drop work. Other processes on a small machine move the numbers: read the load
average in the header.
"""

from __future__ import annotations

import dataclasses
import os

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import jax
import jax.numpy as jnp

from rlbook_lib.llm import generation, grammar, pretrain
from rlbook_lib.llm.tokenizer import BOS
from timing import best_of, timed  # noqa: E402  benchmarks/timing.py

NUM_SEQUENCES, NEW_TOKENS, REPEATS = 256, 64, 3


def measure_generation(use_cache: bool, model, params) -> dict:
    prompts = jnp.full((NUM_SEQUENCES, 1), BOS, jnp.int32)
    key = jax.random.key(0)
    run = lambda: jax.block_until_ready(
        generation.generate(model, params, prompts, key, use_cache=use_cache).tokens.sum())
    _, first = timed(run)  # compiles, then runs once
    _, best = best_of(run, REPEATS, pause=0.05)
    return dict(compile=first - best, run=best, tokens_per_s=NUM_SEQUENCES * NEW_TOKENS / best)


def measure_training(config: pretrain.Config) -> dict:
    train = jax.jit(pretrain.make_train(config))
    key = jax.random.key(0)
    compiled, compile_time = timed(lambda: train.lower(key).compile())
    _, run = timed(lambda: jax.block_until_ready(compiled(key)))
    positions = config.num_steps * config.batch_size * grammar.CONTEXT_LENGTH
    predicted = config.num_steps * config.batch_size * grammar.expected_tokens()
    return dict(compile=compile_time, run=run, steps_per_s=config.num_steps / run,
                positions_per_s=positions / run, predicted_per_s=predicted / run)


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    config = pretrain.Config()
    model = dataclasses.replace(config.model, context_length=1 + NEW_TOKENS)
    params = jax.jit(model.init)(jax.random.key(1), jnp.zeros((1, model.context_length), jnp.int32))
    print(f"generation: {NUM_SEQUENCES} sequences x {NEW_TOKENS} new tokens, d = {model.d_model}, "
          f"{model.num_layers} layers, {model.num_heads} heads, best of {REPEATS}\n")
    rows = {name: measure_generation(cache, model, params) for name, cache in
            (("cached", True), ("uncached", False))}
    print("| generation | compile s | run s | tokens/s |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['compile']:.2f} | {r['run']:.3f} | {r['tokens_per_s']:,.0f} |")
    print(f"\ncached / uncached tokens/s: {rows['cached']['tokens_per_s'] / rows['uncached']['tokens_per_s']:.1f}x\n")
    t = measure_training(config)
    print(f"pre-training ({config.num_steps} steps of {config.batch_size} sentences): "
          f"compile {t['compile']:.1f} s, run {t['run']:.1f} s, {t['steps_per_s']:.0f} steps/s, "
          f"{t['positions_per_s']:,.0f} positions/s, {t['predicted_per_s']:,.0f} predicted tokens/s")


if __name__ == "__main__":
    main()
