"""Check, in the built HTML, that every figure a chapter draws is numbered and captioned.

    python scripts/check_figures.py _build/html

A plot that a code cell shows must sit inside a numbered figure: give the cell
myst-nb figure metadata (``mystnb: figure: {caption: ..., name: fig-...}``) or
glue the figure and place it with ``{glue:figure}``. Every figure must also be
cited in the text with ``{numref}``. Animations (matplotlib's JavaScript player)
are exempt. Exits non-zero and lists the offenders otherwise.
"""

from __future__ import annotations

import pathlib
import sys

from bs4 import BeautifulSoup


def problems_in(page: pathlib.Path) -> list[str]:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    problems = []
    for output in soup.select("div.cell_output"):
        for img in output.find_all("img"):
            if str(img.get("id", "")).startswith("_anim_img"):
                continue
            figure = img.find_parent("figure")
            number = figure.select_one("figcaption .caption-number") if figure else None
            if number is None:
                problems.append(f"{page.name}: unnumbered plot {img.get('src', '?')[:60]}")
    for figure in soup.select("figure[id]"):
        if not soup.select(f'a[href="#{figure["id"]}"]:not(.headerlink)'):
            problems.append(f"{page.name}: figure '{figure['id']}' is never cited with {{numref}}")
    return problems


def main(html_root: str) -> int:
    pages = sorted(pathlib.Path(html_root, "book").glob("*.html"))
    problems = [p for page in pages for p in problems_in(page)]
    for problem in problems:
        print(problem)
    print(f"{len(pages)} pages checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
