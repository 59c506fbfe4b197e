"""Work around an XLA CPU deadlock before JAX starts its backend.

With jaxlib >= 0.10 on the CPU, a program that runs two or more batched LAPACK
calls under ``jax.jit(jax.vmap(...))`` (``jnp.linalg.solve``, the QR inside an
orthogonal initialiser, ...) can deadlock XLA's thread pool: the call never
returns. Turning off the concurrency-optimised scheduler makes those programs
finish. XLA reads ``XLA_FLAGS`` once, when JAX creates its first backend, so the
flag is added here, on ``import rlbook_lib``, before any computation has run.

Importing ``rlbook_lib`` before running any JAX computation therefore fixes the
deadlock for every way the book is used: a reader's notebook or script, the book
build and the test suite.
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib import metadata

FLAG_NAME = "xla_cpu_enable_concurrency_optimized_scheduler"
FLAG = f"--{FLAG_NAME}=false"


def _jaxlib_version() -> tuple[int, ...] | None:
    try:
        text = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return None
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _backend_started() -> bool:
    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", None)
    return bool(started and started())


def configure() -> bool:
    """Add the scheduler flag to ``XLA_FLAGS``; return True if it is in force.

    Older jaxlib releases neither deadlock nor know the flag (XLA aborts on an
    unknown flag), so the flag is only added from jaxlib 0.10 on. A flag the
    user set explicitly, either way, is left alone.
    """
    version = _jaxlib_version()
    if version is None or version < (0, 10):
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG_NAME not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    if _backend_started():
        warnings.warn(
            "rlbook_lib was imported after JAX had already run a computation, so "
            f"its XLA workaround ({FLAG}) cannot take effect in this process and "
            "batched linear algebra under jit(vmap(...)) may hang on the CPU. "
            "Restart the kernel and import rlbook_lib before running JAX code.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


IN_FORCE = configure()
