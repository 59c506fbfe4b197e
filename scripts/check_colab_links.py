"""Check the Colab buttons of the built HTML book.

Every chapter page must have a Colab link, and every Colab link must name the
configured repository, the branch in _config.yml, and an .ipynb file that exists
in this repository at exactly that path.

    python scripts/check_colab_links.py _build/html
"""

from __future__ import annotations

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINK = re.compile(r'https://colab\.research\.google\.com/github/([^"\s<>]+)')


def main(html_dir: str) -> int:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo_path = config["repository"]["url"].removeprefix("https://github.com/")
    prefix = f"{repo_path}/blob/{config['repository']['branch']}/"
    sources = sorted((ROOT / "book").glob("*.ipynb"))
    problems = []
    for notebook in sources:
        page = pathlib.Path(html_dir) / notebook.relative_to(ROOT).with_suffix(".html")
        links = set(LINK.findall(page.read_text())) if page.exists() else set()
        if not links:
            problems.append(f"{page}: no Colab button")
        for link in links:
            target = link.removeprefix(prefix)
            if not link.startswith(prefix):
                problems.append(f"{page}: Colab link {link} is not under {prefix}")
            elif not target.endswith(".ipynb") or not (ROOT / target).is_file():
                problems.append(f"{page}: Colab link names {target}, not an .ipynb here")
    for problem in problems:
        print(problem)
    print(f"checked the Colab buttons of {len(sources)} chapters: {len(problems)} problems")
    return 1 if problems or not sources else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "_build/html"))
