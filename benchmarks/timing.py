"""Wall-clock timing shared by the benchmark scripts (``python benchmarks/NAME.py``).

Thin adapters over :func:`rlbook_lib.timing.best_of` (round-robin runs, the minimum
of each), in the shapes the scripts use. Every function calls ``fn`` with no
arguments and waits for a JAX result to be ready (``jax.block_until_ready``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax

from rlbook_lib import timing


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """The result of one call and its wall time in seconds (a first call includes compilation)."""
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    return result, time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeats: int, pause: float = 0.0) -> tuple[Any, float]:
    """The first result and the best wall time of ``repeats`` calls, each after ``pause`` seconds."""
    best = timing.best_of({0: fn}, repeats, pause)[0]
    return best.result, best.wall


def interleaved_best(fns: Sequence[Callable[[], Any]], rounds: int, pause: float,
                     calls: Sequence[int] | None = None) -> tuple[list[float], list[Any]]:
    """Best wall time of single calls of each function over interleaved rounds, and its first result.

    Interleaving gives every contender the same share of a noisy shared machine.
    ``calls[i]`` calls of function i are timed per round (default 1), each one alone.
    """
    calls = [1] * len(fns) if calls is None else calls
    runs = {(i, j): fn for i, fn in enumerate(fns) for j in range(calls[i])}
    best = timing.best_of(runs, rounds, pause)
    return ([min(best[i, j].wall for j in range(calls[i])) for i in range(len(fns))],
            [best[i, 0].result for i in range(len(fns))])
