"""timing.best_of: round-robin order, the minimum per call, the first result, CPU apart from wall time."""

import time
import types

import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import timing


def scripted(durations, clock, log, name):
    """A call that advances the fake clock by the next of its scripted (wall, cpu) durations."""
    remaining = list(durations)

    def call():
        wall, cpu = remaining.pop(0)
        clock.wall += wall
        clock.cpu += cpu
        log.append(name)
        return f"{name} after {len(durations) - len(remaining)} call(s)"

    return call


def test_round_robin_minimum_per_call_and_first_result(monkeypatch):
    clock = types.SimpleNamespace(wall=100.0, cpu=7.0)
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(
        perf_counter=lambda: clock.wall, process_time=lambda: clock.cpu))
    log = []
    calls = {"slow first": scripted([(5.0, 1.0), (2.0, 1.5), (3.0, 0.5)], clock, log, "a"),
             "fast first": scripted([(1.0, 4.0), (9.0, 2.0), (4.0, 3.0)], clock, log, "b")}
    times = timing.best_of(calls, repeats=3)
    assert log == ["a", "b"] * 3  # interleaved, not "a" three times and then "b"
    assert list(times) == list(calls)
    assert times["slow first"] == timing.Timing(wall=2.0, cpu=0.5, result="a after 1 call(s)")
    assert times["fast first"] == timing.Timing(wall=1.0, cpu=2.0, result="b after 1 call(s)")


def test_waits_for_jax_results_and_separates_cpu_from_wall():
    x = jnp.arange(1000.0)
    times = timing.best_of({"sum": lambda: jnp.sum(x * x), "sleep": lambda: time.sleep(0.05)}, repeats=2)
    np.testing.assert_allclose(float(times["sum"].result), float(np.sum(np.arange(1000.0) ** 2)), rtol=1e-6)
    assert times["sleep"].result is None
    assert times["sleep"].wall >= 0.05  # sleep waits at least that long ...
    assert times["sleep"].cpu < 0.5 * times["sleep"].wall  # ... without using the CPU


def test_rejects_no_repeats():
    with pytest.raises(ValueError, match="repeats"):
        timing.best_of({"x": lambda: 1}, repeats=0)


def test_pause_comes_before_each_run_and_is_not_timed(monkeypatch):
    clock = types.SimpleNamespace(wall=0.0, cpu=0.0)
    log = []

    def sleep(seconds):
        log.append(f"pause {seconds}")
        clock.wall += seconds

    monkeypatch.setattr(timing, "time", types.SimpleNamespace(
        perf_counter=lambda: clock.wall, process_time=lambda: clock.cpu, sleep=sleep))
    calls = {"a": scripted([(2.0, 1.0), (1.0, 1.0)], clock, log, "a")}
    times = timing.best_of(calls, repeats=2, pause=10.0)
    assert log == ["pause 10.0", "a", "pause 10.0", "a"]
    assert times["a"].wall == 1.0  # the ten seconds of pause are not in it
    with pytest.raises(ValueError, match="pause"):
        timing.best_of(calls, repeats=1, pause=-1.0)
