"""Modules import on their own, in a fresh interpreter, whatever is imported first."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["rlbook_lib.importance_sampling", "rlbook_lib.envs.one_state"])
def test_module_imports_first_in_a_fresh_interpreter(module):
    # importance_sampling once imported rlbook_lib.envs at the top, and envs.one_state imports
    # importance_sampling: importing importance_sampling first then failed with a circular ImportError.
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
