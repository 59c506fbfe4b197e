"""The loop that drives an online learner over episodes (used by :mod:`rlbook_lib.td`).

:func:`run` steps an environment with :func:`rlbook_lib.rollout.step`
(auto-reset), lets a learner choose each action and learn from each
transition, and logs a record of the learner at the end of every episode. It
is kept apart from the TD algorithms, which only supply ``act`` and ``learn``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from rlbook_lib import rollout

EPISODES_PER_CHUNK = 50
"""Episodes logged per ``while_loop`` (see :func:`run`)."""


class _Loop(NamedTuple):
    learner: Any  # what is learned: AgentState, or (V, counts)
    env_state: rollout.RolloutState  # s_t and the bookkeeping of the current episode
    action: Int[Array, ""]  # A_t, to be taken next
    key: PRNGKeyArray
    episodes: Int[Array, ""]  # episodes finished so far
    steps: Int[Array, ""]  # steps taken so far, in all episodes


class _Chunk(NamedTuple):
    loop: _Loop
    log: Any  # records of this chunk's episodes, leaves [chunk, ...]
    first: Int[Array, ""]  # index of the chunk's first episode


def run(env, params, num_episodes, max_steps, act, learn, record, learner, empty_record, key):
    """Step with auto-reset until ``num_episodes`` episodes have ended (or ``max_steps`` steps).

    ``act(key, learner, obs) -> action``; ``learn(learner, transition, key) ->
    (learner, A_{t+1} or None)``, where SARSA returns the A_{t+1} its target
    used and the others None (A_{t+1} is then chosen from the updated learner);
    ``record(learner, transition)`` is logged at each episode's end, and
    ``empty_record`` stands for episodes that never ended. Returns the final
    learner and the log, leaves [E, ...].

    Steps run in a ``while_loop``, so under vmap every run goes at its own pace
    and episodes of different lengths cost no padding. A vmapped ``while_loop``
    selects between the old and new value of its whole carry at every step, so
    the log is kept out of it: an outer ``scan`` runs one ``while_loop`` per
    chunk of ``EPISODES_PER_CHUNK`` episodes and stacks the chunks' logs.
    """
    chunk = min(num_episodes, EPISODES_PER_CHUNK)
    num_chunks = -(-num_episodes // chunk)
    key_reset, key_act, key_loop = jax.random.split(key, 3)
    env_state = rollout.reset(env, params, key_reset)
    action = act(key_act, learner, rollout.observe(env, params, env_state))

    def one_step(carry: _Chunk) -> _Chunk:
        loop, log, first = carry
        key, key_env, key_learn, key_act = jax.random.split(loop.key, 4)
        env_state, transition = rollout.step(env, params, key_env, loop.env_state, loop.action)
        learner, next_action = learn(loop.learner, transition, key_learn)
        ended = transition.episode_ended
        # o_{t+1}, or the first observation of the next episode if this one ended.
        action = act(key_act, learner, rollout.observe(env, params, env_state))
        if next_action is not None:
            action = jnp.where(ended, action, next_action)
        slot = jnp.where(ended, loop.episodes - first, chunk)  # out of range: dropped
        log = jax.tree.map(lambda buffer, x: buffer.at[slot].set(x, mode="drop"),
                           log, record(learner, transition))
        loop = _Loop(learner, env_state, action, key, loop.episodes + ended, loop.steps + 1)
        return _Chunk(loop, log, first)

    def one_chunk(loop, first):
        last = jnp.minimum(first + chunk, num_episodes)
        not_done = lambda c: (c.loop.episodes < last) & (c.loop.steps < max_steps)  # noqa: E731
        empty = jax.tree.map(lambda x: jnp.broadcast_to(x, (chunk, *jnp.shape(x))), empty_record)
        done = jax.lax.while_loop(not_done, one_step, _Chunk(loop, empty, first))
        return done.loop, done.log

    init = _Loop(learner, env_state, action, key_loop, jnp.int32(0), jnp.int32(0))
    loop, log = jax.lax.scan(one_chunk, init, jnp.arange(num_chunks) * chunk)
    return loop.learner, jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:num_episodes], log)
