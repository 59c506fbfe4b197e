r"""A slot-filling dialogue manager as an MDP, with an agenda-based simulated user.

A user wants to book a table: a day, a time and a number of people (the *slots*).
The user's goal, one value per slot, is hidden from the system. Each turn the
system (the agent) picks one dialogue act; the simulated user answers, and a noisy
speech recogniser passes the answer on (after Schatzmann et al., 2007):

=====================  ==============================================================
system act (action)    user's answer
=====================  ==============================================================
``request(i)``, 0..2   informs slot i (the truth); with prob. ``p_volunteer`` also the
                       next slot still on its agenda (an empty one)
``confirm(i)``, 3..5   "yes" if the system's value is right (the slot is confirmed);
                       "no, it's v" with the right value if wrong (heard again);
                       nothing new if the slot is still empty
``book``, 6            the system books what it has: success iff every slot is right
=====================  ==============================================================

**Noise.** A value is heard with high confidence with probability ``p_high`` and is
then wrong with probability ``error_high``; otherwise it is heard with low
confidence and is wrong with probability ``error_low``. A wrong value is uniform
over the other values.

**What the system sees** (the observation, a Box of 4·3 + 1 numbers in [0, 1]):
for each slot a one-hot status, empty / heard with low confidence / heard with high
confidence / confirmed, and the fraction of the user's patience used. Whether a
heard value is right is hidden: the system's belief is all it has.

**Reward** ``success_reward`` · 1[booked and every slot right] − ``turn_cost`` per
turn. **The episode ends** (terminated) when the system books, right or wrong, or
when the user abandons after ``patience`` turns.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib.envs.base import Environment

SLOTS = ("day", "time", "people")
VALUES = (
    ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    ("12:00", "13:00", "18:00", "19:00", "20:00", "21:00"),
    ("1", "2", "3", "4", "5", "6"),
)
NUM_SLOTS = len(SLOTS)
EMPTY, LOW, HIGH, CONFIRMED = 0, 1, 2, 3
NUM_STATUSES = 4
BOOK = 2 * NUM_SLOTS
NUM_ACTIONS = 2 * NUM_SLOTS + 1


def act_name(action: int) -> str:
    """``request(day)``, ``confirm(time)``, ``book``, ... for an action index."""
    action = int(action)
    if action == BOOK:
        return "book"
    kind = "request" if action < NUM_SLOTS else "confirm"
    return f"{kind}({SLOTS[action % NUM_SLOTS]})"


class DialogueState(NamedTuple):
    goal: Int[Array, "N"]
    """The user's hidden goal, a value index per slot."""
    heard: Int[Array, "N"]
    """The value the system holds for each slot (-1 if none yet)."""
    status: Int[Array, "N"]
    """EMPTY, LOW, HIGH or CONFIRMED per slot (what the system knows of its own belief)."""
    turn: Int[Array, ""]
    """Turns taken so far."""
    booked: Bool[Array, ""]
    """The system has booked (the episode is over)."""


@struct.dataclass
class DialogueParams:
    p_high: Float[Array, ""] | float = 0.6
    """Probability that a value is heard with high confidence."""
    error_high: Float[Array, ""] | float = 0.03
    """Probability that a high-confidence value is wrong."""
    error_low: Float[Array, ""] | float = 0.5
    """Probability that a low-confidence value is wrong."""
    p_volunteer: Float[Array, ""] | float = 0.3
    """Probability that the user adds the next empty slot of its agenda to an answer."""
    success_reward: Float[Array, ""] | float = 20.0
    """Reward for booking with every slot right."""
    turn_cost: Float[Array, ""] | float = 1.0
    """Cost of every turn (paid as reward −turn_cost)."""
    patience: Int[Array, ""] | int = 10
    """Turns after which the user hangs up."""


def _hear(key: PRNGKeyArray, goal: Int[Array, "N"], params: DialogueParams):
    """A noisy hearing of every slot's true value: (heard values, statuses)."""
    key_conf, key_err, key_wrong = jax.random.split(key, 3)
    high = jax.random.uniform(key_conf, goal.shape) < params.p_high
    error = jax.random.uniform(key_err, goal.shape) < jnp.where(high, params.error_high, params.error_low)
    sizes = jnp.array([len(v) for v in VALUES])
    shift = 1 + jnp.floor(jax.random.uniform(key_wrong, goal.shape) * (sizes - 1)).astype(jnp.int32)
    heard = jnp.where(error, (goal + shift) % sizes, goal)
    return heard, jnp.where(high, HIGH, LOW)


@dataclasses.dataclass(frozen=True)
class Dialogue(Environment[DialogueState, DialogueParams]):
    """The booking dialogue (see the module docstring)."""

    max_episode_steps: ClassVar[int | None] = 30
    """Above the default patience, so that the user, not the clock, ends an episode."""

    def default_params(self) -> DialogueParams:
        return DialogueParams()

    def initial(self, key: PRNGKeyArray, params: DialogueParams) -> DialogueState:
        """A new user with a uniformly drawn goal; the system knows nothing yet."""
        keys = jax.random.split(key, NUM_SLOTS)
        goal = jnp.stack([jax.random.randint(k, (), 0, len(v)) for k, v in zip(keys, VALUES)])
        empty = jnp.full((NUM_SLOTS,), -1, jnp.int32)
        return DialogueState(goal.astype(jnp.int32), empty, jnp.zeros(NUM_SLOTS, jnp.int32), jnp.int32(0),
                             jnp.bool_(False))

    def transition(self, state: DialogueState, action: Int[Array, ""], key: PRNGKeyArray,
                   params: DialogueParams) -> DialogueState:
        """The user's answer to ``action``, as the system hears it."""
        key_hear, key_volunteer = jax.random.split(key)
        heard, status = _hear(key_hear, state.goal, params)
        slots = jnp.arange(NUM_SLOTS)
        slot = action % NUM_SLOTS
        is_request, is_confirm = action < NUM_SLOTS, (action >= NUM_SLOTS) & (action < BOOK)
        filled = state.status != EMPTY
        right = state.heard == state.goal
        # The agenda: the first empty slot other than the one asked for, volunteered sometimes.
        pending = (~filled) & (slots != slot)
        extra = jnp.argmax(pending)
        volunteer = is_request & jnp.any(pending) & (jax.random.uniform(key_volunteer) < params.p_volunteer)
        informed = (is_request & (slots == slot)) | (volunteer & (slots == extra))
        corrected = is_confirm & (slots == slot) & filled & ~right
        confirmed = is_confirm & (slots == slot) & filled & right
        new_heard = jnp.where(informed | corrected, heard, state.heard)
        new_status = jnp.where(informed | corrected, status, jnp.where(confirmed, CONFIRMED, state.status))
        return DialogueState(state.goal, new_heard, new_status, state.turn + 1, state.booked | (action == BOOK))

    def observation(self, state: DialogueState, params: DialogueParams) -> Float[Array, "13"]:
        """One-hot status of each slot, then turn / patience (clipped to 1)."""
        onehot = jax.nn.one_hot(state.status, NUM_STATUSES, dtype=jnp.float32).reshape(-1)
        used = jnp.clip(state.turn / params.patience, 0.0, 1.0).astype(jnp.float32)
        return jnp.concatenate([onehot, used[None]])

    def reward(self, state: DialogueState, action: Int[Array, ""], next_state: DialogueState,
               params: DialogueParams) -> Float[Array, ""]:
        """success_reward · 1[book with every slot right] − turn_cost."""
        success = (action == BOOK) & jnp.all(state.heard == state.goal)
        return jnp.where(success, params.success_reward, 0.0) - params.turn_cost

    def terminal(self, state: DialogueState, params: DialogueParams) -> Bool[Array, ""]:
        """Booked, or the user has run out of patience (abandoned)."""
        return state.booked | (state.turn >= params.patience)

    def observation_space(self, params: DialogueParams) -> gymnasium.Space:
        return gymnasium.spaces.Box(0.0, 1.0, (NUM_SLOTS * NUM_STATUSES + 1,), np.float32)

    def action_space(self, params: DialogueParams) -> gymnasium.Space:
        return gymnasium.spaces.Discrete(NUM_ACTIONS)


def rule_policy(key: PRNGKeyArray, obs: Float[Array, "13"]) -> Int[Array, ""]:
    """A handcrafted dialogue manager: request the first empty slot, confirm the first
    unconfirmed one, and book once all are confirmed (``rollout.Policy`` signature)."""
    status = jnp.argmax(obs[: NUM_SLOTS * NUM_STATUSES].reshape(NUM_SLOTS, NUM_STATUSES), axis=-1)
    empty, unconfirmed = status == EMPTY, status != CONFIRMED
    return jnp.where(jnp.any(empty), jnp.argmax(empty),
                     jnp.where(jnp.any(unconfirmed), NUM_SLOTS + jnp.argmax(unconfirmed), BOOK))


def success(episode_return, episode_length, params: DialogueParams):
    """Whether a finished dialogue booked correctly: its return is success_reward − turn_cost · length."""
    return episode_return + params.turn_cost * episode_length > 0.5 * params.success_reward


def _play(env: Dialogue, params: DialogueParams, policy, key: PRNGKeyArray):
    key_init, key_run = jax.random.split(key)
    first = env.initial(key_init, params)

    def step(carry, key):
        state, done = carry
        key_act, key_env = jax.random.split(key)
        action = policy(key_act, env.observation(state, params))
        after = env.step(key_env, state, action, params).next_state
        after = jax.tree.map(lambda old, new: jnp.where(done, old, new), state, after)  # frozen once over
        return (after, done | env.terminal(after, params)), (after, action, done)

    keys = jax.random.split(key_run, env.max_episode_steps)
    _, (states, actions, over) = jax.lax.scan(step, (first, env.terminal(first, params)), keys)
    return first, states, actions, jnp.sum(~over)


_play_jit = jax.jit(_play, static_argnums=(0, 2))


def play(env: Dialogue, params: DialogueParams, policy, key: PRNGKeyArray) -> tuple[list, list[int]]:
    """One dialogue of ``policy(key, obs) -> action``: (states s_0, ..., s_T, actions a_0, ..., a_{T-1}).

    One compiled ``lax.scan`` of ``env.max_episode_steps`` turns, cut at the episode's end.
    """
    first, states, actions, length = _play_jit(env, params, policy, key)
    length = int(length)
    return ([first] + [jax.tree.map(lambda x: x[t], states) for t in range(length)],
            [int(a) for a in actions[:length]])


def transcript(states: list[DialogueState], actions: list[int], params: DialogueParams) -> list[str]:
    """Readable lines for a dialogue: the system's act and what the user said and the system heard."""
    lines = []
    for before, action, after in zip(states[:-1], actions, states[1:]):
        lines.append(f"system: {act_name(action)}")
        said = []
        for i in range(NUM_SLOTS):
            if int(after.heard[i]) != int(before.heard[i]) or (int(after.status[i]) != int(before.status[i])):
                truth, got = VALUES[i][int(after.goal[i])], VALUES[i][int(after.heard[i])]
                if int(after.status[i]) == CONFIRMED:
                    said.append(f"yes, {truth}")
                else:
                    conf = "high" if int(after.status[i]) == HIGH else "low"
                    lead = "no, it is" if NUM_SLOTS <= action < BOOK else SLOTS[i]  # a correction
                    said.append(f"{lead} {truth} (heard {got}, {conf} confidence)")
        if action == BOOK:
            right = all(int(before.heard[i]) == int(before.goal[i]) for i in range(NUM_SLOTS))
            said.append("booked, thank you!" if right else "that is not what I asked for")
        elif int(after.turn) >= int(params.patience):
            said.append("(hangs up)")
        lines.append("  user: " + ("; ".join(said) if said else "(nothing new)"))
    return lines
