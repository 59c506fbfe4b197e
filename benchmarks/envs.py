"""CartPole-v1 steps per second: gymnasium's environments against ours under jit + vmap + scan.

Run ``python benchmarks/envs.py`` (about a minute). Every contender takes uniformly
random actions and resets each episode as soon as it ends (terminated, or truncated
at gymnasium's 500 steps):

* gymnasium's classic env, ``gym.make("CartPole-v1")``, stepped in a Python loop;
* gymnasium's vectorised NumPy env, ``gym.make_vec("CartPole-v1", num_envs=N,
  vectorization_mode="vector_entry_point")``, whose autoreset happens on the step
  after an episode ends (that step is counted like any other);
* ours: ``rollout.rollout`` of ``cartpole.CartPole()`` vmapped over N environments,
  all inside one ``jax.jit``; its ``lax.scan`` makes one call of ``rollout.step``
  per time step.

gymnasium gets its actions precomputed (drawn with ``jax.random`` up front), so its
time is the environment alone. Ours draws each action inside the loop from that
step's key, as an agent does. Steps per second count environment steps: N per call.
Compile time (first call minus the best later call) is reported separately. Each JAX
run returns the number of episode ends, which depends on every step, so XLA cannot
remove the work (a run returning a constant gets optimised away).

The second table takes ours apart at the largest N. ``jax.random`` (threefry) spends
about as much time on one 64-bit hash as CartPole's dynamics spend on a whole step,
and each step needs several: the step's keys, the random action, and the four
uniforms of the reset state, which under ``vmap`` is drawn every step for every
environment and kept only where an episode ended (a select, as ``lax.cond`` becomes
under ``vmap`` anyway). Other processes on a small machine move the numbers a lot:
read the load average in the header.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from rlbook_lib import rollout
from rlbook_lib.envs import cartpole
from timing import interleaved_best, timed  # noqa: E402  benchmarks/timing.py

GYM_SIZES = {1: 10_000, 8: 10_000, 256: 2_000}
"""Number of envs N: step calls for gymnasium's vectorised env."""
JAX_SIZES = {1: 20_000, 8: 20_000, 256: 2_000, 4096: 400}
"""Number of envs N: scan length T for ours."""
CLASSIC_STEPS = 20_000
ROUNDS = 4


def random_actions(key, shape) -> np.ndarray:
    return np.asarray(jax.random.bernoulli(key, 0.5, shape)).astype(np.int64)


def gymnasium_classic(actions: np.ndarray) -> int:
    """Step ``gym.make("CartPole-v1")`` through ``actions``; return the episode ends."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    ends = 0
    for action in actions.tolist():
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            ends += 1
            env.reset()
    return ends


def gymnasium_vector(actions: np.ndarray) -> int:
    """Step the vectorised env (N = actions.shape[1]) through ``actions`` [T, N]."""
    envs = gym.make_vec("CartPole-v1", num_envs=actions.shape[1], vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    ends = 0
    for action in actions:
        _, _, terminated, truncated, _ = envs.step(action)
        ends += int(np.sum(terminated | truncated))
    return ends


def bernoulli_policy(key, obs):
    """A uniformly random action out of two: one 32-bit draw."""
    return jax.random.bernoulli(key).astype(jnp.int32)


def randint_policy(key, obs):
    """The same distribution via ``randint``, which splits the key and draws twice."""
    return jax.random.randint(key, (), 0, 2)


def reset_all(env, params, key, num_envs):
    return jax.vmap(lambda k: rollout.reset(env, params, k))(jax.random.split(key, num_envs))


def ours(env, params, num_envs, num_steps, policy=bernoulli_policy):
    """jit(vmap(rollout.rollout)) over ``num_envs`` environments: key -> episode ends."""

    @jax.jit
    def run(key):
        key_reset, key_run = jax.random.split(key)
        states = reset_all(env, params, key_reset, num_envs)
        one = lambda k, s: rollout.rollout(env, params, policy, k, s, num_steps)[1].episode_ended
        ended = jax.vmap(one)(jax.random.split(key_run, num_envs), states)  # [N, T]
        return jnp.sum(ended)

    return run


def actions_up_front(env, params, num_envs, num_steps):
    """rollout.step in a scan over actions drawn before the loop in one call."""

    @jax.jit
    def run(key):
        key_reset, key_actions, key_steps = jax.random.split(key, 3)
        states = reset_all(env, params, key_reset, num_envs)
        actions = jax.random.bernoulli(key_actions, 0.5, (num_steps, num_envs)).astype(jnp.int32)

        def one_step(states, xs):
            actions, key = xs
            step = lambda k, s, a: rollout.step(env, params, k, s, a)
            states, transitions = jax.vmap(step)(jax.random.split(key, num_envs), states, actions)
            return states, jnp.sum(transitions.episode_ended)

        _, ends = jax.lax.scan(one_step, states, (actions, jax.random.split(key_steps, num_steps)))
        return jnp.sum(ends)

    return run


def dynamics_only(env, params, num_envs, num_steps):
    """env.step alone over actions drawn up front: no time limit, no reset, no keys.

    Without resets the carts leave the track; the arithmetic per step is the same.
    """

    @jax.jit
    def run(key):
        key_initial, key_actions = jax.random.split(key)
        states = jax.vmap(lambda k: env.initial(k, params))(jax.random.split(key_initial, num_envs))
        actions = jax.random.bernoulli(key_actions, 0.5, (num_steps, num_envs)).astype(jnp.int32)

        def one_step(states, actions):
            step = lambda s, a: env.step(key_initial, s, a, params)  # CartPole ignores the key
            result = jax.vmap(step)(states, actions)
            return result.next_state, jnp.sum(result.terminated)

        _, ends = jax.lax.scan(one_step, states, actions)
        return jnp.sum(ends)

    return run


def reset_draws_only(env, params, num_envs, num_steps):
    """Only the reset draw of every step: env.initial from a fresh key, as rollout.step does."""

    @jax.jit
    def run(key):
        def one_step(count, key):
            keys = jax.random.split(key, num_envs)
            draw = lambda k: env.observation(env.initial(jax.random.fold_in(k, 1), params), params)
            return count + jnp.sum(jax.vmap(draw)(keys) > 0), None  # positive entries

        count, _ = jax.lax.scan(one_step, jnp.int32(0), jax.random.split(key, num_steps))
        return count

    return run


class Contender(NamedTuple):
    name: str
    num_envs: int
    steps: int
    """Environment steps per call of ``run``."""
    run: Callable[[], int]
    """One timed run; returns the number of episode ends."""


def jax_contender(name, num_envs, steps, jitted) -> tuple[Contender, float]:
    """Wrap a jitted ``run(key)``; also return its first call's time (compile and run)."""
    _, first = timed(lambda: jax.block_until_ready(jitted(jax.random.key(0))))
    return Contender(name, num_envs, steps, lambda: int(jitted(jax.random.key(1)))), first


def best_times(contenders: list[Contender], rounds: int) -> tuple[list[float], list[int]]:
    """Best wall time of each contender over interleaved rounds, and its episode ends."""
    return interleaved_best([contender.run for contender in contenders], rounds, pause=0.05)


def main():
    env = cartpole.CartPole()
    params = env.default_params()
    print(f"CartPole-v1, random actions, auto-reset. jax {jax.__version__} on "
          f"{jax.devices()[0].device_kind}, gymnasium {gym.__version__} ({os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}). Best of {ROUNDS} interleaved rounds.")
    key = jax.random.key(42)
    classic_actions = random_actions(key, (CLASSIC_STEPS,))
    contenders = [Contender("gymnasium classic", 1, CLASSIC_STEPS,
                            lambda: gymnasium_classic(classic_actions))]
    for num_envs, calls in GYM_SIZES.items():
        actions = random_actions(jax.random.fold_in(key, num_envs), (calls, num_envs))
        contenders.append(Contender("gymnasium vector", num_envs, calls * num_envs,
                                    functools.partial(gymnasium_vector, actions)))
    firsts = {}
    for num_envs, num_steps in JAX_SIZES.items():
        contender, firsts[num_envs] = jax_contender(
            "ours: jit+vmap+scan", num_envs, num_envs * num_steps, ours(env, params, num_envs, num_steps))
        contenders.append(contender)
    seconds, ends = best_times(contenders, ROUNDS)

    print(f"{'implementation':<28} {'N':>5} {'steps':>10} {'M steps/s':>9} {'vs gym N':>9} "
          f"{'compile':>8} {'ends':>8}")
    rates = {(c.name, c.num_envs): c.steps / t for c, t in zip(contenders, seconds)}
    for c, t, e in zip(contenders, seconds, ends):
        reference = rates.get(("gymnasium vector", c.num_envs)) if c.name.startswith("ours") else None
        ratio = f"{c.steps / t / reference:8.1f}x" if reference else f"{'':>9}"
        compiled = f"{firsts[c.num_envs] - t:8.2f}" if c.name.startswith("ours") else f"{'':>8}"
        print(f"{c.name:<28} {c.num_envs:>5} {c.steps:>10,} {c.steps / t / 1e6:>9.3f} {ratio} {compiled} {e:>8,}")

    num_envs, num_steps = max(JAX_SIZES), JAX_SIZES[max(JAX_SIZES)]
    steps = num_envs * num_steps
    variants = [
        ("rollout, bernoulli per step", ours(env, params, num_envs, num_steps)),
        ("rollout, randint per step", ours(env, params, num_envs, num_steps, randint_policy)),
        ("rollout.step, actions up front", actions_up_front(env, params, num_envs, num_steps)),
        ("env.step only: no keys, no reset", dynamics_only(env, params, num_envs, num_steps)),
        ("reset draws only (env.initial)", reset_draws_only(env, params, num_envs, num_steps)),
    ]
    parts = [jax_contender(name, num_envs, steps, run)[0] for name, run in variants]
    seconds, counts = best_times(parts, ROUNDS)
    print(f"\nWhere the time goes, ours at N = {num_envs} (time per environment step):")
    for part, t, count in zip(parts, seconds, counts):
        print(f"  {part.name:<33} {steps / t / 1e6:>7.2f} M steps/s {t / steps * 1e9:>7.1f} ns/step "
              f"  count {count:,}")

    ours_256, gym_256 = rates[("ours: jit+vmap+scan", 256)], rates[("gymnasium vector", 256)]
    ours_4096 = rates[("ours: jit+vmap+scan", 4096)]
    print(f"\nGoals: ours >= 2x gymnasium vector at N = 256: {ours_256 / gym_256:.1f}x "
          f"({'met' if ours_256 >= 2 * gym_256 else 'NOT met'}); >= 25 M steps/s at N = 4096: "
          f"{ours_4096 / 1e6:.1f} M ({'met' if ours_4096 >= 25e6 else 'NOT met'}).")
    print("vs gym N: our steps/s over gymnasium's vectorised env at the same N. compile: first "
          "call minus best call, seconds. ends/count: episodes that ended in one run (about one "
          "per 22 steps under random actions), or positive draws: a check that every step ran.")


if __name__ == "__main__":
    main()
