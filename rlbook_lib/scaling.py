r"""Scaling out without leaving JAX: one ``train(key)`` over many devices with ``jax.sharding``.

Everything in this book trains with ``jax.jit(jax.vmap(train))(keys)``: one
compiled program, one agent per key. On several devices (GPUs, TPU cores, or
CPU devices forced with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``)
the same program runs unchanged once its inputs are *sharded*: the leading axis
of ``keys`` is split over a one-dimensional :class:`jax.sharding.Mesh`, and XLA's
SPMD partitioner (GSPMD) gives each device the seeds it holds. Seeds are
independent, so no device ever waits for another. Each seed's numbers are those
of the unsharded run up to float32 rounding: XLA compiles a batch of B/D seeds on
a device differently from a batch of B on one, so sums may be added in another
order and losses differ in their last bits, while the sampled actions, and so the
episode returns, stay the same. Not for ever: once a random draw falls within
rounding of a decision boundary, one action differs and that seed's run goes its
own (equally valid) way. :func:`compare_runs` measures both: how long each seed's
returns stay bitwise identical, and how far the other metrics differ until then.

Environments can be split the same way (:func:`make_sharded_rollout`), and a
gradient over a batch split across devices is the average of the devices'
gradients (:func:`mean_gradient`),

.. math::

    \nabla_\theta \frac{1}{B}\sum_{i=1}^{B} \ell_i(\theta)
      = \frac{1}{D}\sum_{d=1}^{D} \frac{1}{B/D} \sum_{i \in \mathcal{B}_d} \nabla_\theta \ell_i(\theta),

which holds when the B examples are split into D shards :math:`\mathcal{B}_d` of
equal size B/D. That is why every function here raises ``ValueError`` when a count
is not divisible by the number of devices: pad with extra seeds, or choose a count
that divides, rather than let shards of unequal size change the average.

=================  =====================================  ===============================================
symbol             code                                   meaning
=================  =====================================  ===============================================
D                  ``mesh.size``                          devices in the mesh
B                  ``len(keys)``, ``num_envs``            seeds, environments or examples split over them
=================  =====================================  ===============================================

Example::

    mesh = scaling.make_mesh()                    # all devices, axis "seeds"
    train = ppo.make_train(ppo.Config(), env, env_params)
    state, metrics = scaling.shard_seeds(train, mesh)(jax.random.split(jax.random.key(0), 8))
    metrics.episode_return.sharding               # NamedSharding(..., P('seeds'))
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlbook_lib import checks, rollout
from rlbook_lib.envs.base import Environment

SEEDS = "seeds"
"""Default name of the mesh axis that seeds are split over."""
ENVS = "envs"
"""Default name of the mesh axis that environments (or examples) are split over."""


def make_mesh(num_devices: int | None = None, axis_name: str = SEEDS) -> Mesh:
    """A one-dimensional mesh over the first ``num_devices`` of ``jax.devices()`` (all by default).

    The mesh's axis is ``Auto``: XLA decides how intermediate values are laid out,
    so code written for one device (every ``make_train`` of the book) runs unchanged.
    """
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    checks.check_positive_int("num_devices", num_devices)
    if num_devices > len(devices):
        raise ValueError(
            f"num_devices must be at most the {len(devices)} available device(s) "
            f"({devices[0].platform}), got {num_devices}; on a CPU, set "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts"
        )
    if not isinstance(axis_name, str) or not axis_name:
        raise ValueError(f"axis_name must be a non-empty string, got {axis_name!r}")
    return Mesh(np.array(devices[:num_devices]), (axis_name,))


def _axis(mesh: Mesh) -> str:
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be a one-dimensional jax.sharding.Mesh, got {mesh!r}")
    return mesh.axis_names[0]


def leading_axis_sharding(mesh: Mesh) -> NamedSharding:
    """Split an array's leading axis over the mesh's axis; the other axes stay whole."""
    return NamedSharding(mesh, PartitionSpec(_axis(mesh)))


def check_divisible(name: str, count: int, mesh: Mesh) -> None:
    """ValueError unless ``count`` splits into equal shards over the mesh's devices."""
    checks.check_positive_int(name, count)
    if count % mesh.size:
        raise ValueError(
            f"{name} must be divisible by the number of devices ({mesh.size}) so that every "
            f"device gets the same share, got {count}; use a multiple of {mesh.size}"
        )


def _leading_length(name: str, array: Any) -> int:
    shape = np.shape(array)
    if len(shape) == 0:
        raise ValueError(f"{name} must have a leading axis to split (one entry per seed), got a scalar")
    return shape[0]


def shard_seeds(train: Callable, mesh: Mesh) -> Callable:
    """``jit(vmap(train))`` with the seeds split over ``mesh``: ``run(keys, *args) -> train's outputs``.

    ``keys`` (one key per seed, ``jax.random.split(key, B)``) and any further
    arguments (for instance a vmapped hyperparameter, one value per seed) are split
    along their leading axis over the mesh; every output leaf comes back with its
    leading (seed) axis split the same way. ``np.asarray`` gathers a result to the
    host. B must be divisible by the number of devices D; each device then runs B/D
    seeds. ``run.lower(keys).compile()`` compiles without running, as for ``jax.jit``.
    """
    if not callable(train):
        raise ValueError(f"train must be callable, got {type(train).__name__}")
    sharding = leading_axis_sharding(mesh)
    compiled = jax.jit(jax.vmap(train), in_shardings=sharding, out_shardings=sharding)

    def run(keys, *args):
        count = _leading_length("keys", keys)
        check_divisible("the number of seeds (len(keys))", count, mesh)
        for k, arg in enumerate(args):
            for leaf in jax.tree.leaves(arg):
                if _leading_length(f"args[{k}]", leaf) != count:
                    raise ValueError(f"args[{k}] must have one entry per seed ({count}) on its leading axis, "
                                     f"got shape {np.shape(leaf)}")
        return compiled(keys, *args)

    run.lower = compiled.lower  # run.lower(keys).compile(): compile apart, e.g. to time it
    return run


def make_sharded_rollout(env: Environment, env_params: Any, policy_fn: rollout.Policy,
                         num_envs: int, num_steps: int, mesh: Mesh) -> Callable:
    """``run(key) -> (states, transitions)``: ``num_envs`` environments split over ``mesh``.

    Each environment starts from a reset and takes ``num_steps`` steps of
    ``policy_fn`` (:func:`rlbook_lib.rollout.rollout`, with auto-reset). The
    environments' keys are pinned to the mesh with a sharding constraint, and XLA
    propagates the split to every environment state and transition, so each device
    steps num_envs / D environments. Results have shape [num_envs, ...] (transitions
    [num_envs, num_steps, ...]), split over the devices along that axis. Call it
    inside ``jax.jit``, and reduce what you need there (for example the number of
    episode ends): XLA then never materialises the transitions it does not use.
    """
    checks.check_environment(env)
    checks.check_positive_int("num_steps", num_steps)
    check_divisible("num_envs", num_envs, mesh)
    sharding = leading_axis_sharding(mesh)

    def run(key):
        keys = jax.lax.with_sharding_constraint(jax.random.split(key, (num_envs, 2)), sharding)
        states = jax.vmap(lambda k: rollout.reset(env, env_params, k))(keys[:, 0])
        one = lambda k, s: rollout.rollout(env, env_params, policy_fn, k, s, num_steps)
        return jax.vmap(one)(keys[:, 1], states)

    return run


def mean_gradient(loss_fn: Callable, mesh: Mesh) -> Callable:
    r"""Data-parallel ``value_and_grad``: ``(params, batch) -> (loss, grads)`` with the batch split over ``mesh``.

    ``loss_fn(params, batch)`` must be a *mean* over the examples on the leading
    axis of every leaf of ``batch``. Each device computes the loss and gradient of
    its B/D examples; ``lax.pmean`` averages them over the devices, which equals the
    loss and gradient of the whole batch (the equation in the module docstring).
    ``params`` are replicated: every device holds a full copy and receives the same
    averaged gradient, so copies that start equal stay equal.
    """
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    axis = _axis(mesh)
    replicated, split = PartitionSpec(), PartitionSpec(axis)

    # jax >= 0.7 tracks which values vary over the devices; older versions (down to the
    # declared lower bound) have shard_map in jax.experimental and no such types.
    tracks_variance = hasattr(jax, "shard_map") and hasattr(jax.lax, "pcast")

    def local(params, batch):
        if tracks_variance:
            # Mark the replicated params as varying over the devices, so that each device
            # differentiates its own loss only; otherwise shard_map's autodiff would already
            # sum the gradients over the devices, and the average below would count them D times.
            params = jax.lax.pcast(params, axis, to="varying")
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        return jax.lax.pmean((loss, grads), axis)

    specs = dict(mesh=mesh, in_specs=(replicated, split), out_specs=(replicated, replicated))
    if tracks_variance:
        compiled = jax.jit(jax.shard_map(local, **specs))
    else:  # without variance types, each device's gradient is already its own
        from jax.experimental.shard_map import shard_map
        compiled = jax.jit(shard_map(local, check_rep=False, **specs))

    def run(params, batch):
        lengths = {_leading_length("batch", leaf) for leaf in jax.tree.leaves(batch)}
        if len(lengths) != 1:
            raise ValueError(f"every leaf of batch must have the same leading length, got {sorted(lengths)}")
        check_divisible("the batch size", lengths.pop(), mesh)
        return compiled(params, batch)

    return run


class Agreement(NamedTuple):
    """How two runs of the same seeds agree (:func:`compare_runs`)."""

    identical_until: np.ndarray
    """[B] per seed, the first update whose decisive metric differs (num_updates if none does)."""
    num_updates: int
    """Updates in each run."""
    max_relative_difference: dict[str, float]
    """Per metric, max |a − b| / max |a| over every seed's updates before ``identical_until``."""

    @property
    def num_identical(self) -> int:
        """Seeds whose decisive metric is bitwise identical over the whole run."""
        return int(np.sum(self.identical_until == self.num_updates))


def compare_runs(a: Any, b: Any, decisive: str = "episode_return") -> Agreement:
    """Compare two Metrics NamedTuples of the same seeds, leaves [B, num_updates] (gathered to the host).

    The decisive metric (episode returns: they change only when an action does) is
    compared bitwise, NaN equal to NaN; every metric's relative difference is taken
    over the updates before each seed's first difference, where only rounding separates the runs.
    """
    if type(a) is not type(b) or not hasattr(a, "_fields") or decisive not in a._fields:
        raise ValueError(f"a and b must be Metrics of the same type with a field {decisive!r}")
    first, second = np.asarray(getattr(a, decisive)), np.asarray(getattr(b, decisive))
    if first.ndim != 2 or first.shape != second.shape:
        raise ValueError(f"{decisive} must have shape [seeds, updates] in both runs, got {first.shape}, {second.shape}")
    same = (first == second) | (np.isnan(first) & np.isnan(second))
    num_updates = first.shape[1]
    until = np.where(same.all(axis=1), num_updates, np.argmin(same, axis=1))
    before = np.arange(num_updates)[None, :] < until[:, None]
    differences = {}
    for name, x, y in zip(a._fields, a, b):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        scale = max(float(np.nanmax(np.abs(x), initial=0.0)), np.finfo(np.float32).tiny)
        gap = np.where(before & ~(np.isnan(x) & np.isnan(y)), np.abs(x - y), 0.0)
        differences[name] = float(np.nanmax(gap, initial=0.0)) / scale
    return Agreement(until, num_updates, differences)
