r"""Stepping any :class:`~rlbook_lib.envs.base.Environment` with time limits and auto-reset.

Algorithms collect experience in long runs of fixed length (``lax.scan``),
across many environments at once (``vmap``). Episodes end in the middle of
such a run, so :func:`step` resets the environment as soon as an episode ends
and carries on: every call makes exactly one transition, and a run of n steps
is n transitions whatever the episodes' lengths.

=====================  ===========  ====================================================
field of Transition    shape        meaning
=====================  ===========  ====================================================
``obs``                ``[*O]``     o_t, the observation the action was chosen on
``action``             ``[*A]``     a_t
``reward``             ``[]``       r_{t+1}
``next_obs``           ``[*O]``     o_{t+1}, the TRUE next observation, also at an episode's end
``terminated``         ``[]``       s_{t+1} is terminal: V(s_{t+1}) = 0
``truncated``          ``[]``       the time limit cut the episode at a non-terminal s_{t+1}
``episode_return``     ``[]``       G = r_1 + ... + r_T of the episode that ended here, else 0
``episode_length``     ``[]``       T of the episode that ended here, else 0
=====================  ===========  ====================================================

**Bootstrapping.** The one-step target is

.. math::

    r_{t+1} + \gamma\,(1 - \mathrm{terminated}_{t})\, V(o_{t+1}),

with ``next_obs`` as o_{t+1}. After a truncation ``next_obs`` is the last
observation of the cut episode, not the first one of the next, so the target
still bootstraps from the right state; ``discount`` = 1 − terminated is the
factor above without γ. The observation to act on at t + 1 is that of the
reset state, ``observe(env, params, state)`` on the state returned.

**Time limits** are ``env.max_episode_steps``, gymnasium's registered values
(None means no limit: the episode runs until it terminates). With t counting the
steps taken in the current episode, the step that makes t + 1 reach the limit is
truncated, unless its next state is terminal. terminated and truncated are
therefore never both True: a terminal state has value 0 whatever the clock
says. (gymnasium's ``TimeLimit`` reports both True in that case; treat its
``truncated`` as ``truncated and not terminated`` to compare.)

**Episode statistics.** ``episode_return`` and ``episode_length`` are only
meaningful where ``episode_ended`` is True; elsewhere they are 0 placeholders.
Average them with :func:`episode_statistics`, which counts only finished
episodes and gives NaN when none has finished, never over the placeholders: in
the first steps of training, before any episode ends, those zeros would look
like real returns.

Everything works on one unbatched environment; ``jax.vmap`` at the call site
for many. :mod:`rlbook_lib.vector_rollout` steps N environments as one batch
with the same results, drawing reset states only where an episode ended. Example::

    env = walk.Walk(); params = env.default_params()
    state = rollout.reset(env, params, jax.random.key(0))
    policy = lambda key, obs: jax.random.randint(key, (), 0, 2)
    state, transitions = rollout.rollout(env, params, policy, jax.random.key(1), state, 100)
    rollout.mean_finished_return(transitions)  # mean over the 5 finished episodes
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib import checks
from rlbook_lib.envs.base import Environment


class RolloutState(NamedTuple):
    """An environment's state together with the bookkeeping of its current episode."""

    env_state: Any
    """s_t."""
    t: Int[Array, ""]
    """Steps taken in the current episode; also its length so far."""
    episode_return: Float[Array, ""]
    """Undiscounted return of the current episode so far, r_1 + ... + r_t."""


class Transition(NamedTuple):
    """One step (o_t, a_t, r_{t+1}, o_{t+1}); see the module docstring for the fields."""

    obs: Array
    action: Array
    reward: Float[Array, ""]
    next_obs: Array
    terminated: Bool[Array, ""]
    truncated: Bool[Array, ""]
    episode_return: Float[Array, ""]
    episode_length: Int[Array, ""]

    @property
    def episode_ended(self) -> Bool[Array, ""]:
        """The environment was reset after this step: terminated or truncated."""
        return self.terminated | self.truncated

    @property
    def discount(self) -> Float[Array, ""]:
        """1 − terminated: the weight of V(o_{t+1}) in the target, before γ."""
        return 1.0 - self.terminated.astype(jnp.float32)


class EpisodeStatistics(NamedTuple):
    count: Int[Array, ""]
    """Number of episodes that finished."""
    mean_return: Float[Array, ""]
    """Mean undiscounted return of the finished episodes; NaN if count is 0."""
    mean_length: Float[Array, ""]
    """Mean length of the finished episodes; NaN if count is 0."""


def check_env(env: Environment) -> None:
    """ValueError unless ``env`` is an Environment with a valid time limit (at trace time, before jit)."""
    checks.check_environment(env)
    limit = env.max_episode_steps
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"env.max_episode_steps must be a positive int or None, got {limit!r}")


def reset(env: Environment, params: Any, key: PRNGKeyArray) -> RolloutState:
    """A fresh episode: s_0 ~ p_0, t = 0, return 0."""
    check_env(env)
    return RolloutState(env.initial(key, params), jnp.int32(0), jnp.float32(0.0))


def observe(env: Environment, params: Any, state: RolloutState) -> Array:
    """o_t, the observation to act on in ``state``."""
    return env.observation(state.env_state, params)


def advance(env: Environment, params: Any, key_step: PRNGKeyArray, state: RolloutState,
             action: Array) -> tuple[RolloutState, Transition]:
    """:func:`step` without the reset of ``env_state``: the time limit and the episode's
    bookkeeping (t = 0 and return 0 where the episode ended), but s_{t+1} kept even there.
    ``key_step`` goes to the environment's step. :func:`step` and
    :func:`rlbook_lib.vector_rollout.step_batch` add the reset."""
    result = env.step(key_step, state.env_state, action, params)
    t = state.t + 1
    episode_return = state.episode_return + result.reward
    terminated = result.terminated
    if env.max_episode_steps is None:
        truncated = jnp.zeros((), bool)
    else:
        truncated = (t >= env.max_episode_steps) & ~terminated
    ended = terminated | truncated
    transition = Transition(
        obs=env.observation(state.env_state, params),
        action=action,
        reward=result.reward,
        next_obs=result.observation,
        terminated=terminated,
        truncated=truncated,
        episode_return=jnp.where(ended, episode_return, 0.0),
        episode_length=jnp.where(ended, t, 0),
    )
    next_state = RolloutState(
        env_state=result.next_state,
        t=jnp.where(ended, 0, t),
        episode_return=jnp.where(ended, 0.0, episode_return),
    )
    return next_state, transition


def step(
    env: Environment, params: Any, key: PRNGKeyArray, state: RolloutState, action: Array
) -> tuple[RolloutState, Transition]:
    """Take ``action``, apply the time limit, and reset if the episode ended.

    Returns the next rollout state (already reset if the episode ended) and the
    :class:`Transition`, whose ``next_obs`` is the true o_{t+1} either way.
    The environment's step uses the key ``fold_in(key, 0)``; a reset draws
    s_0 ~ p_0 with ``fold_in(key, 1)``.

    The reset is a select (``jnp.where`` on every leaf), not a branch, so
    under ``vmap`` each environment resets on its own. (A ``lax.cond`` would
    become the same select under ``vmap``.) So s_0 is drawn at every step and
    kept only where the episode ended; for CartPole on a CPU that draw costs
    more than the dynamics. :func:`step_batch` gives the same result for N
    environments and draws s_0 only where an episode ended.
    """
    check_env(env)
    # Two fold_ins rather than one split: a deterministic environment ignores
    # key_step, and XLA then drops its hash altogether.
    key_step, key_reset = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    next_state, transition = advance(env, params, key_step, state, action)
    fresh = env.initial(key_reset, params)
    ended = transition.episode_ended
    next_env_state = jax.tree.map(lambda new, old: jnp.where(ended, new, old), fresh, next_state.env_state)
    return next_state._replace(env_state=next_env_state), transition


Policy = Callable[[PRNGKeyArray, Array], Array]
"""``policy_fn(key, obs) -> action`` on one unbatched observation."""


def rollout(
    env: Environment,
    params: Any,
    policy_fn: Policy,
    key: PRNGKeyArray,
    state: RolloutState,
    num_steps: int,
) -> tuple[RolloutState, Transition]:
    """``num_steps`` steps of ``policy_fn`` with auto-reset, as one ``lax.scan``.

    Returns the final rollout state (to continue from) and the transitions
    stacked along a leading time axis: every field has shape [T, ...].
    All keys are split off ``key`` up front, in one call: a policy key and an
    environment key for every step.
    """
    check_env(env)
    checks.check_positive_int("num_steps", num_steps)

    def one_step(state, keys):
        key_policy, key_env = keys
        action = policy_fn(key_policy, observe(env, params, state))
        return step(env, params, key_env, state, action)

    return jax.lax.scan(one_step, state, jax.random.split(key, (num_steps, 2)))


def first_episode_mask(transitions: Transition) -> Bool[Array, "H"]:
    """valid_t = no episode ended before step t: the first episode, its last step included.

    One unbatched run of H steps from a reset (vmap for N). REINFORCE learns from it
    and :mod:`rlbook_lib.evaluation` scores it.
    """
    ended = transitions.episode_ended.astype(jnp.int32)
    return (jnp.cumsum(ended) - ended) == 0


def episode_statistics(transitions: Transition) -> EpisodeStatistics:
    """Count, mean return and mean length of the episodes that ended in ``transitions``.

    mean_return = Σ_t 1[ended_t] G_t / Σ_t 1[ended_t], over all axes (time, and
    environments if vmapped), NaN when no episode has ended.
    """
    ended = transitions.episode_ended
    count = jnp.sum(ended, dtype=jnp.int32)
    total_return = jnp.sum(jnp.where(ended, transitions.episode_return, 0.0))
    total_length = jnp.sum(jnp.where(ended, transitions.episode_length, 0))
    safe = jnp.maximum(count, 1)
    return EpisodeStatistics(
        count=count,
        mean_return=jnp.where(count > 0, total_return / safe, jnp.nan),
        mean_length=jnp.where(count > 0, total_length / safe, jnp.nan).astype(jnp.float32),
    )


def mean_finished_return(transitions: Transition) -> Float[Array, ""]:
    """Mean undiscounted return of the finished episodes only; NaN if none finished."""
    return episode_statistics(transitions).mean_return
