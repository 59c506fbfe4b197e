r"""The exact model of :mod:`rlbook_lib.envs.blackjack`, for dynamic programming.

Monte Carlo methods learn Blackjack from played hands; dynamic programming
needs p(s', r | s, a), which S&B call "complex and error-prone" to compute
(§5.1). With an infinite deck it is short enough to write out, and it gives the
exact q_* against which Monte Carlo control can be checked.

**States** are the indices of :func:`~rlbook_lib.envs.blackjack.state_index`
(0–199: player sum 12–21 × dealer card 1–10 × usable ace; 200–279: sums 4–11;
280: bust), plus ``STUCK`` = 281, the terminal state after sticking. The index
is Markov: a hand with sum 4–11 never holds an ace (it would be usable), and an
ace that is not usable in a hand of 12 or more can never become usable again.

**Hit** from (p, d, u) draws c (1–9 with probability 1/13 each, 10 with 4/13):
the total counting aces as 1 becomes p − 10u + c; above 21 the player busts
(reward −1, state 280), otherwise the new sum counts an ace as 11 if that
stays at 21 or below. **Stick** ends the game (state 281) with the expected
outcome against the dealer's final sum F, whose distribution given the
showing card is :func:`dealer_final_distribution`:

.. math:: r(s, \text{stick}) = \Pr(F > 21 \text{ or } F < p) - \Pr(p < F \le 21).

**The one exception: naturals.** The state (21, d, 1) is reached both by a
natural (dealt ace and ten-card, which wins unless the dealer holds one too)
and by hitting (which draws when the dealer reaches 21). The index cannot tell
them apart, so the model values (21, d, 1) as a hit-to hand. The optimal
action there is to stick either way.
"""

from __future__ import annotations

import functools

import numpy as np

from rlbook_lib import mdp as mdp_lib
from rlbook_lib.envs import blackjack
from rlbook_lib.envs.blackjack import BUST_INDEX, HIT, STICK

STUCK = BUST_INDEX + 1
"""The terminal state after sticking (281)."""
NUM_MODEL_STATES = STUCK + 1
"""The 281 indices of :func:`~rlbook_lib.envs.blackjack.state_index` and ``STUCK``."""
CARD_PROBABILITIES = np.array([0.0] + [1 / 13] * 9 + [4 / 13])
"""Pr(card = c) for c = 0, ..., 10 (index 0 unused): the infinite deck."""


def _value(total: int, ace: bool) -> int:
    """The hand's sum: ``total`` (aces as 1), plus 10 if an ace is usable."""
    return total + 10 if ace and total + 10 <= 21 else total


@functools.cache
def _dealer_from(total: int, ace: bool, dealer_stick: int) -> tuple:
    """Pr(final sum = f), f = 0..31, from a dealer hand (``total`` with aces as 1)."""
    out = np.zeros(32)
    if _value(total, ace) >= dealer_stick:
        out[_value(total, ace)] = 1.0
        return tuple(out)
    for card in range(1, 11):
        out += CARD_PROBABILITIES[card] * np.array(_dealer_from(total + card, ace or card == 1, dealer_stick))
    return tuple(out)


def dealer_final_distribution(showing: int, dealer_stick: int = 17) -> np.ndarray:
    """Pr(the dealer's final sum = f | showing card), f = 0..31 (above 21: bust).

    The hidden card is drawn from the deck; the dealer hits while his sum is
    below ``dealer_stick``.
    """
    if not 1 <= showing <= 10:
        raise ValueError(f"showing must be a card 1-10, got {showing!r}")
    return sum(CARD_PROBABILITIES[h] * np.array(_dealer_from(showing + h, showing == 1 or h == 1, dealer_stick))
               for h in range(1, 11))


def stick_reward(player_sum: int, showing: int, dealer_stick: int = 17) -> float:
    """E[reward | stick with ``player_sum`` against ``showing``], a non-natural hand."""
    final = dealer_final_distribution(showing, dealer_stick)
    f = np.arange(32)
    win = final[(f > 21) | (f < player_sum)].sum()
    lose = final[(f > player_sum) & (f <= 21)].sum()
    return float(win - lose)


def _after_hit(player_sum: np.ndarray, usable_ace: np.ndarray, card: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum, usable ace) after hitting ``card`` from (player_sum, usable_ace); a sum above 21 is a bust."""
    total = player_sum - 10 * usable_ace + card  # aces as 1
    usable = ((usable_ace == 1) | (card == 1)) & (total + 10 <= 21)
    return total + 10 * usable, usable.astype(np.int32)


def _index(player_sum, dealer_card, usable_ace) -> np.ndarray:
    """:func:`~rlbook_lib.envs.blackjack.state_index` of arrays (bust above 21)."""
    return np.asarray(blackjack.state_index(np.stack([player_sum, dealer_card, usable_ace], axis=-1)))


def _deal_distribution() -> np.ndarray:
    """p_0 over indices: the player's two cards and the dealer's showing card."""
    a, b, d = (x.ravel() for x in np.meshgrid(*[np.arange(1, 11)] * 3, indexing="ij"))
    ace = (a == 1) | (b == 1)
    usable = (ace & (a + b + 10 <= 21)).astype(np.int32)
    weight = CARD_PROBABILITIES[a] * CARD_PROBABILITIES[b] * CARD_PROBABILITIES[d]
    return np.bincount(_index(a + b + 10 * usable, d, usable), weight, minlength=NUM_MODEL_STATES)


def to_mdp(params: blackjack.BlackjackParams | None = None) -> mdp_lib.MDP:
    """Blackjack as a tabular MDP over ``NUM_MODEL_STATES`` states, γ = 1 (see the module docstring).

    Actions 0 = stick, 1 = hit; the bust index and ``STUCK`` are terminal.
    Only ``params.dealer_stick`` enters (naturals are not modelled).
    """
    params = blackjack.BlackjackParams() if params is None else params
    if mdp_lib.is_traced(params):
        raise ValueError("params must be concrete (not traced) to build the tabular model")
    blackjack.check_params(params)
    S, states = NUM_MODEL_STATES, np.arange(BUST_INDEX)
    player, dealer, usable = np.asarray(blackjack.index_observation(states)).T
    P, R = np.zeros((S, 2, S)), np.zeros((S, 2))
    P[BUST_INDEX, :, BUST_INDEX] = P[STUCK, :, STUCK] = 1.0
    P[states, STICK, STUCK] = 1.0
    R[states, STICK] = [stick_reward(p, d, int(params.dealer_stick)) for p, d in zip(player, dealer)]
    for card in range(1, 11):
        after, after_usable = _after_hit(player, usable, card)
        np.add.at(P, (states, HIT, _index(after, dealer, after_usable)), CARD_PROBABILITIES[card])
        R[states, HIT] -= CARD_PROBABILITIES[card] * (after > 21)
    terminal = np.isin(np.arange(S), [BUST_INDEX, STUCK])
    return mdp_lib.make_mdp(P, R, 1.0, initial=_deal_distribution(), terminal=terminal)
