"""on_policy: the recent-returns ring against a Python list, the shared Config's derived numbers and
checks, and the defaults each algorithm keeps."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib import a2c, on_policy, ppo, rollout, trpo


def transitions_of(ended, returns_):
    zeros = jnp.zeros(ended.shape)
    return rollout.Transition(obs=zeros, action=zeros, reward=zeros, next_obs=zeros, terminated=ended,
                              truncated=jnp.zeros(ended.shape, bool), episode_return=returns_,
                              episode_length=jnp.zeros(ended.shape, jnp.int32))


def test_recent_returns_keep_the_last_ten_finished_episodes_in_time_order():
    key = jax.random.key(1)
    recent, seen = on_policy.init_recent_returns(), []
    assert np.isnan(float(on_policy.mean_recent_return(recent)))
    for i in range(6):
        key, k1, k2 = jax.random.split(key, 3)
        ended = jax.random.bernoulli(k1, 0.15, (3, 8))  # [N, T]
        values = jnp.where(ended, jax.random.normal(k2, (3, 8)), 0.0)
        tr = transitions_of(ended, values)
        recent = on_policy.update_recent_returns(recent, tr)
        seen += [float(values[n, t]) for t in range(8) for n in range(3) if ended[n, t]]  # time-major
        assert int(recent.count) == len(seen)
        np.testing.assert_allclose(on_policy.mean_recent_return(recent), np.mean(seen[-10:]), rtol=1e-5)



def test_record_episodes_counts_the_segment_and_averages_the_ring():
    ended = jnp.array([[True, False, True], [False, False, True]])  # [N, T]
    returns_ = jnp.where(ended, jnp.array([[3.0, 0.0, 5.0], [0.0, 0.0, 7.0]]), 0.0)
    recent, mean, episodes = on_policy.record_episodes(on_policy.init_recent_returns(),
                                                       transitions_of(ended, returns_))
    assert int(recent.count) == 3 and float(episodes) == 3.0
    np.testing.assert_allclose(mean, (3.0 + 5.0 + 7.0) / 3)


def test_segment_numbers_are_derived_and_checked():
    config = on_policy.SegmentConfig(num_envs=4, num_steps=32, total_steps=1000)
    assert config.steps_per_update == 4 * 32 and config.num_updates == 1000 // (4 * 32)
    for name, value in (("num_envs", 0), ("num_steps", 2.5), ("gamma", 1.5), ("gae_lambda", -0.1),
                        ("total_steps", 100), ("hidden_sizes", [64])):
        with pytest.raises(ValueError, match=name):
            on_policy.SegmentConfig(**{name: value})
    with pytest.raises(ValueError, match="num_minibatches"):
        ppo.Config(num_envs=3, num_steps=5, num_minibatches=2)


def test_each_algorithm_keeps_its_defaults():
    """The shared fields keep each algorithm's own defaults (A2C: RL Zoo's; PPO: PureJaxRL's)."""
    shared = ("num_envs", "num_steps", "total_steps", "gamma", "gae_lambda", "hidden_sizes", "orthogonal_init")
    got = {m.__name__.split(".")[-1]: tuple(getattr(m.Config(), f) for f in shared) for m in (a2c, ppo, trpo)}
    assert got == {"a2c": (8, 5, 500_000, 0.99, 1.0, (64, 64), True),
                   "ppo": (4, 128, 500_000, 0.99, 0.95, (64, 64), True),
                   "trpo": (8, 128, 500_000, 0.99, 0.95, (64, 64), True)}
    assert dataclasses.replace(ppo.Config(), num_envs=8).steps_per_update == 8 * 128


def test_annealed_adam_steps_fall_linearly_per_update():
    """With a constant gradient Adam's step is the step size: α (1 − ⌊k / S⌋ / U) at Adam step k."""
    tx = on_policy.adam(0.01, 100.0, True, num_updates=4, steps_per_update=3)
    params = jnp.zeros(2)
    opt_state, sizes = tx.init(params), []
    for _ in range(12):
        steps, opt_state = tx.update(jnp.ones(2), opt_state, params)
        sizes.append(float(-steps[0]))
    np.testing.assert_allclose(sizes, [0.01 * (1 - (k // 3) / 4) for k in range(12)], rtol=1e-3, atol=1e-7)
