"""Tests for rlbook_lib.features: aggregation, polynomial and Fourier bases by hand
arithmetic; tile coding's count of active tiles, sharing between neighbours, offsets,
hashing; bad input."""

import numpy as np
import pytest

from rlbook_lib import features  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

MOUNTAIN_CAR = features.TileCoding(low=(-1.2, -0.07), high=(0.6, 0.07), num_tilings=8, tiles_per_dim=8)


def test_state_aggregation_groups_the_1000_walk_into_hundreds():
    index = lambda s: int(features.aggregation_index(s, 1, 1001, 10))  # noqa: E731
    assert [index(s) for s in (1, 100, 101, 500, 1000)] == [0, 0, 1, 4, 9]
    assert index(0) == 0 and index(1001) == 9  # the ends are clipped into the outer groups
    np.testing.assert_array_equal(features.state_aggregation(250, 1, 1001, 10), np.eye(10)[2])


def test_polynomial_by_hand():
    s1, s2 = 0.5, 0.25
    # c in lexicographic order: (0,0), (0,1), (1,0), (1,1)
    np.testing.assert_allclose(features.polynomial(jnp.array([s1, s2]), 1), [1, s2, s1, s1 * s2], rtol=1e-6)
    np.testing.assert_allclose(features.polynomial(jnp.array([s1]), 3), [1, s1, s1**2, s1**3], rtol=1e-6)
    assert features.polynomial(jnp.array([0.1, 0.2, 0.3]), 2).shape == (3**3,)


def test_fourier_by_hand():
    s1, s2 = 0.5, 0.25
    expected = [np.cos(0), np.cos(np.pi * s2), np.cos(np.pi * 2 * s2),
                np.cos(np.pi * s1), np.cos(np.pi * (s1 + s2)), np.cos(np.pi * (s1 + 2 * s2)),
                np.cos(np.pi * 2 * s1), np.cos(np.pi * (2 * s1 + s2)), np.cos(np.pi * (2 * s1 + 2 * s2))]
    np.testing.assert_allclose(features.fourier(jnp.array([s1, s2]), 2), expected, atol=1e-6)


def test_normalize_maps_the_box_onto_the_unit_box():
    x = features.normalize(jnp.array([-1.2, 0.07]), (-1.2, -0.07), (0.6, 0.07))
    np.testing.assert_allclose(x, [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(features.normalize(jnp.array([-0.3, 0.0]), (-1.2, -0.07), (0.6, 0.07)),
                               [0.5, 0.5], atol=1e-6)


def states(n, seed=0):
    key_x, key_v = jax.random.split(jax.random.key(seed))
    return jnp.stack([jax.random.uniform(key_x, (n,), minval=-1.2, maxval=0.6),
                      jax.random.uniform(key_v, (n,), minval=-0.07, maxval=0.07)], axis=1)


@pytest.mark.parametrize("hash_size", [None, 512])
def test_exactly_one_active_tile_per_tiling(hash_size):
    coding = features.TileCoding((-1.2, -0.07), (0.6, 0.07), 8, 8, hash_size=hash_size)
    tiles = np.asarray(jax.vmap(lambda s: features.active_tiles(coding, s))(states(500)))
    assert tiles.shape == (500, 8)
    assert tiles.min() >= 0 and tiles.max() < coding.num_features
    if hash_size is None:  # tiling k owns the block k * tiles_per_tiling ... (k + 1) * tiles_per_tiling - 1
        np.testing.assert_array_equal(tiles // coding.tiles_per_tiling, np.tile(np.arange(8), (500, 1)))
        dense = jax.vmap(lambda s: features.tile_features(coding, s))(states(500))
        np.testing.assert_array_equal(dense.sum(1), 8.0)


def test_neighbours_share_tiles_and_distant_states_do_not():
    coding = MOUNTAIN_CAR
    shared = lambda a, b: len(set(np.asarray(features.active_tiles(coding, jnp.array(a))).tolist())  # noqa: E731
                              & set(np.asarray(features.active_tiles(coding, jnp.array(b))).tolist()))
    s = (-0.5, 0.01)
    assert shared(s, s) == 8
    assert shared(s, (-0.5 + 0.01, 0.01)) >= 6  # 0.01 is 0.044 tile widths away
    assert 0 < shared(s, (-0.5 + 0.15, 0.01)) < 8  # 0.67 tile widths: some tilings split them
    assert shared(s, (0.2, 0.01)) == 0  # several tiles away
    assert shared(s, (-0.5, -0.06)) == 0
    # The generalisation falls off with distance, averaged over random states.
    base = states(200, 1)
    overlap = []
    for dx in (0.0, 0.05, 0.1, 0.2):
        near = base + jnp.array([dx, 0.0])
        pairs = jax.vmap(lambda a, b: jnp.sum(features.active_tiles(coding, a)[:, None]
                                              == features.active_tiles(coding, b)[None, :]))(base, near)
        overlap.append(float(jnp.mean(pairs)))
    assert overlap[0] == 8 and overlap[0] > overlap[1] > overlap[2] > overlap[3]


def test_offsets_are_asymmetric_fractions_of_a_tile():
    w = MOUNTAIN_CAR.widths
    expected = np.array([[k % 8, (3 * k) % 8] for k in range(8)]) * w / 8  # displacement (1, 3)
    np.testing.assert_allclose(MOUNTAIN_CAR.offsets, expected, rtol=1e-12)
    assert MOUNTAIN_CAR.num_features == 8 * 9 * 9


def test_states_outside_the_box_are_clipped():
    inside = features.active_tiles(MOUNTAIN_CAR, jnp.array([0.6, 0.07]))
    outside = features.active_tiles(MOUNTAIN_CAR, jnp.array([5.0, 1.0]))
    np.testing.assert_array_equal(inside, outside)


def test_jit_equals_eager():
    s = jnp.array([-0.3, 0.02])
    np.testing.assert_array_equal(jax.jit(lambda x: features.active_tiles(MOUNTAIN_CAR, x))(s),
                                  features.active_tiles(MOUNTAIN_CAR, s))
    np.testing.assert_allclose(jax.jit(features.fourier, static_argnums=1)(s, 3), features.fourier(s, 3))


@pytest.mark.parametrize("kwargs, match", [
    (dict(low=(0.0,), high=(1.0,), tiles_per_dim=4, tile_width=(0.2,)), "does not cover"),
    (dict(low=(0.0, 0.0), high=(1.0, 1.0), tile_width=(0.2,)), "tile_width"),
    (dict(low=(1.0,), high=(0.0,)), "low < high"),
    (dict(low=(0.0, 0.0), high=(1.0,)), "same shape"),
    (dict(low=(0.0,), high=(1.0,), num_tilings=0), "num_tilings"),
    (dict(low=(0.0,), high=(1.0,), tiles_per_dim=2.5), "tiles_per_dim"),
    (dict(low=(0.0,), high=(1.0,), hash_size=0), "hash_size"),
])
def test_bad_tile_codings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        features.TileCoding(**kwargs)


def test_other_bad_input_raises():
    with pytest.raises(ValueError, match="order"):
        features.fourier(jnp.array([0.5]), -1)
    with pytest.raises(ValueError, match="num_groups"):
        features.aggregation_index(3, 1, 1001, 0)
    with pytest.raises(ValueError, match="shape"):
        features.active_tiles(MOUNTAIN_CAR, jnp.array([0.1, 0.2, 0.3]))
    features.TileCoding((0.0,), (1.0,), tiles_per_dim=4, tile_width=(0.25,))  # exactly covers: fine
