"""PPO on CartPole-v1 at PureJaxRL's default configuration, and a tuned configuration.

Run ``python benchmarks/ppo.py`` (a few minutes). Two configurations of ``ppo.Config``:

* **purejaxrl**: the defaults, exactly PureJaxRL's CartPole PPO: N = 4 environments
  × T = 128 steps per update, K = 4 epochs of M = 4 minibatches, 64-64 tanh networks
  with orthogonal initialisation, Adam 2.5e-4 annealed linearly to 0, 5·10⁵ steps. One
  deliberate difference: our GAE bootstraps from v(o_T) at CartPole's 500-step time limit,
  where PureJaxRL's single ``done`` flag treats the cut as a termination;
* **tuned**: RL Baselines3 Zoo's CartPole hyperparameters (N = 8, T = 32, K = 20
  epochs of one 256-sample batch, γ = 0.98, λ = 0.8, no entropy bonus, Adam 1e-3
  annealed; the Zoo also anneals the clip range, which we keep at 0.2), 10⁵ steps.

For 1 seed and for 8 seeds in one ``jax.jit(jax.vmap(train))`` call, columns:
**compile** (lowering and compiling, s), **run** (best of ``REPEATS`` compiled runs, s),
**env steps/s** (all seeds' environment steps per second, learning included),
**@475** (per seed, the first environment step at which the mean return of the last
10 finished episodes reaches 475; then the median over seeds, the latest seed's step if
all got there, and how many seeds got there), and **final** (median over seeds of that
mean at the end). The last line
compares the 8-seed call with 8 sequential 1-seed calls.

Two runs of this script under a load average of 8 to 11 (other jobs sharing the 2 cores;
provisional, slow by a factor of 2 to 3) measured: purejaxrl compile 20-34 s, 8.8-10.3 s
for 1 seed (49-57k steps/s), 36-37 s for 8 seeds vmapped (about 110k steps/s) against
71-82 s for 8 sequential calls; 475 reached by all 8 seeds, at a median of 149,504 steps
(the latest at 175,616). Tuned: all 8 seeds at 475 within 10⁵ steps (median 33,792, the
latest at 61,440); 8 seeds vmapped in 28.6 s and 31.5 s against 41.1 s and 31.4 s for 8
sequential calls (the second run a tie: the 1-seed runs happened to meet less load).

The learning phase is mostly arithmetic: each of the 977 × 16 minibatch steps multiplies
128 samples through two 64-64 networks forwards and backwards (about 7 MFLOP), some 10¹¹
floating-point operations per seed in all, so on 2 cores vmapping over seeds saves little
beyond per-operation overheads.

For orientation (not run here): on the same 2-core machine PureJaxRL's PPO at the
first configuration compiles in about 4.0 s and runs in about 3.4 s (≈146k steps/s)
for 1 seed, and in about 25.5 s for 8 seeds vmapped; PyTorch implementations run at
about 4-5k steps/s (CleanRL 111 s for 5·10⁵ steps). Other processes on a small machine
move the numbers a lot: read the load average in the header.
"""

from __future__ import annotations

import dataclasses
import os

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import jax
import numpy as np

from rlbook_lib import ppo
from rlbook_lib.envs import cartpole
from timing import best_of, timed  # noqa: E402  benchmarks/timing.py

TARGET = 475.0
REPEATS = 2
CONFIGS = {
    "purejaxrl": ppo.Config(),
    "tuned": ppo.Config(num_envs=8, num_steps=32, total_steps=100_000, num_epochs=20, num_minibatches=1,
                        gamma=0.98, gae_lambda=0.8, entropy_coef=0.0, learning_rate=1e-3),
}


def steps_to_target(config: ppo.Config, episode_return: np.ndarray) -> np.ndarray:
    """Per seed, the env step after the first update whose recent mean reaches TARGET (NaN if never)."""
    reached = np.nan_to_num(episode_return, nan=-np.inf) >= TARGET  # [seeds, updates]
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), -1)
    return np.where(first >= 0, (first + 1) * config.steps_per_update, np.nan)


def measure(config: ppo.Config, num_seeds: int) -> dict:
    env = cartpole.CartPole()
    train = jax.jit(jax.vmap(ppo.make_train(config, env, env.default_params())))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    compiled, compile_time = timed(lambda: train.lower(keys).compile())
    (_, metrics), run_time = best_of(lambda: jax.block_until_ready(compiled(keys)), REPEATS, pause=0.05)
    returns = np.asarray(metrics.episode_return)
    at = steps_to_target(config, returns)
    steps = num_seeds * config.num_updates * config.steps_per_update
    return dict(compile=compile_time, run=run_time, steps_per_s=steps / run_time, at=at,
                final=float(np.median(returns[:, -1])))


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    header = ("config", "seeds", "compile s", "run s", "env steps/s", "median step @475", "last seed @475",
              "seeds @475", "final")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, config in CONFIGS.items():
        runs = {}
        for num_seeds in (1, 8):
            r = runs[num_seeds] = measure(config, num_seeds)
            reached = np.isfinite(r["at"])
            median = f"{np.median(r['at']):,.0f}" if reached.sum() * 2 > reached.size else "-"
            last = f"{np.max(r['at']):,.0f}" if reached.all() else "-"
            print(f"| {name} | {num_seeds} | {r['compile']:.1f} | {r['run']:.2f} | {r['steps_per_s']:,.0f} | "
                  f"{median} | {last} | {reached.sum()}/{reached.size} | {r['final']:.0f} |", flush=True)
        print(f"\n{name}: 8 seeds in one call {runs[8]['run']:.2f} s against 8 sequential calls "
              f"{8 * runs[1]['run']:.2f} s; steps per update {config.steps_per_update}, "
              f"{dataclasses.asdict(config)}\n")


if __name__ == "__main__":
    main()
