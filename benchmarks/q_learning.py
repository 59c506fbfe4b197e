"""Time tabular Q-learning on cliff walking: 500 episodes, for 1 run and for 100 runs.

Ours: ``jax.jit(jax.vmap(lambda k: td.run_control(config, env, params, k, 500)))``
over the keys, on ``envs.cliff_walking.CliffWalking`` (ε = 0.1, α = 0.5, γ = 1,
S&B Fig. 6.4), timed on its first call (tracing, compilation and the run: what a
reader waits for) and on later calls (steady state, best of three).

Baseline: the same algorithm as a plain Python loop over runs, episodes and steps,
with NumPy for Q and the random numbers, on gymnasium's own ``CliffWalking-v1``
(``gymnasium.make``, reset and step as usual): the conventional way to write it.

    .venv/bin/python benchmarks/q_learning.py
"""

from __future__ import annotations


import gymnasium
import numpy as np

from rlbook_lib import td  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402

from rlbook_lib.envs import cliff_walking  # noqa: E402
from timing import best_of, timed  # noqa: E402  benchmarks/timing.py

NUM_EPISODES, EPSILON, STEP_SIZE = 500, 0.1, 0.5
RUN_COUNTS = (1, 100)


def numpy_q_learning(seed: int) -> np.ndarray:
    """One run of S&B's Q-learning box; returns the online return of each episode."""
    rng = np.random.default_rng(seed)
    env = gymnasium.make("CliffWalking-v1")
    q = np.zeros((48, 4))
    returns = np.empty(NUM_EPISODES)
    env.reset(seed=seed)  # CliffWalking-v1 always starts in the same cell
    for episode in range(NUM_EPISODES):
        s, _ = env.reset()
        total, done = 0.0, False
        while not done:
            if rng.random() < EPSILON:
                a = int(rng.integers(4))
            else:
                a = int(rng.choice(np.flatnonzero(q[s] == q[s].max())))  # random tie-breaking
            s_next, r, terminated, truncated, _ = env.step(a)
            target = r + (0.0 if terminated else q[s_next].max())
            q[s, a] += STEP_SIZE * (target - q[s, a])
            s, total, done = s_next, total + r, terminated or truncated
        returns[episode] = total
    return returns


def time_numpy(num_runs: int) -> tuple[float, np.ndarray]:
    returns, seconds = timed(lambda: np.stack([numpy_q_learning(seed) for seed in range(num_runs)]))
    return seconds, returns


def time_jax(num_runs: int) -> tuple[float, float, np.ndarray]:
    env = cliff_walking.CliffWalking()
    params = env.default_params()
    config = td.ControlConfig("q_learning", epsilon=EPSILON, step_size=STEP_SIZE)
    train = jax.jit(jax.vmap(lambda k: td.run_control(config, env, params, k, NUM_EPISODES)))
    keys = jax.random.split(jax.random.key(0), num_runs)
    run = lambda: jax.block_until_ready(train(keys))  # noqa: E731
    result, first = timed(run)
    _, steady = best_of(run, 3)
    return first, steady, np.asarray(result.episode_returns)


def main() -> None:
    print(f"Q-learning on cliff walking, {NUM_EPISODES} episodes per run, eps={EPSILON}, "
          f"alpha={STEP_SIZE}, {jax.devices()[0]}")
    header = (f"{'runs':>5s} {'JAX 1st call':>13s} {'JAX steady':>11s} {'NumPy':>8s}"
              f" {'ep/s JAX steady':>16s} {'ep/s NumPy':>11s} {'ratio':>7s}  {'R last 100 JAX/NumPy':>21s}")
    print(header)
    print("-" * len(header))
    for num_runs in RUN_COUNTS:
        first, steady, jax_returns = time_jax(num_runs)
        np_time, np_returns = time_numpy(num_runs)
        episodes = num_runs * NUM_EPISODES
        print(f"{num_runs:5d} {first:12.2f}s {steady:10.3f}s {np_time:7.2f}s"
              f" {episodes / steady:16,.0f} {episodes / np_time:11,.0f} {np_time / steady:7.1f}"
              f"  {jax_returns[:, -100:].mean():9.1f} / {np_returns[:, -100:].mean():.1f}")
    print("ratio: NumPy time / JAX steady time (above 1: JAX is faster). The first call adds")
    print("compilation. R: mean online return over episodes 401-500 (S&B: about -50); the two")
    print("implementations draw different random numbers, so they agree within sampling noise only.")


if __name__ == "__main__":
    main()
