r"""Features for linear value-function approximation (S&B §9.5).

A linear approximation writes the value of a state as a weighted sum of features,

.. math::

    \hat v(s, w) = w^\top x(s) = \sum_{i=1}^d w_i\, x_i(s), \qquad
    \nabla_w \hat v(s, w) = x(s),

so everything an approximation can and cannot represent is decided by x(s).
Each function here maps ONE state to its feature vector (vmap at the call
site):

========================  ======================================================  ==============
features                  x(s)                                                    size d
========================  ======================================================  ==============
state aggregation         one-hot of the group (one of n equal intervals)         n
polynomial (order n)      x_i(s) = Π_j s_j^{c_{ij}},  c_i ∈ {0, ..., n}^k         (n + 1)^k
Fourier (order n)         x_i(s) = cos(π sᵀ c_i),  c_i ∈ {0, ..., n}^k            (n + 1)^k
tile coding               1 in the one tile of each tiling that holds s          num_tilings active
========================  ======================================================  ==============

Polynomial and Fourier features expect s scaled to the unit box [0, 1]^k
(:func:`normalize`). Tile coding returns the *indices* of its active features
(exactly ``num_tilings`` of them) rather than a mostly-zero vector: with binary
features, v̂(s, w) = Σ_{i active} w_i, and the gradient is 1 at those indices
(:func:`rlbook_lib.vfa.linear_value` accepts either form).
"""

from __future__ import annotations

import dataclasses
import itertools

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


def _box(low, high) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.atleast_1d(np.asarray(low, np.float64)), np.atleast_1d(np.asarray(high, np.float64))
    if low.ndim != 1 or low.shape != high.shape:
        raise ValueError(f"low and high must be 1-D of the same shape, got {low.shape} and {high.shape}")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise ValueError(f"need finite low < high in every dimension, got low={low}, high={high}")
    return low, high


def _check_order(order) -> None:
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or order < 0:
        raise ValueError(f"order must be an int >= 0, got {order!r}")


def normalize(state: Float[Array, "k"], low, high) -> Float[Array, "k"]:
    """(s − low) / (high − low), clipped to [0, 1]: the unit box that polynomial and
    Fourier features expect."""
    low, high = _box(low, high)
    s = jnp.atleast_1d(jnp.asarray(state, jnp.float32))
    return jnp.clip((s - low) / (high - low), 0.0, 1.0)


# ------------------------------------------------------------------------ state aggregation


def aggregation_index(state, low: float, high: float, num_groups: int) -> Int[Array, ""]:
    """The group of a scalar state: ⌊n (s − low) / (high − low)⌋, clipped to 0..n − 1.

    S&B's 1000-state walk (states 1..1000, 10 groups of 100): ``low = 1``,
    ``high = 1001``, ``num_groups = 10``.
    """
    _box(low, high)
    if not isinstance(num_groups, (int, np.integer)) or isinstance(num_groups, bool) or num_groups < 1:
        raise ValueError(f"num_groups must be an int >= 1, got {num_groups!r}")
    group = jnp.floor((jnp.asarray(state, jnp.float32) - low) / (high - low) * num_groups)
    return jnp.clip(group, 0, num_groups - 1).astype(jnp.int32)


def state_aggregation(state, low: float, high: float, num_groups: int) -> Float[Array, "n"]:
    """x(s) = one-hot of :func:`aggregation_index`: v̂ is constant on each group."""
    index = aggregation_index(state, low, high, num_groups)
    return (jnp.arange(num_groups) == index).astype(jnp.float32)


# ------------------------------------------------------------------ polynomial and Fourier


def exponents(order: int, dims: int) -> np.ndarray:
    """The (n + 1)^k vectors c_i ∈ {0, ..., n}^k in lexicographic order (c_0 = 0), [d, k]."""
    _check_order(order)
    if not isinstance(dims, (int, np.integer)) or dims < 1:
        raise ValueError(f"dims must be an int >= 1, got {dims!r}")
    return np.array(list(itertools.product(range(order + 1), repeat=dims)), np.int32).reshape(-1, dims)


def polynomial(state: Float[Array, "k"], order: int) -> Float[Array, "d"]:
    """x_i(s) = Π_j s_j^{c_{ij}} over all c_i ∈ {0, ..., n}^k (S&B eq. 9.17), s in [0, 1]^k.

    For k = 2, n = 1: x(s) = (1, s_2, s_1, s_1 s_2).
    """
    s = jnp.atleast_1d(jnp.asarray(state, jnp.float32))
    c = exponents(order, s.shape[0])
    return jnp.prod(s[None, :] ** c, axis=1)  # 0^0 = 1


def fourier(state: Float[Array, "k"], order: int) -> Float[Array, "d"]:
    """x_i(s) = cos(π sᵀ c_i) over all c_i ∈ {0, ..., n}^k (S&B eq. 9.18), s in [0, 1]^k."""
    s = jnp.atleast_1d(jnp.asarray(state, jnp.float32))
    c = exponents(order, s.shape[0])
    return jnp.cos(jnp.pi * (c @ s))


# ------------------------------------------------------------------------------ tile coding


@dataclasses.dataclass(frozen=True)
class TileCoding:
    """``num_tilings`` grids over the box [low, high], each shifted by an asymmetric offset.

    Each tiling divides dimension j into tiles of width w_j (default
    (high_j − low_j) / tiles_per_dim) and has tiles_per_dim + 1 tiles along it, so
    that it still covers the box after its shift. Tiling k is shifted by
    k (2j + 1) w_j / num_tilings (mod w_j) in dimension j: the displacement
    vector (1, 3, 5, ...) that S&B (§9.5.4) recommend, which avoids the
    diagonal artefacts of offsets equal in every dimension. States outside the
    box are clipped onto it.
    """

    low: tuple[float, ...]
    """Lower corner of the box, one number per dimension."""
    high: tuple[float, ...]
    """Upper corner of the box."""
    num_tilings: int = 8
    """n, the number of tilings = the number of active features."""
    tiles_per_dim: int = 8
    """Tiles that cover [low_j, high_j] in every dimension (S&B's MountainCar: 8, an 8 × 8 grid)."""
    tile_width: tuple[float, ...] | None = None
    """w_j; None: (high_j − low_j) / tiles_per_dim. Must satisfy tiles_per_dim · w_j ≥ high_j − low_j."""
    hash_size: int | None = None
    """If set, feature indices are hashed into 0..hash_size − 1 (collisions allowed); else exact."""

    def __post_init__(self):
        low, high = _box(self.low, self.high)
        object.__setattr__(self, "low", tuple(float(x) for x in low))
        object.__setattr__(self, "high", tuple(float(x) for x in high))
        for name in ("num_tilings", "tiles_per_dim"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.tile_width is not None:
            width = np.atleast_1d(np.asarray(self.tile_width, np.float64))
            if width.shape != low.shape or not np.all(width > 0):
                raise ValueError(f"tile_width must be {low.size} positive numbers, got {self.tile_width!r}")
            if np.any(self.tiles_per_dim * width < (high - low) * (1 - 1e-9)):
                raise ValueError(f"tiles_per_dim * tile_width = {self.tiles_per_dim * width} does not "
                                 f"cover the box, whose sides are {high - low}")
            object.__setattr__(self, "tile_width", tuple(float(x) for x in width))
        if self.hash_size is not None and (not isinstance(self.hash_size, (int, np.integer))
                                           or self.hash_size < 1):
            raise ValueError(f"hash_size must be None or an int >= 1, got {self.hash_size!r}")

    @property
    def dims(self) -> int:
        """k, the dimension of the state."""
        return len(self.low)

    @property
    def widths(self) -> np.ndarray:
        """w_j, the width of a tile in each dimension."""
        if self.tile_width is not None:
            return np.asarray(self.tile_width)
        return (np.asarray(self.high) - np.asarray(self.low)) / self.tiles_per_dim

    @property
    def tiles_per_tiling(self) -> int:
        """(tiles_per_dim + 1)^k: every tiling has one extra tile per dimension."""
        return (self.tiles_per_dim + 1) ** self.dims

    @property
    def num_features(self) -> int:
        """d: hash_size if hashing, else num_tilings · tiles_per_tiling."""
        return self.hash_size if self.hash_size is not None else self.num_tilings * self.tiles_per_tiling

    @property
    def offsets(self) -> np.ndarray:
        """[n, k]: tiling k's shift k (2j + 1) w_j / n mod w_j (in [0, w_j))."""
        k = np.arange(self.num_tilings)[:, None]
        odd = 2 * np.arange(self.dims)[None, :] + 1
        return np.mod(k * odd, self.num_tilings) * self.widths[None, :] / self.num_tilings


def active_tiles(coding: TileCoding, state: Float[Array, "k"]) -> Int[Array, "n"]:
    """Indices of the ``num_tilings`` active features of s, one per tiling.

    In tiling k the tile along dimension j is c_j = ⌊(s_j − low_j + offset_kj) / w_j⌋,
    in 0..tiles_per_dim; the index is k · tiles_per_tiling + the flat index of c.
    With ``hash_size`` that index is scrambled by a multiplicative hash mod hash_size.
    """
    s = jnp.atleast_1d(jnp.asarray(state, jnp.float32))
    if s.shape != (coding.dims,):
        raise ValueError(f"state must have shape ({coding.dims},), got {s.shape}")
    low, high = np.asarray(coding.low, np.float32), np.asarray(coding.high, np.float32)
    s = jnp.clip(s, low, high)
    cells = jnp.floor((s[None, :] - low + coding.offsets) / coding.widths)  # [n, k]
    cells = jnp.clip(cells, 0, coding.tiles_per_dim).astype(jnp.int32)
    strides = (coding.tiles_per_dim + 1) ** np.arange(coding.dims)[::-1]
    index = jnp.arange(coding.num_tilings) * coding.tiles_per_tiling + cells @ strides.astype(np.int32)
    if coding.hash_size is None:
        return index.astype(jnp.int32)
    scrambled = index.astype(jnp.uint32) * jnp.uint32(2654435761)  # Knuth's multiplicative hash
    return (scrambled % jnp.uint32(coding.hash_size)).astype(jnp.int32)


def tile_features(coding: TileCoding, state: Float[Array, "k"]) -> Float[Array, "d"]:
    """The dense binary vector x(s) with 1 at :func:`active_tiles` (for small codings and tests)."""
    x = jnp.zeros(coding.num_features, jnp.float32)
    return x.at[active_tiles(coding, state)].add(1.0)
