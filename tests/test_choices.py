"""choices: a variant picked by name, by int, or by a traced index under vmap, and bad picks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import choices

NAMES = ("double", "square", "negate")
COMPUTE = {"double": lambda x: 2 * x, "square": lambda x: x * x, "negate": lambda x: -x}


def test_name_int_and_traced_index_pick_the_same_variant():
    x = jnp.array([1.0, 3.0])
    for i, name in enumerate(NAMES):
        by_name = choices.select(name, NAMES, lambda n: COMPUTE[n](x))
        np.testing.assert_array_equal(by_name, COMPUTE[name](x))
        np.testing.assert_array_equal(choices.select(i, NAMES, lambda n: COMPUTE[n](x)), by_name)
    swept = jax.jit(jax.vmap(lambda i: choices.select(i, NAMES, lambda n: {"y": COMPUTE[n](x)})))(jnp.arange(3))
    np.testing.assert_array_equal(swept["y"], [[2.0, 6.0], [1.0, 9.0], [-1.0, -3.0]])  # by hand


def test_only_a_static_pick_is_named():
    assert choices.is_named("square", NAMES, "square") and choices.is_named(1, NAMES, "square")
    assert not choices.is_named(0, NAMES, "square") and not choices.is_named(jnp.int32(1), NAMES, "square")


@pytest.mark.parametrize("bad", ["cube", 3, -1, True, 1.0, jnp.float32(1.0), jnp.arange(2)])
def test_bad_picks_raise(bad):
    with pytest.raises(ValueError, match="setting must be one of"):
        choices.check("setting", bad, NAMES)


def test_good_picks_pass():
    for good in ("negate", 2, np.int64(0), jnp.int32(2)):
        choices.check("setting", good, NAMES)
