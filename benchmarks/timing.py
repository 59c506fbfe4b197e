"""Wall-clock timing shared by the benchmark scripts (``python benchmarks/NAME.py``).

Every function calls ``fn`` with no arguments; for JAX, ``fn`` must block until
the result is ready (``jax.block_until_ready``), or the time measured is only
that of dispatching the work.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """The result of one call and its wall time in seconds (a first call includes compilation)."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeats: int, pause: float = 0.0) -> tuple[Any, float]:
    """The last result and the best wall time of ``repeats`` calls, each after ``pause`` seconds."""
    best, result = float("inf"), None
    for _ in range(repeats):
        if pause:
            time.sleep(pause)
        result, seconds = timed(fn)
        best = min(best, seconds)
    return result, best


def interleaved_best(fns: Sequence[Callable[[], Any]], rounds: int, pause: float,
                     calls: Sequence[int] | None = None) -> tuple[list[float], list[Any]]:
    """Best wall time of single calls of each function over interleaved rounds, and its last result.

    Interleaving gives every contender the same share of a noisy shared machine.
    The pause before each contender lets the worker threads of the previous one go
    idle: BLAS and XLA threads spin for a while after a call and would slow down
    the next. ``calls[i]`` calls of function i are timed per round (default 1).
    """
    calls = [1] * len(fns) if calls is None else calls
    best, results = [float("inf")] * len(fns), [None] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            time.sleep(pause)
            results[i], seconds = best_of(fn, calls[i])
            best[i] = min(best[i], seconds)
    return best, results
