r"""N environments stepped as one batch, drawing s_0 only for the environments whose episode ended.

:func:`rlbook_lib.rollout.step` is written for one environment, and ``vmap`` makes it
step N. Its reset is a select: under ``vmap`` every environment draws a fresh
s_0 ~ p_0 at every step, and keeps it only if its episode ended. For CartPole that
draw (a key and four uniforms) costs more than the physics, and an episode ends only
about once in 20 steps even under a random policy. :func:`step_batch` works on the
batch instead:

1. advance all N environments (:func:`rlbook_lib.rollout.advance`, vmapped): the
   dynamics, the time limit, the episodes' bookkeeping;
2. list the environments whose episode ended, in blocks of ``reset_block``;
3. for each block, draw s_0 with those environments' reset keys and write it into
   their slots; a ``lax.while_loop`` runs as many blocks as there are ends (none when no
   episode ended).

**Equivalence** (tested bit for bit). With one key per environment, ``keys`` [N],

.. code-block:: python

    step_batch(env, params, keys, states, actions)
        == jax.vmap(rollout.step, (None, None, 0, 0, 0))(env, params, keys, states, actions)

and :func:`rollout_batch` with keys [N] equals ``jax.vmap`` of :func:`rlbook_lib.rollout.rollout`
with those keys (both jitted; run eagerly, XLA may round a float operation differently). A single key k stands for the keys ``env_keys(k, N)``, that is
``fold_in(k, i)`` for environment i; they are then derived only where used (the reset
keys of the environments that ended, and the step keys of a stochastic environment),
which saves one hash per environment and step.

Termination and truncation stay apart exactly as in :mod:`rlbook_lib.rollout`;
``next_obs`` is the true o_{t+1}, also at an episode's end.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, PRNGKeyArray

from rlbook_lib import checks, rollout
from rlbook_lib.envs.base import Environment


def env_keys(key: PRNGKeyArray, num_envs: int) -> PRNGKeyArray:
    """The per-environment keys a single key stands for: ``fold_in(key, i)``, i = 0 … N − 1."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(num_envs))


def default_reset_block(num_envs: int) -> int:
    """⌈N / 16⌉: one block covers a step in which up to one environment in 16 ended."""
    return max(1, math.ceil(num_envs / 16))


def _check_keys(keys: Array, num_envs: int) -> None:
    if not jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        raise ValueError(f"keys must be typed keys from jax.random.key, got dtype {keys.dtype}")
    if keys.shape not in ((), (num_envs,)):
        raise ValueError(f"keys must be one key or one per environment ({num_envs},), got shape {keys.shape}")


def reset_where(env: Environment, params: Any, ended: Bool[Array, "N"], env_states: Any,
                reset_keys: Callable[[Int[Array, "B"]], PRNGKeyArray], reset_block: int) -> Any:
    """``env_states`` [N, …] with s_0 ~ p_0 drawn from ``reset_keys(i)`` written where ``ended[i]``.

    ``reset_keys`` maps environment indices [B] to keys [B]; it is called only on the
    indices of environments that ended (and on padding, whose draws are discarded)."""
    n = ended.shape[0]
    padded = math.ceil(n / reset_block) * reset_block
    rank = jnp.cumsum(ended) - 1  # among the environments that ended
    order = jnp.full(padded, n, jnp.int32).at[jnp.where(ended, rank, padded)].set(
        jnp.arange(n, dtype=jnp.int32), mode="drop")  # their indices first, then n (padding)
    count = jnp.sum(ended, dtype=jnp.int32)

    def one_block(carry):
        block, states = carry
        index = jax.lax.dynamic_slice(order, (block * reset_block,), (reset_block,))
        keys = reset_keys(jnp.minimum(index, n - 1))
        fresh = jax.vmap(lambda k: env.initial(k, params))(keys)
        states = jax.tree.map(lambda s, f: s.at[index].set(f, mode="drop"), states, fresh)  # n is dropped
        return block + 1, states

    return jax.lax.while_loop(lambda c: c[0] * reset_block < count, one_block, (jnp.int32(0), env_states))[1]


def step_batch(env: Environment, params: Any, keys: PRNGKeyArray, states: rollout.RolloutState, actions: Array,
               reset_block: int | None = None) -> tuple[rollout.RolloutState, rollout.Transition]:
    """One :func:`rlbook_lib.rollout.step` of N environments (leading axis N everywhere), resetting
    only those whose episode ended (module docstring). ``keys``: [N], or one key for ``env_keys(key, N)``.
    ``reset_block`` (static): environments reset per block, default :func:`default_reset_block`."""
    rollout.check_env(env)
    num_envs = jax.tree_util.tree_leaves(states)[0].shape[0]
    _check_keys(keys, num_envs)
    reset_block = default_reset_block(num_envs) if reset_block is None else reset_block
    checks.check_positive_int("reset_block", reset_block)
    per_env = keys if keys.shape else env_keys(keys, num_envs)  # unused draws are dropped by XLA

    def reset_keys(index):  # environment i's reset key, fold_in(key_i, 1), as rollout.step
        own = per_env[index] if keys.shape else jax.vmap(jax.random.fold_in, (None, 0))(keys, index)
        return jax.vmap(jax.random.fold_in, (0, None))(own, 1)

    step_keys = jax.vmap(jax.random.fold_in, (0, None))(per_env, 0)
    advance = lambda k, s, a: rollout.advance(env, params, k, s, a)  # noqa: E731
    next_states, transitions = jax.vmap(advance)(step_keys, states, actions)
    env_states = reset_where(env, params, transitions.episode_ended, next_states.env_state, reset_keys, reset_block)
    return next_states._replace(env_state=env_states), transitions


def rollout_batch(env: Environment, params: Any, policy_fn: rollout.Policy, keys: PRNGKeyArray,
                  states: rollout.RolloutState, num_steps: int, reset_block: int | None = None
                  ) -> tuple[rollout.RolloutState, rollout.Transition]:
    """``jax.vmap(rollout.rollout)`` over N environments with keys [N], bit for bit, via :func:`step_batch`.

    ``policy_fn(key, obs)`` acts on one unbatched observation (vmapped here). Returns the final
    states [N, …] and the transitions with leading axes [N, T], as the vmapped rollout does.
    """
    checks.check_positive_int("num_steps", num_steps)
    num_envs = jax.tree_util.tree_leaves(states)[0].shape[0]
    _check_keys(keys, num_envs)
    if not keys.shape:
        raise ValueError("rollout_batch needs one key per environment, keys of shape (N,)")
    step_keys = jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, (num_steps, 2)))(keys), 0, 1)  # [T, N, 2]

    def one_step(states, keys):
        observations = jax.vmap(lambda s: rollout.observe(env, params, s))(states)
        actions = jax.vmap(policy_fn)(keys[:, 0], observations)
        return step_batch(env, params, keys[:, 1], states, actions, reset_block)

    states, transitions = jax.lax.scan(one_step, states, step_keys)
    return states, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), transitions)
