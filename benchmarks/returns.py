"""GAE and λ-returns for a batch of trajectories: a jitted reverse scan against NumPy.

Run ``python benchmarks/returns.py`` (well under a minute). A batch of B = 4096
trajectories of T = 128 steps (random rewards and values, terminations with
probability 0.05 per step, a time-limit cut with a bootstrap value at the end),
the shape of one PPO rollout (4096 environments × 128 steps). Two ways compute
the same GAE advantages and λ-returns (γ = 0.99, λ = 0.95):

* **jax [B, T]**: ``jax.jit(jax.vmap(returns.gae))`` (and ``returns.lambda_returns``):
  the library's reverse ``lax.scan`` over one trajectory, vmapped over a batch-major
  [B, T] array;
* **jax [T, B]**: the same function vmapped with ``in_axes=1, out_axes=1`` over
  time-major [T, B] arrays, the layout in which a ``lax.scan`` rollout over time
  leaves its data (no transpose is needed);
* **numpy**: the way most PPO code writes it, a Python loop backwards over the T
  steps, each step vectorised over the B trajectories (time-major arrays [T, B],
  so each step reads contiguous rows; the TD errors are computed in one
  vectorised expression first).

The results are checked to agree before timing. Times are the best of
``ROUNDS`` interleaved single calls of compiled code (compilation excluded and
reported apart). The ratio numpy / jax is the speed-up. Other processes on a
small machine move the numbers: read the load average in the header.

**What to expect on a CPU.** The recursion is sequential in t, and NumPy's loop
is already vectorised over the 4096 trajectories, so both do the same O(BT)
arithmetic; what the jitted version saves is NumPy's temporaries (fusion) and
its per-step interpreter overhead, while XLA's CPU loop pays a few microseconds
per step itself. Reading r, γ and V (6 MB) and writing Â (2 MB) bounds any
implementation from below, and NumPy's loop is within a small factor of that,
so on 2 CPU cores the two come out close (measured 0.5-1.5x on a loaded
2-core machine); the large factors of a jitted scan come from replacing
per-trajectory Python loops, or from running the scan on an accelerator.
"""

from __future__ import annotations

import os

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import jax
import jax.numpy as jnp
import numpy as np

from rlbook_lib import returns
from timing import interleaved_best, timed  # noqa: E402  benchmarks/timing.py

B, T = 4096, 128
GAMMA, LAMBDA = 0.99, 0.95
ROUNDS = 20


def make_batch(key):
    k_r, k_v, k_b, k_d = jax.random.split(key, 4)
    rewards = jax.random.normal(k_r, (B, T))
    values = jax.random.normal(k_v, (B, T))
    bootstrap = jax.random.normal(k_b, (B,))
    discounts = GAMMA * (1.0 - jax.random.bernoulli(k_d, 0.05, (B, T)))
    return rewards, discounts, values, bootstrap


def numpy_gae(rewards, discounts, values, bootstrap, lam):
    """[T, B] arrays: Â_t = δ_t + γ_{t+1} λ Â_{t+1}, backwards over t, vectorised over B."""
    next_values = np.concatenate([values[1:], bootstrap[None]])
    deltas = rewards + discounts * next_values - values
    advantages = np.empty_like(deltas)
    a = np.zeros_like(bootstrap)
    for t in range(len(deltas) - 1, -1, -1):
        a = deltas[t] + discounts[t] * lam * a
        advantages[t] = a
    return advantages


def numpy_lambda_returns(rewards, discounts, values, bootstrap, lam):
    """[T, B] arrays: G^λ_t = r_{t+1} + γ_{t+1}[(1 − λ) V(S_{t+1}) + λ G^λ_{t+1}], backwards."""
    next_values = np.concatenate([values[1:], bootstrap[None]])
    partial = rewards + discounts * (1 - lam) * next_values  # the part that needs no recursion
    weight = discounts * lam
    out = np.empty_like(rewards)
    g = bootstrap
    for t in range(len(rewards) - 1, -1, -1):
        g = partial[t] + weight[t] * g
        out[t] = g
    return out


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"B = {B} trajectories x T = {T} steps, gamma = {GAMMA}, lambda = {LAMBDA}, "
          f"best of {ROUNDS} interleaved calls\n")
    batch = jax.block_until_ready(make_batch(jax.random.key(0)))  # [B, T] and [B]
    time_major = [np.asarray(x, np.float32).T.copy() if x.ndim == 2 else np.asarray(x, np.float32)
                  for x in batch]
    time_major_jax = jax.device_put(time_major)
    print("| quantity | jax compile s | jax [B, T] ms | jax [T, B] ms | numpy [T, B] ms | numpy / jax [B, T] "
          "| numpy / jax [T, B] |")
    print("|---|---|---|---|---|---|---|")
    for name, fn, np_fn in (("GAE", returns.gae, numpy_gae),
                            ("lambda-returns", returns.lambda_returns, numpy_lambda_returns)):
        one = lambda r, d, v, b: fn(r, d, v, b, LAMBDA)  # noqa: E731, B023
        batch_major = jax.jit(jax.vmap(one))
        compiled, compile_time = timed(lambda: batch_major.lower(*batch).compile())  # noqa: B023
        compiled_tm = jax.jit(jax.vmap(one, in_axes=(1, 1, 1, 0), out_axes=1)).lower(*time_major_jax).compile()
        reference = np_fn(*time_major, LAMBDA)
        np.testing.assert_allclose(np.asarray(compiled(*batch)).T, reference, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(compiled_tm(*time_major_jax)), reference, rtol=1e-4, atol=1e-4)
        (jax_s, jax_tm_s, numpy_s), _ = interleaved_best(
            [lambda: jax.block_until_ready(compiled(*batch)),  # noqa: B023
             lambda: jax.block_until_ready(compiled_tm(*time_major_jax)),  # noqa: B023
             lambda: np_fn(*time_major, LAMBDA)], ROUNDS, pause=0.02)  # noqa: B023
        print(f"| {name} | {compile_time:.2f} | {1e3 * jax_s:.2f} | {1e3 * jax_tm_s:.2f} | {1e3 * numpy_s:.2f} | "
              f"{numpy_s / jax_s:.1f}x | {numpy_s / jax_tm_s:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
