"""Time the 10-armed testbed: 2,000 runs x 1,000 steps for one agent.

Ours: ``jax.jit(jax.vmap(lambda k: bandits.run(agent, k)))`` over 2,000 keys, timed on
its first call (tracing, compilation and the run: what a reader waits for) and on a
second call (steady state, best of three). Baseline: the fast conventional way in
NumPy, vectorised across the 2,000 runs with a Python loop over the 1,000 steps.

Goal: the first call finishes in under 5 s on a 2-core machine.

    .venv/bin/python benchmarks/bandits.py
"""

from __future__ import annotations


import numpy as np

from rlbook_lib import bandits  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
from timing import best_of, timed  # noqa: E402  benchmarks/timing.py

NUM_RUNS, NUM_STEPS, NUM_ARMS = 2000, 1000, 10
GOAL_S = 5.0
LAST = slice(-100, None)  # steps 901-1000


def numpy_testbed(select, seed: int, step_size=None):
    """All runs at once, a Python loop over steps t = 0, 1, ...

    ``select(rng, q, counts, pulls) -> [runs]``, with pulls = t + 1 counting the coming one.
    """
    rng = np.random.default_rng(seed)
    runs = np.arange(NUM_RUNS)
    q_star = rng.normal(0.0, 1.0, (NUM_RUNS, NUM_ARMS))
    is_optimal = q_star == q_star.max(axis=1, keepdims=True)
    q = np.zeros((NUM_RUNS, NUM_ARMS), dtype=np.float32)
    counts = np.zeros((NUM_RUNS, NUM_ARMS), dtype=np.int32)
    rewards = np.empty((NUM_RUNS, NUM_STEPS), dtype=np.float32)
    optimal = np.empty((NUM_RUNS, NUM_STEPS), dtype=bool)
    for t in range(NUM_STEPS):
        actions = select(rng, q, counts, pulls=t + 1)
        reward = q_star[runs, actions] + rng.standard_normal(NUM_RUNS)
        counts[runs, actions] += 1
        alpha = 1.0 / counts[runs, actions] if step_size is None else step_size
        q[runs, actions] += alpha * (reward - q[runs, actions])
        rewards[:, t], optimal[:, t] = reward, is_optimal[runs, actions]
    return rewards, optimal


def random_argmax(rng, values):
    """Row-wise argmax with ties broken uniformly at random."""
    is_max = values == values.max(axis=1, keepdims=True)
    return np.argmax(np.where(is_max, rng.random(values.shape), -1.0), axis=1)


def numpy_epsilon_greedy(epsilon):
    def select(rng, q, counts, pulls):
        explore = rng.random(NUM_RUNS) < epsilon
        random_arm = rng.integers(0, NUM_ARMS, NUM_RUNS)
        return np.where(explore, random_arm, random_argmax(rng, q))

    return select


def numpy_ucb(c):
    def select(rng, q, counts, pulls):
        with np.errstate(divide="ignore", invalid="ignore"):  # N = 0: replaced by inf
            bound = q + c * np.sqrt(np.log(pulls) / counts)  # ln(t + 1), S&B's ln t
        return random_argmax(rng, np.where(counts == 0, np.inf, bound))

    return select


def time_jax(agent):
    keys = jax.random.split(jax.random.key(0), NUM_RUNS)
    testbed = jax.jit(jax.vmap(lambda k: bandits.run(agent, k, num_steps=NUM_STEPS)))
    run = lambda: jax.block_until_ready(testbed(keys))  # noqa: E731
    trace, first = timed(run)
    _, steady = best_of(run, 3)
    return first, steady, np.asarray(trace.rewards), np.asarray(trace.optimal)


def time_numpy(select):
    (rewards, optimal), seconds = timed(lambda: numpy_testbed(select, seed=0))
    return seconds, rewards, optimal


def main() -> None:
    cases = [
        ("epsilon-greedy eps=0.1", bandits.epsilon_greedy(0.1), numpy_epsilon_greedy(0.1)),
        ("UCB c=2", bandits.ucb(2.0), numpy_ucb(2.0)),
    ]
    print(f"10-armed testbed, {NUM_RUNS} runs x {NUM_STEPS} steps, {jax.devices()[0]}")
    header = (
        f"{'agent':24s} {'JAX 1st call':>13s} {'JAX steady':>11s} {'NumPy':>8s}"
        f" {'NumPy/1st':>10s} {'NumPy/steady':>13s}  {'R JAX/NumPy':>13s}"
        f"  {'%opt JAX/NumPy':>14s}  goal: 1st call < {GOAL_S:.0f} s"
    )
    print(header)
    print("-" * len(header))
    for name, agent, select in cases:
        first, steady, jax_rewards, jax_optimal = time_jax(agent)
        np_time, np_rewards, np_optimal = time_numpy(select)
        verdict = "PASS" if first < GOAL_S else "FAIL"
        print(
            f"{name:24s} {first:12.2f}s {steady:10.2f}s {np_time:7.2f}s"
            f" {np_time / first:10.2f} {np_time / steady:13.2f}"
            f"  {jax_rewards[:, LAST].mean():6.3f} / {np_rewards[:, LAST].mean():.3f}"
            f"  {100 * jax_optimal[:, LAST].mean():6.1f} / {100 * np_optimal[:, LAST].mean():.1f}"
            f"  {verdict}"
        )
    print("NumPy/...: time ratios; above 1 means JAX is faster.")
    print("R, %opt: average reward and % optimal action over steps 901-1000. The two")
    print("implementations draw different problems, so they agree within sampling noise only.")


if __name__ == "__main__":
    main()
