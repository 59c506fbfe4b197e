r"""Timing compiled programs on a machine that other work shares.

A wall-clock measurement is the program's own time plus whatever other processes
take from it while it runs; that second part is never negative. So the fastest of
several runs is the estimate that contention distorts least, and it is the one
standard benchmarking practice reports (Python's ``timeit`` recommends the minimum
of its repeats). :func:`best_of` times several configurations this way and runs
them **round-robin** (all configurations once, then all again, ...): a burst of
other work then slows one run of several configurations instead of every run of
one, and the minimum of each configuration skips it.

Example::

    compiled = {n: jax.jit(train_n[n]).lower(keys).compile() for n in (1, 16)}
    times = timing.best_of({n: lambda f=f: f(keys) for n, f in compiled.items()}, repeats=3)
    times[16].wall, times[16].result      # fastest seconds; what the first call returned

Compile the programs beforehand: the first call of a ``jax.jit`` function that is not
yet compiled would count its compilation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple, TypeVar

import jax

K = TypeVar("K", bound=Hashable)


class Timing(NamedTuple):
    """The best of several runs of one call."""

    wall: float
    """Fewest wall-clock seconds of any run."""
    cpu: float
    """Fewest CPU seconds of this process (all its threads) in any run."""
    result: Any
    """What the first run returned."""


def best_of(calls: Mapping[K, Callable[[], Any]], repeats: int = 3, pause: float = 0.0) -> dict[K, Timing]:
    """Run every call ``repeats`` times, round-robin over the calls; keep each call's minimum.

    Each run lasts until its result is ready (``jax.block_until_ready``), so JAX's
    asynchronous dispatch does not end the clock early. Wall-clock and CPU time are
    minimised separately. Only the first run's result is kept. ``pause`` seconds of
    sleep before each run let the worker threads of the previous one go idle (BLAS and
    XLA threads spin for a while after a call and would slow down the next one).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if pause < 0:
        raise ValueError(f"pause must be non-negative, got {pause}")
    wall = {key: float("inf") for key in calls}
    cpu = dict(wall)
    results: dict[K, Any] = {}
    for _ in range(repeats):
        for key, call in calls.items():
            if pause:
                time.sleep(pause)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            result = jax.block_until_ready(call())
            wall[key] = min(wall[key], time.perf_counter() - start_wall)
            cpu[key] = min(cpu[key], time.process_time() - start_cpu)
            results.setdefault(key, result)
    return {key: Timing(wall[key], cpu[key], results[key]) for key in calls}
