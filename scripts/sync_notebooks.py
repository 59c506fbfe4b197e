"""Write the .ipynb twin of every MyST chapter, for Colab.

The chapters are written as MyST Markdown notebooks (book/*.md). Colab opens only
.ipynb files, so each chapter has a committed twin with the same cells and no
outputs. Run this after editing a chapter:

    python scripts/sync_notebooks.py               # every chapter
    python scripts/sync_notebooks.py reinforce     # chapters whose name contains it

tests/test_book.py fails when a twin has drifted from its source.
"""

from __future__ import annotations

import pathlib
import sys

import jupytext

ROOT = pathlib.Path(__file__).resolve().parents[1]


def chapter_sources() -> list[pathlib.Path]:
    """MyST notebooks under book/: Markdown files with a jupytext header."""
    return sorted(
        path
        for path in (ROOT / "book").glob("*.md")
        if path.read_text().startswith("---\njupytext:")
    )


def write_twin(source: pathlib.Path) -> pathlib.Path:
    notebook = jupytext.read(source)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:03d}"  # deterministic, so that re-syncing changes nothing
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["colab"] = {"provenance": []}
    target = source.with_suffix(".ipynb")
    jupytext.write(notebook, target, fmt="ipynb")
    return target


def main(patterns: list[str]) -> int:
    for source in chapter_sources():
        if patterns and not any(p in source.name for p in patterns):
            continue
        print("wrote", write_twin(source).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
