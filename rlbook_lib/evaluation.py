r"""Evaluation episodes: run a fixed policy from fresh resets, apart from training.

Learning curves drawn from training episodes mix in exploration (ε-greedy
actions) and a policy that changes within an episode. An evaluation instead
freezes the policy (usually greedy), resets M environments and plays each one's
first episode to its end, at most ``env.max_episode_steps`` steps, and reports

.. math::

    G_0 = \sum_{t=0}^{T-1} R_{t+1} \quad\text{(undiscounted)}, \qquad
    G_0^\gamma = \sum_{t=0}^{T-1} \gamma^t R_{t+1},

for each episode. Every environment runs exactly ``max_episode_steps`` steps
(a ``lax.scan`` of fixed length) and the steps after its first episode are
masked out, so the result is always M complete episodes.

Example::

    act = dqn.policy_fn(q_network, params)           # greedy
    result = evaluation.evaluate(env, env_params, act, key, num_episodes=8, gamma=0.99)
    result.episode_return                              # [8]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import checks, rollout
from rlbook_lib.envs.base import Environment


class Episodes(NamedTuple):
    """M evaluation episodes; every leaf has a leading axis [M]."""

    initial_obs: Array
    """o_0 of each episode."""
    episode_return: Float[Array, "M"]
    """G_0, the undiscounted return."""
    discounted_return: Float[Array, "M"]
    """G_0^γ = Σ_t γ^t R_{t+1}."""
    episode_length: Float[Array, "M"]
    """T, the number of steps."""


class Summary(NamedTuple):
    """An evaluation's means over its M episodes; an algorithm's ``train`` stacks them along an evaluation axis."""

    env_steps: Int[Array, ""]
    """Training environment steps taken when the evaluation ran."""
    episode_return: Float[Array, ""]
    """Mean undiscounted return G_0."""
    discounted_return: Float[Array, ""]
    """Mean discounted return G_0^γ: what a value estimate at s_0 should predict."""
    initial_value: Float[Array, ""]
    """Mean value the agent predicts at the episodes' starts (for DQN, max_a Q(s_0, a; θ))."""


def evaluate(env: Environment, env_params: Any, policy_fn: rollout.Policy, key: PRNGKeyArray,
             num_episodes: int, gamma: Float[Array, ""] | float) -> Episodes:
    """``num_episodes`` episodes of ``policy_fn`` from fresh resets, side by side (vmap)."""
    horizon = env.max_episode_steps
    if horizon is None:
        raise ValueError("env.max_episode_steps must be an int: an evaluation episode runs at most that long")
    checks.check_positive_int("num_episodes", num_episodes)
    discounts = gamma ** jnp.arange(horizon)

    def one_episode(key):
        key_reset, key_run = jax.random.split(key)
        start = rollout.reset(env, env_params, key_reset)
        _, tr = rollout.rollout(env, env_params, policy_fn, key_run, start, horizon)
        valid = rollout.first_episode_mask(tr)
        reward = jnp.where(valid, tr.reward, 0.0)
        return Episodes(rollout.observe(env, env_params, start), jnp.sum(reward), jnp.sum(discounts * reward),
                        jnp.sum(valid).astype(jnp.float32))

    return jax.vmap(one_episode)(jax.random.split(key, num_episodes))


def bootstrap_interval(values, num_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> np.ndarray:
    """The percentile bootstrap interval of the mean of ``values`` (one number per run): the
    central ``level`` of the means of ``num_resamples`` resamples drawn with replacement,
    from NumPy's generator seeded with ``seed``. Returns ``[low, high]``."""
    values = np.asarray(values)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"values must be a 1-D array of at least 2 runs, got shape {values.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    means = np.random.default_rng(seed).choice(values, (num_resamples, len(values))).mean(1)
    tail = 100 * (1 - level) / 2
    return np.percentile(means, [tail, 100 - tail])
