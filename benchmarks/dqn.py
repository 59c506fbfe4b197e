"""DQN on CartPole-v1: our whole-loop-jitted DQN against a tutorial-style Python loop.

Run ``python benchmarks/dqn.py`` (a few minutes). Both agents use the same
algorithm and settings (``dqn.Config()``'s defaults, printed in the header: 100k
environment steps, one gradient step on a batch of 64 every N F = 8 environment
steps, a target copy every 50 gradient steps, 8 greedy evaluation episodes every
5,000 steps), and both count the evaluation episodes in their wall time.

* **ours**: ``jax.jit(jax.vmap(dqn.make_train(...)))`` for 1 seed and for 8 seeds
  in one call: N = 8 JAX CartPoles stepped with ``vmap``, the replay buffer, the
  updates and the evaluations all inside one ``lax.scan``;
* **tutorial**: how most tutorials write DQN: a Python loop over one
  ``gymnasium.make("CartPole-v1")``, a NumPy ring buffer, ε-greedy actions from a
  jitted forward pass, and a jitted gradient step (the same ``dqn.loss`` and
  Adam) called from Python. One seed (eight would take eight times as long).

Columns: **compile** (lowering and compiling, seconds; for the tutorial, the
first calls of its jitted functions), **run** (seconds, compiled), **env steps/s**
(all seeds' environment steps per second, updates and evaluations included) and
**to 475** (wall time until the median over seeds of the greedy evaluation
return first reaches 475; every evaluation period costs about the same, so for
ours it is run × (evaluation + 1) / num_evaluations).

For orientation (not run here): on the same 2-core machine PureJaxRL's
whole-loop-jitted DQN (10 environments, 5×10⁵ steps, one gradient step on 128
transitions every 10 steps) takes about 12 s after about 3.4 s of compilation
(~42k steps/s) and first averages ≥ 475 at about 190k steps. Other processes on
a small machine move the numbers a lot: read the load average in the header.
"""

from __future__ import annotations

import os
import time

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import gymnasium
import jax
import numpy as np
import optax

from rlbook_lib import dqn, rollout
from rlbook_lib.envs import cartpole
from timing import best_of, timed  # noqa: E402  benchmarks/timing.py

TARGET = 475.0
REPEATS = 2
CONFIG = dqn.Config()


def measure_ours(num_seeds: int) -> dict:
    env = cartpole.CartPole()
    train = jax.jit(jax.vmap(dqn.make_train(CONFIG, env, env.default_params())))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    compiled, compile_time = timed(lambda: train.lower(keys).compile())
    (_, metrics), run_time = best_of(lambda: jax.block_until_ready(compiled(keys)), REPEATS, pause=0.05)
    median = np.median(np.asarray(metrics.evaluation.episode_return), axis=0)  # [num_evaluations]
    reached = np.flatnonzero(median >= TARGET)
    to_target = run_time * (reached[0] + 1) / CONFIG.num_evaluations if reached.size else None
    at = int(np.asarray(metrics.evaluation.env_steps)[0, reached[0]]) if reached.size else None
    return dict(compile=compile_time, run=run_time, steps_per_s=num_seeds * CONFIG.total_steps / run_time,
                to_target=to_target, at=at, final=float(median[-1]))


def tutorial_dqn(seed: int = 0) -> dict:
    """The tutorial way: Python loop, gymnasium env, NumPy buffer, jitted forward pass and update."""
    config, rng = CONFIG, np.random.default_rng(seed)
    env = gymnasium.make("CartPole-v1")
    jax_env = cartpole.CartPole()
    q_network = dqn.make_network(config, jax_env, jax_env.default_params())
    params = q_network.init(jax.random.key(seed), np.zeros(4, np.float32))
    target_params, tx = params, dqn.optimizer(config)
    opt_state = tx.init(params)

    @jax.jit
    def q_values(params, obs):
        return q_network.apply(params, obs)

    @jax.jit
    def train_step(params, target_params, opt_state, batch):
        grads = jax.grad(lambda p: dqn.loss(config, q_network, p, target_params, batch)[0])(params)
        steps, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, steps), opt_state

    C = config.buffer_size
    buf = dict(obs=np.zeros((C, 4), np.float32), action=np.zeros(C, np.int32), reward=np.zeros(C, np.float32),
               next_obs=np.zeros((C, 4), np.float32), terminated=np.zeros(C, bool))
    position = size = gradient_steps = 0
    # One gradient step every N F environment steps, as ours takes.
    every = config.steps_per_update
    start = time.perf_counter()
    first_call = None
    obs, _ = env.reset(seed=seed)
    returns, times = [], []
    for step in range(1, config.total_steps + 1):
        eps = float(dqn.epsilon(config, step - 1))
        if rng.random() < eps:
            action = int(rng.integers(2))
        else:
            action = int(np.argmax(np.asarray(q_values(params, obs))))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for name, value in (("obs", obs), ("action", action), ("reward", reward), ("next_obs", next_obs),
                            ("terminated", terminated)):
            buf[name][position] = value
        position, size = (position + 1) % C, min(size + 1, C)
        obs = env.reset()[0] if terminated or truncated else next_obs
        if step % every == 0 and step >= config.learning_starts:
            idx = rng.integers(size, size=config.batch_size)
            batch = rollout.Transition(buf["obs"][idx], buf["action"][idx], buf["reward"][idx],
                                           buf["next_obs"][idx], buf["terminated"][idx],
                                           np.zeros(config.batch_size, bool), None, None)
            t0 = time.perf_counter()
            params, opt_state = train_step(params, target_params, opt_state, batch)
            if first_call is None:
                jax.block_until_ready(params)
                first_call = time.perf_counter() - t0
            gradient_steps += 1
            if gradient_steps % config.target_update_period == 0:
                target_params = params
        if step % config.evaluation_period == 0:
            returns.append(evaluate_in_gymnasium(q_values, params, config.num_eval_episodes, seed + step))
            times.append(time.perf_counter() - start)
    run = time.perf_counter() - start
    returns = np.array(returns)
    reached = np.flatnonzero(returns >= TARGET)
    return dict(compile=first_call, run=run, steps_per_s=config.total_steps / run,
                to_target=times[reached[0]] if reached.size else None,
                at=int((reached[0] + 1) * config.evaluation_period) if reached.size else None, final=returns[-1])


def evaluate_in_gymnasium(q_values, params, num_episodes: int, seed: int) -> float:
    """Mean return of greedy episodes in gymnasium's CartPole-v1."""
    env = gymnasium.make("CartPole-v1")
    total = 0.0
    for i in range(num_episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(np.argmax(np.asarray(q_values(params, obs)))))
            total += reward
            done = terminated or truncated
    return total / num_episodes


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"CartPole-v1, {CONFIG.total_steps:,} env steps per seed, N = {CONFIG.num_envs}, "
          f"a gradient step (B = {CONFIG.batch_size}) every {CONFIG.steps_per_update} steps, "
          f"target copy every {CONFIG.target_update_period} gradient steps, "
          f"hidden {CONFIG.hidden_sizes}, {CONFIG.num_eval_episodes} greedy episodes every "
          f"{CONFIG.evaluation_period:,} steps; ours: best of {REPEATS} runs\n")
    header = ("agent", "seeds", "compile s", "run s", "env steps/s", "steps @475", "s to 475", "final median")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rows = {}
    for name, seeds, fn in (("ours", 1, lambda: measure_ours(1)), ("ours", 8, lambda: measure_ours(8)),
                            ("tutorial loop", 1, tutorial_dqn)):
        r = rows[(name, seeds)] = fn()
        at = "never" if r["at"] is None else f"{r['at']:,}"
        to = "-" if r["to_target"] is None else f"{r['to_target']:.2f}"
        print(f"| {name} | {seeds} | {r['compile']:.2f} | {r['run']:.2f} | {r['steps_per_s']:,.0f} | {at} | {to} | "
              f"{r['final']:.0f} |", flush=True)
    tutorial = rows[("tutorial loop", 1)]["steps_per_s"]
    for seeds in (1, 8):
        print(f"\nours ({seeds} seed{'s' if seeds > 1 else ''}) / tutorial loop, env steps per second: "
              f"{rows[('ours', seeds)]['steps_per_s'] / tutorial:.1f}x")


if __name__ == "__main__":
    main()
