"""Sharded and unsharded training give the same metrics (rlbook_lib.scaling).

XLA reads ``--xla_force_host_platform_device_count`` once, when JAX starts, so the
8-device checks run in a fresh interpreter with that flag (and a timeout), as in
tests/test_xla_workaround.py. The sharded run must really be spread over 8 devices,
otherwise the comparison could not fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import scaling

PROGRAM = textwrap.dedent(
    """
    import json, os
    import rlbook_lib  # sets the deadlock workaround; XLA_FLAGS already asks for 8 devices
    import jax, jax.numpy as jnp, numpy as np
    from rlbook_lib import reinforce, rollout, scaling
    from rlbook_lib.envs import cartpole

    out = {"devices": len(jax.devices())}
    env = cartpole.CartPole(); env_params = env.default_params()
    mesh = scaling.make_mesh()
    config = reinforce.Config(num_envs=4, num_updates=12, hidden_sizes=(16,))
    train = reinforce.make_train(config, env, env_params)
    keys = jax.random.split(jax.random.key(0), 8)
    _, plain = jax.jit(jax.vmap(train))(keys)
    _, sharded = scaling.shard_seeds(train, mesh)(keys)
    out["sharded_devices"] = len(sharded.episode_return.sharding.device_set)
    agreement = scaling.compare_runs(plain, sharded)
    out["identical_until"] = agreement.identical_until.tolist()
    out["num_updates"] = agreement.num_updates
    out["max_rel"] = agreement.max_relative_difference
    out["learned"] = bool(np.nanmin(np.asarray(plain.episode_return)) > 0)
    try:
        scaling.shard_seeds(train, mesh)(jax.random.split(jax.random.key(0), 12))
        out["uneven"] = "no error"
    except ValueError as error:
        out["uneven"] = str(error)

    policy = lambda key, obs: jax.random.bernoulli(key).astype(jnp.int32)
    run = scaling.make_sharded_rollout(env, env_params, policy, 16, 50, mesh)
    _, split = jax.jit(run)(jax.random.key(1))
    keys = jax.random.split(jax.random.key(1), (16, 2))
    states = jax.vmap(lambda k: rollout.reset(env, env_params, k))(keys[:, 0])
    one = lambda k, s: rollout.rollout(env, env_params, policy, k, s, 50)
    _, whole = jax.jit(jax.vmap(one))(keys[:, 1], states)
    out["rollout_devices"] = len(split.obs.sharding.device_set)
    out["rollout_equal"] = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(split), jax.tree.leaves(whole)))
    out["rollout_ends"] = int(np.sum(whole.episode_ended))

    loss = lambda w, batch: jnp.mean((batch["x"] @ w - batch["y"]) ** 2)
    batch = {"x": jax.random.normal(jax.random.key(2), (64, 3)), "y": jnp.arange(64.0)}
    w = jnp.array([0.5, -1.0, 2.0])
    value, grad = scaling.mean_gradient(loss, mesh)(w, batch)
    value_1, grad_1 = jax.value_and_grad(loss)(w, batch)
    out["grad_close"] = bool(np.allclose(grad, grad_1, rtol=1e-5) and np.isclose(value, value_1, rtol=1e-5))
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def eight_devices() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    try:
        result = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                                text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("the 8-device program did not finish within 240 s")
    assert result.returncode == 0, result.stderr[-3000:]
    line = [row for row in result.stdout.splitlines() if row.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


@pytest.mark.slow
def test_sharded_training_gives_the_unsharded_metrics(eight_devices):
    assert eight_devices["devices"] == 8
    assert eight_devices["sharded_devices"] == 8  # really split, or the comparison proves nothing
    assert eight_devices["learned"]
    until = eight_devices["identical_until"]
    # Every seed's returns start out bitwise identical (a mix-up of keys or devices would
    # break this at update 0), and most stay so for the whole run: only a random draw
    # within rounding of a decision boundary can make one action, and so a seed, differ.
    assert min(until) >= 1
    assert sum(u == eight_devices["num_updates"] for u in until) >= 6, until
    # Until then only float32 rounding separates them: XLA may sum a batch of 1 seed in
    # another order than a batch of 8.
    assert max(eight_devices["max_rel"].values()) < 1e-4, eight_devices["max_rel"]


@pytest.mark.slow
def test_seeds_not_divisible_by_devices_raise(eight_devices):
    assert "divisible by the number of devices (8)" in eight_devices["uneven"]


@pytest.mark.slow
def test_sharded_rollout_equals_vmapped_rollout(eight_devices):
    assert eight_devices["rollout_devices"] == 8
    assert eight_devices["rollout_ends"] > 16  # random CartPole episodes end within 50 steps
    assert eight_devices["rollout_equal"]


@pytest.mark.slow
def test_data_parallel_gradient_is_the_full_batch_gradient(eight_devices):
    assert eight_devices["grad_close"]


def test_mean_gradient_of_a_hand_computed_loss():
    # loss = mean_i (w - x_i)^2 over x = [1, 2, 3, 6]: gradient 2 (w - mean x) = 2 (0 - 3)
    mesh = scaling.make_mesh(1, scaling.ENVS)
    value, grad = scaling.mean_gradient(lambda w, x: jnp.mean((w - x) ** 2), mesh)(0.0, jnp.array([1.0, 2, 3, 6]))
    assert np.isclose(grad, 2 * (0 - (1 + 2 + 3 + 6) / 4))
    assert np.isclose(value, (1 + 4 + 9 + 36) / 4)


def test_shard_seeds_on_one_device_matches_jit_vmap():
    train = lambda key, scale: scale * jax.random.normal(key, (3,))
    keys = jax.random.split(jax.random.key(0), 4)
    scales = jnp.array([1.0, 2.0, 3.0, 4.0])
    got = scaling.shard_seeds(train, scaling.make_mesh(1))(keys, scales)
    np.testing.assert_array_equal(got, jax.jit(jax.vmap(train))(keys, scales))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="num_devices must be at most"):
        scaling.make_mesh(len(jax.devices()) + 1)
    with pytest.raises(ValueError, match="num_devices"):
        scaling.make_mesh(0)
    mesh = scaling.make_mesh(1)
    run = scaling.shard_seeds(lambda key, x: x, mesh)
    with pytest.raises(ValueError, match="one entry per seed"):
        run(jax.random.split(jax.random.key(0), 4), jnp.ones(3))
    with pytest.raises(ValueError, match="leading axis"):
        run(jax.random.key(0), jnp.ones(3))
    with pytest.raises(ValueError, match="same leading length"):
        scaling.mean_gradient(lambda w, b: w, mesh)(0.0, {"x": jnp.ones(4), "y": jnp.ones(3)})
    with pytest.raises(ValueError, match="one-dimensional"):
        scaling.leading_axis_sharding("not a mesh")


class _Metrics(NamedTuple):
    episode_return: np.ndarray
    loss: np.ndarray


def test_compare_runs_by_hand():
    # seed 0 identical throughout; seed 1 differs from update 2 on (NaN = NaN counts as equal)
    a = _Metrics(np.array([[np.nan, 1.0, 2.0], [np.nan, 5.0, 6.0]]), np.array([[4.0, 2, 1], [8.0, 2, 1]]))
    b = _Metrics(np.array([[np.nan, 1.0, 2.0], [np.nan, 5.0, 7.0]]), np.array([[4.0, 2, 1], [8.0, 2.5, 3]]))
    agreement = scaling.compare_runs(a, b)
    np.testing.assert_array_equal(agreement.identical_until, [3, 2])
    assert agreement.num_identical == 1 and agreement.num_updates == 3
    assert agreement.max_relative_difference["episode_return"] == 0.0
    # seed 1's loss before update 2 differs by |2 - 2.5| = 0.5; the scale is max |a.loss| = 8
    assert agreement.max_relative_difference["loss"] == 0.5 / 8
    with pytest.raises(ValueError, match="same type"):
        scaling.compare_runs(a, (1, 2))
