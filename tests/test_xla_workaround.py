"""Regression test for the XLA CPU deadlock (shared TRAPS, item 1).

With jaxlib 0.10 on the CPU, several batched ``jnp.linalg.solve`` calls under
``jit(vmap(...))`` can hang forever. ``import rlbook_lib`` sets XLA_FLAGS to
avoid it. The program below hung within its first few calls without the flag,
so it runs in a fresh interpreter (no XLA_FLAGS inherited from this process)
with a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import rlbook_lib  # must come first: it configures XLA
    import jax
    import jax.numpy as jnp

    def solves(key):
        total = 0.0
        for k in jax.random.split(key, 4):
            a = jax.random.normal(k, (64, 64)) + 64 * jnp.eye(64)
            total = total + jnp.linalg.solve(a, jnp.ones(64)).sum()
        return total

    batched = jax.jit(jax.vmap(solves))
    for i in range(20):
        batched(jax.random.split(jax.random.key(i), 8)).block_until_ready()
    print("finished", rlbook_lib._xla.IN_FORCE)
    """
)


def run_fresh(program: str, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_batched_solves_under_jit_vmap_finish():
    try:
        result = run_fresh(PROGRAM, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("batched jnp.linalg.solve under jit(vmap) hung: XLA deadlock is back")
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout


def test_importing_after_jax_has_run_warns():
    program = "import jax.numpy as jnp; jnp.ones(3).sum().block_until_ready()\nimport rlbook_lib"
    result = run_fresh(program, timeout=120)
    assert result.returncode == 0, result.stderr
    if rlbook_lib_needs_flag():
        assert "RuntimeWarning" in result.stderr and "import rlbook_lib" in result.stderr


def rlbook_lib_needs_flag() -> bool:
    from rlbook_lib import _xla

    version = _xla._jaxlib_version()
    return version is not None and version >= (0, 10)


def test_flag_is_set_on_import():
    from rlbook_lib import _xla

    if rlbook_lib_needs_flag():
        assert _xla.FLAG_NAME in os.environ.get("XLA_FLAGS", "")
