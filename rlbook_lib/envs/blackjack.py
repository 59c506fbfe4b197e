"""Blackjack-v1 with ``sab=True``: Sutton & Barto's Example 5.1, as gymnasium plays it.

The player and the dealer draw from an infinite deck (with replacement): each
card is 1 (ace), 2, ..., 9 with probability 1/13 and 10 (ten, jack, queen,
king) with probability 4/13. An ace counts 11 if that does not take the hand
over 21 (a *usable* ace) and 1 otherwise. The deal gives the dealer a face-up
card and a hidden one, and the player two cards. The player hits (draws a card)
until she sticks or goes over 21 (busts: reward −1). When she sticks, the
dealer reveals the hidden card and hits while his sum is below 17
(``params.dealer_stick``; a usable ace counts 11 for him too, so he stands on
a soft 17); then whoever is closer to 21 wins (+1 / −1; a dealer
who busts loses), and equal sums draw (0). A *natural* (ace and ten-card as the
first two cards) wins +1 unless the dealer holds one too (a draw); it is not
paid extra (``params.natural_reward`` = 1). Every reward before the last is
0, so with S&B's γ = 1 the return is the last reward. Actions: 0 = stick, 1 = hit.

**Observation** o = (player sum, dealer's showing card, usable ace), an int32
array of shape [3] in ``MultiDiscrete([32, 11, 2])``: the bounds of
gymnasium's ``Tuple(Discrete(32), Discrete(11), Discrete(2))``, as one array.
The state behind it also holds the hidden card, whether the hand is a natural,
and, once the player has stuck, the dealer's final sum.

**State index.** Only 200 states need a decision (S&B): player sum 12–21 ×
dealer card 1–10 × usable ace. :func:`state_index` numbers them

    index = 100 · usable_ace + 10 · (player_sum − 12) + (dealer_card − 1)  ∈ [0, 200),

so ``values[:200].reshape(2, 10, 10)[usable_ace, player_sum - 12, dealer_card - 1]``
is the layout of S&B's Fig. 5.1 and 5.2. Sums 4–11 are states too (never with a
usable ace), but trivially hit: a hit cannot bust them, and sticking on 11 or
less wins no more often than on 16 (only a dealer's bust), so hitting is never
worse; they get the indices 200 + 10 · (player_sum − 4) + (dealer_card − 1) ∈
[200, 280). Every bust observation (sum 22–31, terminal) gets ``BUST_INDEX`` =
280. With ``Blackjack(index_observations=True)`` the observation is this index,
in ``Discrete(281)``, so tabular code such as :func:`rlbook_lib.mc.run_control`
runs on Blackjack as it is (a Q table of shape [281, 2]).

**Cards and keys.** ``initial`` deals ``draw_cards(key, 4)``: the dealer's
showing card, his hidden card, then the player's two, gymnasium's order. Every
``transition`` draws ``draw_cards(key, MAX_DEALER_CARDS)``: a hit takes the
first card, a stick gives the dealer as many of them, in order, as he needs.
The card-level pure functions :func:`deal`, :func:`hit` and :func:`stick`
take the cards themselves, for hand-made examples and tests.

**Starting anywhere.** :meth:`Blackjack.initial_from` starts an episode in a
given (player sum, dealer card, usable ace), with the hidden card drawn at
random: exploring starts, and the state of S&B's Example 5.4 (13, 2, 1). The
hand is taken to be two cards, so (21, d, 1) is a natural.

No time limit (gymnasium registers none): an episode lasts at most
``LONGEST_EPISODE`` = 20 steps (from A, A, nineteen hits of an ace reach 21).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from rlbook_lib import mdp as mdp_lib
from rlbook_lib.envs.base import Environment

STICK, HIT = 0, 1
MAX_DEALER_CARDS = 18
"""Most cards a dealer who sticks at 21 can need (an exhaustive search over hands
in the tests finds 18; at 17, 10 suffice)."""
LONGEST_EPISODE = 20
"""Most steps in an episode: from A, A (sum 2 counting aces as 1) at most 19 hits stay at 21 or below."""
NUM_STATES = 200
"""States with a decision worth learning: player sum 12–21 × dealer card 1–10 × usable ace."""
NUM_INDICES = 281
"""Range of :func:`state_index`: the 200 states, 80 states with sum 4–11, one bust index."""
BUST_INDEX = 280
"""The index of every bust observation (terminal)."""


class BlackjackState(NamedTuple):
    player_total: Int[Array, ""]
    """Sum of the player's cards, every ace counted as 1."""
    player_ace: Bool[Array, ""]
    """Whether the player holds an ace."""
    natural: Bool[Array, ""]
    """Whether the player's hand is exactly an ace and a ten-card (dealt, never hit)."""
    dealer_card: Int[Array, ""]
    """The dealer's showing card, 1 (ace) to 10."""
    dealer_hidden: Int[Array, ""]
    """The dealer's face-down card."""
    stuck: Bool[Array, ""]
    """Whether the player has stuck (and the dealer has played)."""
    dealer_sum: Int[Array, ""]
    """The dealer's final sum once the player has stuck (may exceed 21); 0 before."""


@struct.dataclass
class BlackjackParams:
    dealer_stick: Int[Array, ""] | int = 17
    """The dealer hits while his sum is below this (an integer from 1 to 21)."""
    natural_reward: Float[Array, ""] | float = 1.0
    """Reward of a natural against a dealer without one (S&B and ``sab=True``: 1)."""


def check_params(params: BlackjackParams) -> None:
    """Raise ``ValueError`` unless ``params`` are valid; traced params are not checked."""
    if not isinstance(params, BlackjackParams):
        raise ValueError(f"params must be a BlackjackParams, got {type(params)!r}")
    if mdp_lib.is_traced(params):
        return
    stick = float(params.dealer_stick)
    if stick != int(stick) or not 1 <= stick <= 21:
        raise ValueError(f"params.dealer_stick must be an integer from 1 to 21, got {params.dealer_stick!r}")
    if not math.isfinite(float(params.natural_reward)):
        raise ValueError(f"params.natural_reward must be finite, got {params.natural_reward!r}")


def draw_cards(key: PRNGKeyArray, n: int) -> Int[Array, "n"]:
    """n cards from the infinite deck: 1–9 with probability 1/13 each, 10 with 4/13."""
    return jnp.minimum(jax.random.randint(key, (n,), 1, 14), 10)


def usable(total: Int[Array, "*B"], ace: Bool[Array, "*B"]) -> Bool[Array, "*B"]:
    """A hand has a usable ace if it holds one and counting it as 11 stays at 21 or below."""
    return ace & (total + 10 <= 21)


def hand_value(total: Int[Array, "*B"], ace: Bool[Array, "*B"]) -> Int[Array, "*B"]:
    """The sum of a hand: ``total`` (aces as 1), plus 10 for a usable ace."""
    return total + 10 * usable(total, ace)


def _is_natural(a: Int[Array, ""], b: Int[Array, ""]) -> Bool[Array, ""]:
    return ((a == 1) & (b == 10)) | ((a == 10) & (b == 1))


def deal(cards: Int[Array, "4"]) -> BlackjackState:
    """The state after dealing ``cards`` = (dealer showing, dealer hidden, player, player)."""
    cards = jnp.asarray(cards, jnp.int32)
    no = jnp.zeros((), bool)
    return BlackjackState(
        player_total=cards[2] + cards[3], player_ace=(cards[2] == 1) | (cards[3] == 1),
        natural=_is_natural(cards[2], cards[3]), dealer_card=cards[0], dealer_hidden=cards[1],
        stuck=no, dealer_sum=jnp.int32(0))


def hit(state: BlackjackState, card: Int[Array, ""]) -> BlackjackState:
    """The player draws ``card``; the hand is no longer a natural."""
    return state._replace(player_total=state.player_total + card,
                          player_ace=state.player_ace | (card == 1), natural=jnp.zeros((), bool))


def dealer_play(showing: Int[Array, ""], hidden: Int[Array, ""], cards: Int[Array, "K"],
                dealer_stick) -> tuple[Int[Array, ""], Int[Array, ""]]:
    """The dealer draws ``cards`` in order while his sum is below ``dealer_stick``.

    Returns (final sum, number of cards drawn). With k cards drawn his total is
    showing + hidden + cards[0] + ... + cards[k−1]; he stops at the first k whose
    :func:`hand_value` reaches ``dealer_stick``. Precondition: K is large enough
    (``MAX_DEALER_CARDS`` is, for any ``dealer_stick`` ≤ 21).
    """
    drawn = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(cards)])  # [K+1]
    aces = jnp.concatenate([jnp.zeros(1, bool), jnp.cumsum(cards == 1) > 0])
    values = hand_value(showing + hidden + drawn, aces | (showing == 1) | (hidden == 1))
    k = jnp.argmax(values >= dealer_stick)
    return values[k], k


def stick(state: BlackjackState, cards: Int[Array, "K"], params: BlackjackParams) -> BlackjackState:
    """The player sticks; the dealer plays with ``cards`` (see :func:`dealer_play`)."""
    dealer_sum, _ = dealer_play(state.dealer_card, state.dealer_hidden, cards, params.dealer_stick)
    return state._replace(stuck=jnp.ones((), bool), dealer_sum=dealer_sum)


def state_index(observation: Int[Array, "*B 3"]) -> Int[Array, "*B"]:
    """The index of an observation (player sum, dealer card, usable ace); see the module docstring.

    0–199: 100 · usable + 10 · (sum − 12) + (dealer − 1) for sums 12–21;
    200–279: 200 + 10 · (sum − 4) + (dealer − 1) for sums 4–11; 280 for any bust.
    """
    observation = jnp.asarray(observation)
    player, dealer, ace = observation[..., 0], observation[..., 1], observation[..., 2]
    decision = 100 * ace + 10 * (player - 12) + dealer - 1
    low = NUM_STATES + 10 * (player - 4) + dealer - 1
    return jnp.where(player > 21, BUST_INDEX, jnp.where(player >= 12, decision, low)).astype(jnp.int32)


def index_observation(index: Int[Array, "*B"]) -> Int[Array, "*B 3"]:
    """The observation (player sum, dealer card, usable ace) of an index in [0, 280).

    The inverse of :func:`state_index` there (the bust index stands for many
    observations). ``ValueError`` for a concrete index outside [0, 280).
    """
    if not mdp_lib.is_traced(index):
        if np.any((np.asarray(index) < 0) | (np.asarray(index) >= BUST_INDEX)):
            raise ValueError(f"index must lie in [0, {BUST_INDEX}), got {index!r}")
    index = jnp.asarray(index, jnp.int32)
    low = index >= NUM_STATES
    rest = jnp.where(low, index - NUM_STATES, index % 100)
    player = jnp.where(low, 4, 12) + rest // 10
    ace = jnp.where(low, 0, index // 100)
    return jnp.stack([player, rest % 10 + 1, ace], axis=-1)


def _check_start(observation) -> None:
    if mdp_lib.is_traced(observation):
        return
    if np.shape(observation) != (3,):
        raise ValueError(f"observation must be (player_sum, dealer_card, usable_ace), got {observation!r}")
    player, dealer, ace = np.asarray(observation).tolist()  # numpy: no tracing under jit
    lowest = 12 if ace else 4
    if ace not in (0, 1) or not 1 <= dealer <= 10 or not lowest <= player <= 21:
        raise ValueError(
            "observation must have usable_ace 0 or 1, dealer_card 1-10 and player_sum "
            f"4-21 (12-21 with a usable ace), got {(player, dealer, ace)}")


@dataclasses.dataclass(frozen=True)
class Blackjack(Environment[BlackjackState, BlackjackParams]):
    """Blackjack-v1 with ``sab=True`` (see the module docstring).

    Example::

        env = Blackjack()
        params = env.default_params()
        state = env.initial_from(jax.random.key(0), params, (13, 2, 1))  # S&B Example 5.4
        step = env.step(jax.random.key(1), state, jnp.int32(blackjack.HIT), params)
        blackjack.state_index(step.observation)   # an int in [0, 281)
    """

    index_observations: bool = False
    """Observe :func:`state_index` of the observation (``Discrete(281)``) instead of
    the triple (``MultiDiscrete([32, 11, 2])``). The dynamics are the same."""

    max_episode_steps: ClassVar[int | None] = None

    def __post_init__(self):
        if not isinstance(self.index_observations, bool):
            raise ValueError(f"index_observations must be a bool, got {self.index_observations!r}")

    def default_params(self) -> BlackjackParams:
        return BlackjackParams()

    def initial(self, key: PRNGKeyArray, params: BlackjackParams) -> BlackjackState:
        """Deal ``draw_cards(key, 4)``: dealer showing, dealer hidden, player, player."""
        check_params(params)
        return deal(draw_cards(key, 4))

    def initial_from(self, key: PRNGKeyArray, params: BlackjackParams,
                     observation: Int[ArrayLike, "3"]) -> BlackjackState:
        """Start in ``observation`` = (player sum, dealer card, usable ace).

        The dealer's hidden card is ``draw_cards(key, 1)[0]``. The player's hand
        is taken to be an ace and a (sum − 11) when the ace is usable, so
        (21, d, 1) is a natural and no other start is; without a usable ace the
        hand holds no ace. Player sums
        4–21 are allowed, 12–21 with a usable ace; concrete arguments are
        checked (``ValueError``), traced ones are a precondition.
        """
        check_params(params)
        _check_start(observation)
        player, dealer, ace = (x.astype(jnp.int32) for x in jnp.asarray(observation))
        state = deal(jnp.stack([dealer, draw_cards(key, 1)[0], jnp.int32(0), jnp.int32(0)]))
        return state._replace(player_total=player - 10 * ace, player_ace=ace == 1,
                              natural=(player == 21) & (ace == 1))

    def transition(self, state: BlackjackState, action: Int[Array, ""], key: PRNGKeyArray,
                   params: BlackjackParams) -> BlackjackState:
        """Hit (action 1) or stick (action 0) with ``draw_cards(key, MAX_DEALER_CARDS)``.

        A terminal state is absorbing. Precondition: ``action`` is 0 or 1.
        """
        cards = draw_cards(key, MAX_DEALER_CARDS)
        after = jax.tree.map(lambda h, s: jnp.where(action == HIT, h, s),
                             hit(state, cards[0]), stick(state, cards, params))
        done = self.terminal(state, params)
        return jax.tree.map(lambda old, new: jnp.where(done, old, new), state, after)

    def observation(self, state: BlackjackState, params: BlackjackParams) -> Int[Array, "..."]:
        """(player sum, dealer card, usable ace), or its :func:`state_index`."""
        triple = jnp.stack([hand_value(state.player_total, state.player_ace), state.dealer_card,
                            usable(state.player_total, state.player_ace).astype(jnp.int32)])
        return state_index(triple) if self.index_observations else triple.astype(jnp.int32)

    def reward(self, state: BlackjackState, action: Int[Array, ""], next_state: BlackjackState,
               params: BlackjackParams) -> Float[Array, ""]:
        """−1 for a bust; on sticking sign(score − dealer's score) (a bust scores 0),
        or ``natural_reward`` for a natural against a dealer without one; else 0."""
        s = next_state
        player = hand_value(s.player_total, s.player_ace)
        score = lambda v: jnp.where(v > 21, 0, v)  # noqa: E731
        outcome = jnp.sign(score(player) - score(s.dealer_sum)).astype(jnp.float32)
        natural_wins = s.natural & ~_is_natural(s.dealer_card, s.dealer_hidden)
        outcome = jnp.where(natural_wins, params.natural_reward, outcome)
        reward = jnp.where(s.player_total > 21, -1.0, jnp.where(s.stuck, outcome, 0.0))
        return jnp.where(self.terminal(state, params), 0.0, reward).astype(jnp.float32)

    def terminal(self, state: BlackjackState, params: BlackjackParams) -> Bool[Array, ""]:
        """The episode ends when the player busts or sticks."""
        return state.stuck | (state.player_total > 21)

    def observation_space(self, params: BlackjackParams) -> gymnasium.Space:
        check_params(params)
        if self.index_observations:
            return gymnasium.spaces.Discrete(NUM_INDICES)
        return gymnasium.spaces.MultiDiscrete([32, 11, 2])

    def action_space(self, params: BlackjackParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(2)
