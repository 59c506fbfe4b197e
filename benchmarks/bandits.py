"""Time the 10-armed testbed (2,000 runs x 1,000 steps) and LinUCB (1,000 runs x 10,000 rounds, d = 20).

Ours: ``jax.jit(jax.vmap(lambda k: bandits.run(agent, k)))`` over 2,000 keys, timed on
its first call (tracing, compilation and the run: what a reader waits for) and on a
second call (steady state, best of three). Baseline: the fast conventional way in
NumPy, vectorised across the 2,000 runs with a Python loop over the 1,000 steps.

Goal: the first call finishes in under 5 s on a 2-core machine.

LinUCB (``rlbook_lib.contextual_bandits``): 1,000 runs x 10,000 rounds of a world with
K = 10 items and d = 20 features, ``jax.jit(jax.vmap(...))`` over the runs, against the
same algorithm in NumPy, vectorised across the runs with a Python loop over rounds. Both
keep A_a^{-1} by Sherman-Morrison updates. Every NumPy round costs the same (fixed array
sizes), so it is timed on its first ``NUMPY_ROUNDS`` rounds and scaled up, as printed.

    .venv/bin/python benchmarks/bandits.py            # both
    .venv/bin/python benchmarks/bandits.py linucb     # LinUCB only
"""

from __future__ import annotations


import numpy as np

import sys

from rlbook_lib import bandits, contextual_bandits  # sets the XLA flags before JAX starts  # isort: skip
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


LINUCB_RUNS, LINUCB_ROUNDS, LINUCB_ITEMS, LINUCB_DIM, LINUCB_ALPHA = 1000, 10_000, 10, 20, 1.0
NUMPY_ROUNDS = 1000


def numpy_linucb(world, seed: int, num_rounds: int):
    """LinUCB for all runs at once, a Python loop over rounds; returns each run's total regret."""
    rng = np.random.default_rng(seed)
    x_all, theta = np.asarray(world.user_features), np.asarray(world.item_factors)
    q = x_all @ theta.T
    runs = np.arange(LINUCB_RUNS)
    a_inv = np.tile(np.eye(LINUCB_DIM, dtype=np.float32), (LINUCB_RUNS, LINUCB_ITEMS, 1, 1))
    b = np.zeros((LINUCB_RUNS, LINUCB_ITEMS, LINUCB_DIM), np.float32)
    regret = np.zeros(LINUCB_RUNS)
    for _ in range(num_rounds):
        users = rng.integers(0, len(x_all), LINUCB_RUNS)
        x = x_all[users]  # [runs, d]
        ax = np.einsum("rkij,rj->rki", a_inv, x)  # A_a^{-1} x for every arm
        mean = np.einsum("rkij,rkj,ri->rk", a_inv, b, x)  # x . theta_hat_a
        scores = mean + LINUCB_ALPHA * np.sqrt(np.einsum("rki,ri->rk", ax, x))
        actions = np.argmax(scores + 1e-6 * rng.random(scores.shape), axis=1)
        reward = q[users, actions] + rng.standard_normal(LINUCB_RUNS)
        u = ax[runs, actions]  # [runs, d]
        denom = 1.0 + np.einsum("ri,ri->r", u, x)
        a_inv[runs, actions] -= np.einsum("ri,rj->rij", u, u) / denom[:, None, None]
        b[runs, actions] += reward[:, None] * x
        regret += q[users].max(axis=1) - q[users, actions]
    return regret


def linucb_main() -> None:
    world = contextual_bandits.make_world(jax.random.key(0), num_users=1000, num_items=LINUCB_ITEMS,
                                          dim=LINUCB_DIM)
    agent = contextual_bandits.linucb(LINUCB_ALPHA)
    keys = jax.random.split(jax.random.key(1), LINUCB_RUNS)
    total = jax.jit(jax.vmap(lambda k: contextual_bandits.run(agent, world, k, LINUCB_ROUNDS).regret.sum()))
    run = lambda: jax.block_until_ready(total(keys))  # noqa: E731
    jax_regret, first = timed(run)
    _, steady = best_of(run, 2)
    np_regret, np_seconds = timed(lambda: numpy_linucb(world, seed=0, num_rounds=NUMPY_ROUNDS))
    np_time = np_seconds * LINUCB_ROUNDS / NUMPY_ROUNDS
    steps = LINUCB_RUNS * LINUCB_ROUNDS
    print(f"LinUCB, {LINUCB_RUNS} runs x {LINUCB_ROUNDS} rounds, K = {LINUCB_ITEMS}, d = {LINUCB_DIM}, "
          f"c = {LINUCB_ALPHA}, {jax.devices()[0]}")
    print(f"  JAX jit(vmap) first call {first:8.2f} s   steady {steady:8.2f} s  ({steps / steady:,.0f} rounds/s)")
    print(f"  NumPy loop over rounds   {np_time:8.2f} s   ({NUMPY_ROUNDS} rounds timed: {np_seconds:.2f} s, "
          f"x {LINUCB_ROUNDS // NUMPY_ROUNDS})")
    print(f"  NumPy / JAX: {np_time / first:.1f} x (first call), {np_time / steady:.1f} x (steady)")
    print(f"  mean total regret: JAX {float(np.mean(jax_regret)):.1f} over {LINUCB_ROUNDS} rounds; "
          f"NumPy {float(np.mean(np_regret)):.1f} over its first {NUMPY_ROUNDS}")


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
    if sys.argv[1:] != ["linucb"]:
        main()
    linucb_main()
