"""rlbook_lib: the JAX code behind the book
"Reinforcement Learning: How LLM Systems Optimize Decisions Through Feedback".

Chapters import modules, not names (``from rlbook_lib import dp`` and then
``dp.value_iteration(...)``), so each page shows which concept is in use.
"""

# Must run before JAX starts a backend: it sets XLA_FLAGS (see _xla.py).
from rlbook_lib import _xla  # noqa: F401  isort: skip

__version__ = "0.1.0"
