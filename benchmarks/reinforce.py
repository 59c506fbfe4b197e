"""REINFORCE on CartPole-v1: compile time, throughput, and wall time to a solved policy.

Run ``python benchmarks/reinforce.py`` (about a minute or two). For each variant
(with and without the learned baseline, ``reinforce.Config``'s defaults otherwise)
and for 1 seed and for 8 seeds in one ``jax.jit(jax.vmap(train))`` call it reports

* **compile**: lowering and compiling ``train`` (seconds);
* **run**: the best of ``REPEATS`` runs of all ``num_updates`` updates, compiled;
* **env steps/s**: every environment step simulated per second, the gradient steps
  included. Each update runs N environments for T = 500 steps, whatever the
  episodes' lengths, so this counts the steps after each first episode too;
* **used steps/s**: only the steps of the first episodes, the ones the gradient sees;
* **to 475**: the first update after which the median over seeds of the update's mean
  episode return reaches 475, and the wall time until then. Every update costs the
  same (fixed T), so that time is run × (update + 1) / num_updates.

The result of ``train`` (its metrics) depends on every step, so XLA cannot remove the
work. For comparison, on the same 2-core machine a whole-loop-jitted PPO (PureJaxRL)
trains 500k CartPole steps in about 3.5 s after about 4.4 s of compilation (~145k
steps/s with its updates), and PyTorch libraries manage about 4-5k steps/s. Other
processes on a small machine move the numbers a lot: read the load average in the
header.
"""

from __future__ import annotations

import os

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import jax
import numpy as np

from rlbook_lib import reinforce
from rlbook_lib.envs import cartpole
from timing import best_of, timed  # noqa: E402  benchmarks/timing.py

SEEDS = (1, 8)
REPEATS = 3
TARGET = 475.0
VARIANTS = {
    "with baseline": reinforce.Config(),
    "no baseline": reinforce.Config(baseline=False),
}


def measure(config: reinforce.Config, num_seeds: int) -> dict:
    env = cartpole.CartPole()
    train = jax.jit(jax.vmap(reinforce.make_train(config, env, env.default_params())))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    compiled, compile_time = timed(lambda: train.lower(keys).compile())
    (_, metrics), run_time = best_of(lambda: jax.block_until_ready(compiled(keys)), REPEATS, pause=0.05)
    returns = np.asarray(metrics.episode_return)  # [seeds, updates]
    median = np.median(returns, axis=0)
    reached = np.flatnonzero(median >= TARGET)
    update = int(reached[0]) if reached.size else None
    simulated = num_seeds * config.num_updates * reinforce.steps_per_update(config, env)
    used = float(np.sum(metrics.episode_length)) * config.num_envs
    return dict(
        compile=compile_time,
        run=run_time,
        steps_per_s=simulated / run_time,
        used_per_s=used / run_time,
        update=update,
        to_target=None if update is None else run_time * (update + 1) / config.num_updates,
        final=float(np.median(returns[:, -5:].mean(axis=1))),
    )


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    config = reinforce.Config()
    env = cartpole.CartPole()
    print(f"CartPole-v1, N = {config.num_envs} episodes per update, {config.num_updates} updates, "
          f"{reinforce.steps_per_update(config, env)} env steps per update and seed, "
          f"hidden {config.hidden_sizes}, best of {REPEATS} runs\n")
    header = ("variant", "seeds", "compile s", "run s", "env steps/s", "used steps/s",
              "update @475", "s to 475", "+compile", "final median")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, variant in VARIANTS.items():
        for num_seeds in SEEDS:
            r = measure(variant, num_seeds)
            hit = "never" if r["update"] is None else str(r["update"] + 1)
            to = "-" if r["to_target"] is None else f"{r['to_target']:.2f}"
            total = "-" if r["to_target"] is None else f"{r['to_target'] + r['compile']:.1f}"
            print(f"| {name} | {num_seeds} | {r['compile']:.1f} | {r['run']:.2f} | {r['steps_per_s']:,.0f} | "
                  f"{r['used_per_s']:,.0f} | {hit} | {to} | {total} | {r['final']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
