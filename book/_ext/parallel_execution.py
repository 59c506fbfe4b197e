"""Execute the book's chapters in parallel processes before Sphinx reads them.

myst-nb executes one notebook at a time, as Sphinx reads each page. Most of a
chapter's time is spent in XLA's compiler and in small jitted computations that
use one core, so running the chapters one after another leaves the other cores
idle. This extension runs when Sphinx is about to read the pages:

1. it empties the jupyter-cache that myst-nb's ``cache`` execution mode reads
   (so every build executes every chapter afresh: the cache cannot tell when
   ``rlbook_lib`` changed, see TRAPS.md);
2. it executes the chapters to be read in a pool of processes, longest file
   first, and stores the executed notebooks in that cache;
3. myst-nb then finds each chapter in the cache. A chapter that failed here is
   not in the cache, so myst-nb executes it again while reading it and reports
   the error with its traceback, exactly as without this extension.

The number of processes is ``RLBOOK_EXECUTION_PROCESSES`` if set, otherwise the
number of CPUs, at most 4 (each process is a JAX kernel with its own compiler).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from pathlib import Path

from jupyter_cache import get_cache
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData
from myst_nb.core.read import is_myst_markdown_notebook
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
# The jupyter-cache reader that myst-nb registers for MyST Markdown notebooks.
MYST_READER = {"type": "plugin", "name": "myst_nb_md"}


def _processes() -> int:
    value = os.environ.get("RLBOOK_EXECUTION_PROCESSES")
    if value is not None:
        return max(1, int(value))
    return max(1, min(os.cpu_count() or 1, 4))


def _notebook_sources(env, docnames) -> list[Path]:
    sources = []
    for docname in docnames:
        path = Path(env.doc2path(docname))
        if path.suffix == ".md" and is_myst_markdown_notebook(path.read_text("utf8")):
            sources.append(path)
    # Longest first, so that a long chapter does not start last.
    return sorted(sources, key=lambda p: p.stat().st_size, reverse=True)


def execute_in_parallel(app, env, docnames) -> None:
    config = env.mystnb_config  # set by myst-nb when the builder starts
    if config.execution_mode != "cache":
        return
    # Empty the cache on every build, partial or not: it cannot tell when
    # rlbook_lib changed, so a cached chapter could show stale results.
    cache_path = Path(config.execution_cache_path)
    shutil.rmtree(cache_path, ignore_errors=True)
    sources = _notebook_sources(env, docnames)
    if config.execution_excludepatterns or not sources:
        return  # a build of some chapters only: myst-nb executes them in turn
    cache = get_cache(str(cache_path))
    records = [cache.add_nb_to_project(str(p), read_data=MYST_READER) for p in sources]
    jobs = [ProcessData(r.pk, r.uri, cache, config.execution_timeout, False)
            for r in records]
    processes = min(_processes(), len(jobs))
    LOGGER.info(f"executing {len(jobs)} chapters in {processes} processes")
    start = time.perf_counter()
    # "spawn": a fresh interpreter per worker, not a fork of Sphinx.
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(ExecutionWorkerLocalMProc(), jobs, chunksize=1)
    failed = [uri for status, uri in results if status != 0]
    for record in cache.list_cache_records():
        seconds = record.data.get("execution_seconds")
        if seconds is not None:
            LOGGER.info(f"executed {Path(record.uri).name} in {seconds:.0f} s")
    LOGGER.info(f"executed {len(jobs) - len(failed)} of {len(jobs)} chapters in "
                f"{time.perf_counter() - start:.0f} s; failed (re-run while "
                f"reading, to report the error): {failed or 'none'}")


def setup(app):
    app.connect("env-before-read-docs", execute_in_parallel)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
