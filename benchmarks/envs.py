"""CartPole-v1 steps per second: gymnasium's and gymnax's environments against ours.

Run ``python benchmarks/envs.py`` (a few minutes). Every contender takes uniformly
random actions and resets each episode as soon as it ends (terminated, or truncated
at gymnasium's 500 steps):

* gymnasium's classic env, ``gym.make("CartPole-v1")``, stepped in a Python loop;
* gymnasium's vectorised NumPy env, ``gym.make_vec("CartPole-v1", num_envs=N,
  vectorization_mode="vector_entry_point")``, whose autoreset happens on the step
  after an episode ends (that step is counted like any other);
* gymnax's ``CartPole-v1`` (an optional extra: ``pip install "rlbook-lib[bench]"``;
  skipped with a message when it is not installed): ``vmap`` of ``env.step`` over N
  environments in a ``lax.scan``, all inside one ``jax.jit``, the whole-loop-jitted
  way gymnax is meant to be used. Its step needs one key per environment, and draws a
  reset state for every environment at every step, kept where the episode ended;
* ours: ``vector_rollout.step_batch`` of ``cartpole.CartPole()`` in the same loop. One
  key per step stands for all N environments' keys, and s_0 is drawn only for the
  environments whose episode ended.

gymnasium gets its actions precomputed (drawn with ``jax.random`` up front), so its
time is the environment alone. The JAX contenders draw the N actions of a step inside
the loop, with one call on the step's key. Steps per second count environment steps:
N per step. Compile time (first call minus the best later call) is reported
separately. Each JAX run returns the number of episode ends, which depends on every
step, so XLA cannot remove the work (a run returning a constant gets optimised away).
Ours and gymnax's get the same keys, and draw the same actions and the same start
states from them (JAX's default threefry makes ``split(key, N)[i]`` equal to
``fold_in(key, i)``), so the two simulate the same episodes, up to float rounding: their
``ends`` columns agree, a check that both do the same work.

The second table takes ours apart at the largest N. ``jax.random`` (threefry) spends
about as much time on one 64-bit hash as CartPole's dynamics spend on a whole step.
:func:`rlbook_lib.rollout.step`, vmapped, draws a reset state for every environment at
every step and keeps it only where an episode ended (a select, as ``lax.cond`` becomes
under ``vmap`` anyway); ``vector_rollout.rollout_batch`` (what the actor-critic
algorithms use) gives bit-identical results and draws it only where an episode ended,
but still derives one key per environment and step for the policy and the step; the
one-key ``step_batch`` derives keys only where they are used. Other processes on a
small machine move the numbers a lot: read the load average in the header.

One run on the 2-core machine under a load average of 6 to 8 (other jobs; provisional)
measured, in M steps/s, at N = 1, 8, 256, 4096: ours 0.25, 2.3, 21.8, 32.4; gymnax 0.28,
1.13, 7.1, 6.8 (ours 0.91x, 2.1x, 3.1x, 4.8x); gymnasium's vectorised env 0.015, 0.12,
3.1 at N = 1, 8, 256. At N = 4096: the vmapped ``rollout.rollout`` 5.3,
``rollout_batch`` 10.5, the physics alone 22.4 (below the whole one-key step in this
noisy run).
"""

from __future__ import annotations

import functools
import os
from importlib import metadata
from typing import Callable, NamedTuple

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from rlbook_lib import rollout, vector_rollout
from rlbook_lib.envs import cartpole
from timing import interleaved_best, timed  # noqa: E402  benchmarks/timing.py

try:
    import gymnax
except ImportError:  # the optional extra "bench"
    gymnax = None

GYM_SIZES = {1: 10_000, 8: 10_000, 256: 2_000}
"""Number of envs N: step calls for gymnasium's vectorised env."""
JAX_SIZES = {1: 20_000, 8: 20_000, 256: 2_000, 4096: 400}
"""Number of envs N: scan length T for the JAX contenders."""
CLASSIC_STEPS = 20_000
ROUNDS = 4
OURS, GYMNAX = "ours: step_batch", "gymnax"


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
    """Step the vectorised env (N = actions.shape[1]) through ``actions``; return the episode ends."""
    envs = gym.make_vec("CartPole-v1", num_envs=actions.shape[1], vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    ends = 0
    for action in actions:
        _, _, terminated, truncated, _ = envs.step(action)
        ends += int(np.sum(terminated | truncated))
    return ends


def scan_loop(init: Callable, step: Callable, num_envs: int, num_steps: int):
    """jit: states = init(key, N); then T times draw N random actions with one key and
    ``states, ends = step(key, states, actions)``; return the total of ``ends``."""

    @jax.jit
    def run(key):
        key_init, key_run = jax.random.split(key)

        def one_step(states, key):
            key_actions, key_step = jax.random.split(key)
            actions = jax.random.bernoulli(key_actions, 0.5, (num_envs,)).astype(jnp.int32)
            return step(key_step, states, actions)

        _, ends = jax.lax.scan(one_step, init(key_init, num_envs), jax.random.split(key_run, num_steps))
        return jnp.sum(ends)

    return run


def ours(env, params, num_envs, num_steps):
    """vector_rollout.step_batch with one key per step for all N environments."""

    def step(key, states, actions):
        states, transitions = vector_rollout.step_batch(env, params, key, states, actions)
        return states, jnp.sum(transitions.episode_ended)

    return scan_loop(functools.partial(reset_all, env, params), step, num_envs, num_steps)


def per_env_keys(env, params, num_envs, num_steps, batched):
    """One key per environment and step, and a per-environment policy draw from it (as
    ``actor_critic.collect``): ``vector_rollout.rollout_batch`` if ``batched``, else the
    vmapped ``rollout.rollout`` that draws a reset state for every environment at every step."""
    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)  # noqa: E731

    @jax.jit
    def run(key):
        key_reset, key_run = jax.random.split(key)
        keys, states = jax.random.split(key_run, num_envs), reset_all(env, params, key_reset, num_envs)
        if batched:
            transitions = vector_rollout.rollout_batch(env, params, policy, keys, states, num_steps)[1]
        else:
            one = lambda k, s: rollout.rollout(env, params, policy, k, s, num_steps)[1]  # noqa: E731
            transitions = jax.vmap(one)(keys, states)
        return jnp.sum(transitions.episode_ended)

    return run


def gymnax_loop(num_envs, num_steps):
    """gymnax's CartPole-v1: ``vmap(env.step)`` with a key for every environment."""
    env, params = gymnax.make("CartPole-v1")

    def init(key, n):
        return jax.vmap(env.reset, (0, None))(jax.random.split(key, n), params)[1]

    def step(key, states, actions):
        keys = jax.random.split(key, num_envs)
        _, states, _, terminated, truncated, _ = jax.vmap(env.step, (0, 0, 0, None))(keys, states, actions, params)
        return states, jnp.sum(terminated | truncated)

    return scan_loop(init, step, num_envs, num_steps)


def reset_all(env, params, key, num_envs):
    return jax.vmap(lambda k: rollout.reset(env, params, k))(jax.random.split(key, num_envs))


def dynamics_only(env, params, num_envs, num_steps):
    """The physics alone: env.step, and a fixed start state put back where the episode
    terminated (a select); no keys, no random draws, no time limit. (Without any reset the
    carts leave the track and the angles grow, and sin and cos of large angles are slower.)"""
    start = jax.tree.map(jnp.float32, cartpole.CartPoleState(0.01, 0.0, -0.01, 0.0))

    def init(key, n):
        return jax.vmap(lambda k: env.initial(k, params))(jax.random.split(key, n))

    def step(key, states, actions):
        result = jax.vmap(lambda s, a: env.step(key, s, a, params))(states, actions)  # CartPole ignores the key
        states = jax.tree.map(lambda s0, s: jnp.where(result.terminated, s0, s), start, result.next_state)
        return states, jnp.sum(result.terminated)

    return scan_loop(init, step, num_envs, num_steps)


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


def first_table(env, params) -> dict:
    """Every contender at every N; prints the table and returns steps/s by (name, N)."""
    key = jax.random.key(42)
    classic_actions = random_actions(key, (CLASSIC_STEPS,))
    contenders = [Contender("gymnasium classic", 1, CLASSIC_STEPS, lambda: gymnasium_classic(classic_actions))]
    for num_envs, calls in GYM_SIZES.items():
        actions = random_actions(jax.random.fold_in(key, num_envs), (calls, num_envs))
        contenders.append(Contender("gymnasium vector", num_envs, calls * num_envs,
                                    functools.partial(gymnasium_vector, actions)))
    firsts = {}
    for num_envs, num_steps in JAX_SIZES.items():
        runs = {OURS: ours(env, params, num_envs, num_steps)}
        if gymnax is not None:
            runs[GYMNAX] = gymnax_loop(num_envs, num_steps)
        for name, run in runs.items():
            contender, firsts[name, num_envs] = jax_contender(name, num_envs, num_envs * num_steps, run)
            contenders.append(contender)
    seconds, ends = best_times(contenders, ROUNDS)
    rates = {(c.name, c.num_envs): c.steps / t for c, t in zip(contenders, seconds)}
    print(f"{'implementation':<20} {'N':>5} {'steps':>10} {'M steps/s':>9} {'vs gym N':>9} {'vs gymnax':>9} "
          f"{'compile':>8} {'ends':>8}")
    for c, t, e in zip(contenders, seconds, ends):
        columns = []
        for reference in ("gymnasium vector", GYMNAX):
            other = rates.get((reference, c.num_envs)) if c.name == OURS else None
            columns.append(f"{c.steps / t / other:8.2f}x" if other else f"{'':>9}")
        first = firsts.get((c.name, c.num_envs))
        compiled = f"{first - t:8.2f}" if first is not None else f"{'':>8}"
        print(f"{c.name:<20} {c.num_envs:>5} {c.steps:>10,} {c.steps / t / 1e6:>9.3f} {' '.join(columns)} "
              f"{compiled} {e:>8,}")
    return rates


def where_the_time_goes(env, params) -> None:
    num_envs, num_steps = max(JAX_SIZES), JAX_SIZES[max(JAX_SIZES)]
    steps = num_envs * num_steps
    variants = [
        ("step_batch, one key per step", ours(env, params, num_envs, num_steps)),
        ("rollout_batch, keys per env", per_env_keys(env, params, num_envs, num_steps, batched=True)),
        ("vmap(rollout), reset every step", per_env_keys(env, params, num_envs, num_steps, batched=False)),
        ("env.step only: no keys, no reset", dynamics_only(env, params, num_envs, num_steps)),
    ]
    if gymnax is not None:
        variants.append(("gymnax env.step, keys per env", gymnax_loop(num_envs, num_steps)))
    parts = [jax_contender(name, num_envs, steps, run)[0] for name, run in variants]
    seconds, counts = best_times(parts, ROUNDS)
    print(f"\nWhere the time goes at N = {num_envs} (time per environment step):")
    for part, t, count in zip(parts, seconds, counts):
        print(f"  {part.name:<33} {steps / t / 1e6:>7.2f} M steps/s {t / steps * 1e9:>7.1f} ns/step "
              f"  ends {count:,}")


def main():
    env = cartpole.CartPole()
    params = env.default_params()
    versions = f"gymnasium {gym.__version__}, " + (f"gymnax {metadata.version('gymnax')}" if gymnax else "no gymnax")
    print(f"CartPole-v1, random actions, auto-reset. jax {jax.__version__} on {jax.devices()[0].device_kind}, "
          f"{versions} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}). "
          f"Best of {ROUNDS} interleaved rounds.")
    if gymnax is None:
        print("gymnax is not installed (pip install 'rlbook-lib[bench]'): its rows are skipped.")
    rates = first_table(env, params)
    where_the_time_goes(env, params)
    top = max(JAX_SIZES)
    ours_top, ours_256, gym_256 = rates[OURS, top], rates[OURS, 256], rates["gymnasium vector", 256]
    print(f"\nGoals: ours >= 2x gymnasium vector at N = 256: {ours_256 / gym_256:.1f}x "
          f"({'met' if ours_256 >= 2 * gym_256 else 'NOT met'}); >= 25 M steps/s at N = {top}: "
          f"{ours_top / 1e6:.1f} M ({'met' if ours_top >= 25e6 else 'NOT met'}).")
    if gymnax is not None:
        print("Ours over gymnax: " + ", ".join(f"N = {n}: {rates[OURS, n] / rates[GYMNAX, n]:.2f}x"
                                                for n in JAX_SIZES))
    print("vs gym N, vs gymnax: our steps/s over theirs at the same N. compile: first call minus best "
          "call, seconds. ends: episodes that ended in one run (about one per 22 steps under random "
          "actions), a check that every step ran.")


if __name__ == "__main__":
    main()
