"""Value iteration: jitted rlbook_lib.dp against plain NumPy, and against memory speed.

Run ``python benchmarks/dp.py``. For each problem both implementations run the same
algorithm (v <- max_a [R + P (γ (1 − terminal) v)], stop when the sup-norm change
drops below tol, here 0, or after a fixed number of sweeps) in float32. A sweep
reads all of P once, so its floor is the time to read P from memory, measured as a
jitted ``jnp.sum(P)``. Goals: jitted at least as fast as NumPy at |S| = 1000, and a
sweep within 3x of one read of P. Compile time is reported separately. For tiny
problems both times are dominated by fixed per-call and per-sweep overheads.

At |S| = 1000 both implementations are limited by reading P, so they come out
close, and other processes on a small machine move the numbers a lot: a
multi-threaded BLAS matrix-vector product that loses a core to another process
can slow down several-fold. Run it on a quiet machine and read the load average
in the header.
"""

from __future__ import annotations

import os

import rlbook_lib  # noqa: F401  sets the XLA flags before JAX starts
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from rlbook_lib import dp
from rlbook_lib import mdp as mdp_lib
from timing import interleaved_best, timed  # noqa: E402  benchmarks/timing.py

GAMMA = 0.99
REPEATS = 10


def numpy_value_iteration(P, R, continuation, tol, max_iterations):
    """The same algorithm in NumPy: one [S*A, S] @ [S] product per sweep."""
    S, A = R.shape
    P2 = P.reshape(S * A, S)
    v = np.zeros(S, P.dtype)
    change, sweeps = np.inf, 0
    while change >= tol and sweeps < max_iterations:
        new = (R + (P2 @ (continuation * v)).reshape(S, A)).max(axis=1)
        change, v, sweeps = np.max(np.abs(new - v)), new, sweeps + 1
    return v, sweeps


def benchmark(name, mdp, sweeps):
    P, R = np.asarray(mdp.P), np.asarray(mdp.R)
    c = np.asarray(mdp_lib.continuation(mdp))
    read = jax.jit(jnp.sum)

    def run_jax():
        return jax.block_until_ready(dp.value_iteration(mdp, tol=0.0, max_iterations=sweeps))

    solution, first = timed(run_jax)
    v_np, np_sweeps = numpy_value_iteration(P, R, c, 0.0, sweeps)
    jax.block_until_ready(read(mdp.P))
    (jax_time, np_time, read_time), _ = interleaved_best(
        [run_jax, lambda: numpy_value_iteration(P, R, c, 0.0, sweeps),
         lambda: jax.block_until_ready(read(mdp.P))], REPEATS, pause=0.1, calls=[1, 1, 10])

    jax_sweeps = int(solution.num_iterations)
    jax_sweep, np_sweep = jax_time / jax_sweeps, np_time / np_sweeps
    S, A = R.shape
    print(f"{name:<14} {S:>5} {A:>2} {jax_sweeps:>6} {np_sweeps:>6} {jax_sweep * 1e6:>10.1f} "
          f"{np_sweep * 1e6:>10.1f} {np_sweep / jax_sweep:>8.2f} {read_time * 1e6:>9.1f} "
          f"{jax_sweep / read_time:>9.2f} {P.nbytes / jax_sweep / 1e9:>7.1f} {first - jax_time:>8.2f} "
          f"{float(np.max(np.abs(v_np - np.asarray(solution.v)))):>8.1e}")


def main():
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}), float32, gamma = {GAMMA}; "
          f"best of {REPEATS} interleaved runs. Times per sweep in microseconds.")
    print(f"{'problem':<14} {'|S|':>5} {'|A|':>2} {'sweeps':>6} {'np':>6} {'jax/sweep':>10} "
          f"{'numpy/sweep':>10} {'np/jax':>8} {'read P':>9} {'jax/read':>9} {'GB/s':>7} {'compile':>8} "
          f"{'|dv|':>8}")
    lake = mdp_lib.from_toy_text(gym.make("FrozenLake-v1", map_name="8x8"), GAMMA)
    benchmark("FrozenLake 8x8", lake, 1000)
    for S, sweeps in [(100, 1000), (1000, 100)]:
        benchmark("random", mdp_lib.random_mdp(jax.random.key(S), S, 8, GAMMA), sweeps)
    print("sweeps/np: sweeps run by jax/NumPy (tol = 0 stops early only at an exact fixed point); "
          "read P: jitted jnp.sum(P), best single call; compile: first call minus best call, in seconds; "
          "GB/s: bytes of P / jax sweep; |dv|: max difference of the two value functions.\n"
          "P at |S| = 1000 takes 32 MB: where the last-level cache is larger, 'read P' is "
          "cache bandwidth, not DRAM bandwidth.")


if __name__ == "__main__":
    main()
