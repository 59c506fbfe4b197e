"""The declared lower bounds are the versions CI tests: every `>=` bound in
pyproject.toml (dependencies and the `test` extra) is pinned to exactly that
version in .ci/lowest-direct.txt, which .ci/run installs for the fast tests."""

from __future__ import annotations

import pathlib
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONSTRAINTS = ROOT / ".ci" / "lowest-direct.txt"
# Pinned although not direct dependencies: jaxlib must match jax.
INDIRECT = {"jaxlib": "jax"}


def lower_bounds(requirements: list[str]) -> dict[str, Version]:
    bounds = {}
    for line in requirements:
        requirement = Requirement(line)
        lows = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert len(lows) == 1, f"{line!r} should have exactly one '>=' lower bound"
        bounds[canonicalize_name(requirement.name)] = lows[0]
    return bounds


def pins() -> dict[str, Version]:
    found = {}
    for raw in CONSTRAINTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9.+!-]*)", line)
        assert match, f"{raw!r} is not an exact 'name==version' pin"
        name = canonicalize_name(match[1])
        assert name not in found, f"{name} is pinned twice"
        found[name] = Version(match[2])
    return found


def declared() -> dict[str, Version]:
    return lower_bounds(PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["test"])


def test_lower_bound_parser_reads_the_bound():
    assert lower_bounds(["flax>=0.10", "numpy<3,>=1.26.0"]) == {
        "flax": Version("0.10.0"),
        "numpy": Version("1.26"),
    }


def test_every_declared_bound_is_pinned_at_exactly_that_version():
    bounds, pinned = declared(), pins()
    assert set(pinned) == set(bounds) | set(INDIRECT), "pin exactly the direct dependencies"
    different = {name: (str(bounds[name]), str(pinned[name]))
                 for name in bounds if pinned[name] != bounds[name]}
    assert not different, f"pyproject bound and pin differ (bound, pin): {different}"


def test_jaxlib_is_pinned_to_the_jax_version():
    pinned = pins()
    for name, partner in INDIRECT.items():
        assert pinned[name] == pinned[partner]


def test_ci_installs_the_pins_and_runs_the_fast_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Test the lower bounds", 1)[1]
    command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    assert command in ci
    assert '-c .ci/lowest-direct.txt -e ".[test]"' in command
    assert 'python -m pytest -m "not slow"' in command
