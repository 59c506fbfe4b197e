"""Quote computed numbers in the book's prose.

In the HTML book, ``glue(name, value)`` stores a value that the text then cites
with ``{glue:text}`name:.2f```, so a number in a sentence always comes from the
executed cell. ``myst_nb`` provides this when the book is built; in a plain
Jupyter or Colab session, where it is not installed, the value is just shown.
"""

from __future__ import annotations

from typing import Any


def glue(name: str, value: Any, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the text.

    NumPy and JAX scalars are stored as Python numbers, so that the text can
    format them (``{glue:text}`name:.2f```).
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        from IPython.display import display as show

        show(f"{name} = {value}")
    else:
        myst_glue(name, value, display=display)
