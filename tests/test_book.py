"""The book's machinery: table of contents, Colab twins, one repository URL,
and the README's commands in CI."""

from __future__ import annotations

import pathlib
import re

import jupytext
import nbformat
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def notebook_chapters() -> list[pathlib.Path]:
    sources = [ROOT / f"{name}.md" for name in toc_files()]
    return [path for path in sources if path.read_text().startswith("---\njupytext:")]


def cells_of(notebook):
    return [
        (cell.cell_type, cell.source.strip(), sorted(cell.metadata.get("tags", [])))
        for cell in notebook.cells
    ]


def test_every_toc_entry_has_a_markdown_source():
    for name in toc_files():
        assert (ROOT / f"{name}.md").is_file(), f"{name}.md is in _toc.yml but missing"


def test_the_book_has_executable_chapters():
    assert len(notebook_chapters()) >= 2


@pytest.mark.parametrize("source", notebook_chapters(), ids=lambda p: p.stem)
def test_ipynb_twin_matches_its_source(source):
    twin = source.with_suffix(".ipynb")
    assert twin.is_file(), f"{twin.name} missing: run python scripts/sync_notebooks.py"
    expected = cells_of(jupytext.read(source))
    actual = cells_of(nbformat.read(twin, as_version=4))
    assert actual == expected, f"{twin.name} drifted: run python scripts/sync_notebooks.py"
    outputs = [c.outputs for c in nbformat.read(twin, 4).cells if c.cell_type == "code"]
    assert not any(outputs), f"{twin.name} should be committed without outputs"


@pytest.mark.parametrize("source", notebook_chapters(), ids=lambda p: p.stem)
def test_first_cell_installs_the_library_on_colab_only(source):
    first_code = next(c for c in jupytext.read(source).cells if c.cell_type == "code")
    assert "remove-cell" in first_code.metadata.get("tags", [])
    assert '"google.colab" in sys.modules' in first_code.source
    assert f"git+{REPO_URL}" in first_code.source


def test_repository_url_is_written_consistently():
    assert CONFIG["repository"]["branch"] == "main"
    pattern = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")
    texts = [ROOT / "pyproject.toml", ROOT / "README.md", *ROOT.glob("book/*.md")]
    texts += list(ROOT.glob("book/*.ipynb"))
    found = {
        (path.name, url.removesuffix(".git"))
        for path in texts
        for url in pattern.findall(path.read_text())
    }
    assert found, "expected the repository URL in the Colab cells and pyproject"
    assert {url for _, url in found} == {REPO_URL}, sorted(found)


def test_inline_math_still_renders_next_to_amsmath():
    extensions = CONFIG["parse"]["myst_enable_extensions"]
    assert {"amsmath", "dollarmath"} <= set(extensions)


def readme_command(heading: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(heading, 1)[1]
    return re.search(r"```(?:bash|sh)?\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    for heading in ("### Run the tests", "### Build the book"):
        assert readme_command(heading) in ci, heading
    assert "jupyter-book build -W -n --keep-going" in ci


def solution_blocks(text: str) -> list[str]:
    """Bodies of the plain ``{solution}`` directives (not the gated start/end pairs)."""
    pattern = re.compile(r"^(`{3,}|:{3,})\{solution\}[^\n]*\n(.*?)^\1\s*$", re.M | re.S)
    return [match.group(2) for match in pattern.finditer(text)]


def test_solution_blocks_are_found():
    text = "```{solution} ex-a\n:class: dropdown\n\nbody\n```\n"
    assert solution_blocks(text) == [":class: dropdown\n\nbody\n"]


@pytest.mark.parametrize("source", notebook_chapters(), ids=lambda p: p.stem)
def test_code_in_solutions_is_executed(source):
    """Code in a solution must run when the book is built: use the gated
    ``{solution-start}`` / ``{solution-end}`` pair around code cells, never a
    plain code fence inside ``{solution}``, which would be shown but not run."""
    for body in solution_blocks(source.read_text()):
        assert not re.search(r"^\s*```", body, re.M), (
            f"{source.name}: a solution contains a code fence that is never executed:\n{body[:300]}"
        )
    text = source.read_text()
    assert text.count("{solution-start}") == text.count("{solution-end}"), source.name
