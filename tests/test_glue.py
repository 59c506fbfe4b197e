"""rlbook_lib.glue: numbers reach the book's text as plain Python numbers."""

import sys
import types

import jax.numpy as jnp
import numpy as np

from rlbook_lib.glue import glue


def fake_myst_nb(monkeypatch):
    stored = {}
    module = types.ModuleType("myst_nb")
    module.glue = lambda name, value, display=True: stored.update({name: (value, display)})
    monkeypatch.setitem(sys.modules, "myst_nb", module)
    return stored


def test_scalars_are_stored_as_python_numbers(monkeypatch):
    stored = fake_myst_nb(monkeypatch)
    glue("a", np.float64(0.25))
    glue("b", jnp.float32(1.5))
    glue("c", jnp.int32(7))
    assert stored == {"a": (0.25, False), "b": (1.5, False), "c": (7, False)}
    assert all(type(v) in (float, int) for v, _ in stored.values())


def test_arrays_and_other_values_pass_through(monkeypatch):
    stored = fake_myst_nb(monkeypatch)
    array = np.arange(3)
    glue("array", array, display=True)
    glue("text", "ok")
    assert stored["array"][0] is array and stored["array"][1] is True
    assert stored["text"] == ("ok", False)
