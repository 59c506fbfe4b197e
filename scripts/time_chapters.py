"""Execute each chapter on its own and print its wall-clock time.

    python scripts/time_chapters.py            # every chapter
    python scripts/time_chapters.py ch02       # chapters whose name contains ch02

The README's table of execution times comes from this script.
"""

from __future__ import annotations

import pathlib
import sys
import time

import jupytext
from nbclient import NotebookClient

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sync_notebooks import ROOT, chapter_sources  # noqa: E402


def execute(source: pathlib.Path) -> float:
    notebook = jupytext.read(source)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(source.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(patterns: list[str]) -> int:
    print(f"{'chapter':45s} {'seconds':>8s}")
    for source in chapter_sources():
        if patterns and not any(p in source.name for p in patterns):
            continue
        print(f"{source.stem:45s} {execute(source):8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
