"""Blackjack against gymnasium's Blackjack-v1(sab=True) and against an exact calculation.

Three independent references:

* gymnasium's numpy environment, driven with OUR cards: its ``draw_card`` is
  patched to hand out the cards that ``blackjack.draw_cards`` drew from the
  same key, so both play the same hand step by step;
* gymnasium's environment with its own random generator, for frequencies;
* ``exact``: the rules written out as a plain-Python recursion over the cards
  (each 1–9 with probability 1/13, 10 with 4/13), which gives the exact
  outcome probabilities of a threshold policy.
"""

import functools
import itertools
import warnings

import gymnasium
import gymnasium.envs.toy_text.blackjack as gym_blackjack
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlbook_lib.envs import blackjack
from rlbook_lib.envs.blackjack import HIT, STICK
from rlbook_lib.envs.gym_adapter import GymnasiumEnv

ENV = blackjack.Blackjack()
PARAMS = ENV.default_params()
CARDS = [(c, (4 if c == 10 else 1) / 13) for c in range(1, 11)]
EXAMPLE_5_4 = -0.27726  # S&B Example 5.4, from 100 million episodes
EXAMPLE_5_4_START = (13, 2, 1)


# --- the exact reference ------------------------------------------------------


def value(total, ace):
    return total + 10 if ace and total + 10 <= 21 else total


@functools.cache
def dealer_final(total, ace, stick=17):
    """{dealer's final sum: probability} from a dealer hand (total with aces as 1, ace held)."""
    if value(total, ace) >= stick:
        return {value(total, ace): 1.0}
    out = {}
    for card, p in CARDS:
        for final, q in dealer_final(total + card, ace or card == 1, stick).items():
            out[final] = out.get(final, 0.0) + p * q
    return out


@functools.cache
def exact(total, ace, natural, showing, hidden, stick_at):
    """{reward: probability} of 'stick once the sum reaches stick_at, else hit' from this state."""
    if total > 21:
        return {-1.0: 1.0}
    out = {}
    if value(total, ace) >= stick_at:
        if natural and sorted((showing, hidden)) != [1, 10]:
            return {1.0: 1.0}
        for final, q in dealer_final(showing + hidden, 1 in (showing, hidden)).items():
            reward = float(np.sign(value(total, ace) - (0 if final > 21 else final)))
            out[reward] = out.get(reward, 0.0) + q
        return out
    for card, p in CARDS:
        for reward, q in exact(total + card, ace or card == 1, False, showing, hidden, stick_at).items():
            out[reward] = out.get(reward, 0.0) + p * q
    return out


def exact_from(deals, stick_at):
    """Mix ``exact`` over weighted deals (weight, total, ace, natural, showing, hidden)."""
    out = {-1.0: 0.0, 0.0: 0.0, 1.0: 0.0}
    for weight, *state in deals:
        for reward, q in exact(*state, stick_at).items():
            out[reward] += weight * q
    return out


def deals_from_the_shuffle():
    for (d, pd), (h, ph), (a, pa), (b, pb) in itertools.product(CARDS, repeat=4):
        yield pd * ph * pa * pb, a + b, 1 in (a, b), sorted((a, b)) == [1, 10], d, h


def deals_from(player_sum, dealer_card, usable_ace):
    total = player_sum - 10 * usable_ace
    natural = player_sum == 21 and usable_ace == 1
    for hidden, p in CARDS:
        yield p, total, bool(usable_ace), natural, dealer_card, hidden


# --- helpers --------------------------------------------------------------------


def threshold_policy(stick_at):
    return lambda obs: jnp.where(obs[0] >= stick_at, STICK, HIT)


def play(env, params, policy, key, state):
    """Run one episode from ``state`` to its end: (return, steps taken)."""

    def one(carry):
        state, ret, key, t = carry
        key, step_key = jax.random.split(key)
        result = env.step(step_key, state, policy(env.observation(state, params)), params)
        return result.next_state, ret + result.reward, key, t + 1

    def going(carry):
        return ~env.terminal(carry[0], params) & (carry[3] <= blackjack.LONGEST_EPISODE)

    _, ret, _, t = jax.lax.while_loop(going, one, (state, 0.0, key, 0))
    return ret, t


@pytest.fixture
def gym_cards(monkeypatch):
    """gymnasium's Blackjack drawing from a queue we fill: returns the queue."""
    queue = []
    monkeypatch.setattr(gym_blackjack, "draw_card", lambda np_random: queue.pop(0))
    return queue


# --- parity with gymnasium on the same cards -----------------------------------------


def test_step_parity_with_gymnasium_on_the_same_cards(gym_cards):
    num_episodes, T = 400, blackjack.LONGEST_EPISODE
    keys = jax.random.split(jax.random.key(0), (num_episodes, T + 1))
    actions = np.asarray(jax.random.bernoulli(jax.random.key(1), 0.6, (num_episodes, T)), np.int64)

    def episode(keys, actions):
        state = ENV.initial(keys[0], PARAMS)

        def one(state, x):
            key, action = x
            result = ENV.step(key, state, action, PARAMS)
            cards = blackjack.draw_cards(key, blackjack.MAX_DEALER_CARDS)  # what the step drew
            out = (cards, result.observation, result.reward, result.terminated, result.next_state.dealer_sum)
            return result.next_state, out

        first = (blackjack.draw_cards(keys[0], 4), ENV.observation(state, PARAMS))
        return first, jax.lax.scan(one, state, (keys[1:], actions))[1]

    (deal_cards, obs0), (step_cards, obs, rewards, terminated, dealer_sums) = jax.tree.map(
        np.asarray, jax.jit(jax.vmap(episode))(keys, jnp.asarray(actions)))
    gym_env = gymnasium.make("Blackjack-v1", sab=True).unwrapped
    naturals = 0
    for e in range(num_episodes):
        gym_cards[:] = deal_cards[e].tolist()
        gym_obs, _ = gym_env.reset(seed=e)
        assert gym_obs == tuple(obs0[e]) and not gym_cards, e
        naturals += gym_blackjack.is_natural(gym_env.player)
        for t in range(T):
            gym_cards[:] = step_cards[e, t].tolist()  # gymnasium fails if it needs more
            gym_obs, reward, done, _, _ = gym_env.step(int(actions[e, t]))
            assert (gym_obs, reward, done) == (tuple(obs[e, t]), rewards[e, t], terminated[e, t]), (e, t)
            if actions[e, t] == STICK:  # the dealer drew the same cards
                assert gym_blackjack.sum_hand(gym_env.dealer) == dealer_sums[e, t], (e, t)
            if done:
                assert np.all(terminated[e, t:]) and np.all(rewards[e, t + 1:] == 0)  # absorbing
                break
        assert done, e
    assert naturals > 0


@jax.jit
def card_step(state, action, cards):
    """One step with the card-level functions and the env's observation, reward and terminal."""
    nxt = jax.lax.cond(action == HIT, lambda: blackjack.hit(state, cards[0]),
                       lambda: blackjack.stick(state, cards, PARAMS))
    return nxt, (ENV.observation(nxt, PARAMS), ENV.reward(state, action, nxt, PARAMS), ENV.terminal(nxt, PARAMS))


def play_cards(deal_cards, actions, step_cards):
    """Play a hand on given cards; each step's cards are padded with tens (never used)."""
    state, out = blackjack.deal(jnp.asarray(deal_cards)), []
    for action, cards in zip(actions, step_cards):
        padded = jnp.asarray(cards + [10] * (blackjack.MAX_DEALER_CARDS - len(cards)), jnp.int32)
        state, (obs, reward, done) = card_step(state, jnp.int32(action), padded)
        out.append((tuple(np.asarray(obs).tolist()), float(reward), bool(done)))
    return out, int(state.dealer_sum)


HANDS = {
    # name: (dealer showing, hidden, player, player), actions, the cards each step uses, last reward
    "both naturals draw": ((10, 1, 1, 10), [STICK], [[]], 0.0),
    "a natural beats a three-card 21": ((10, 5, 10, 1), [STICK], [[6]], 1.0),
    "the dealer busts": ((10, 6, 10, 2), [STICK], [[10]], 1.0),
    "equal sums draw": ((10, 10, 10, 10), [STICK], [[]], 0.0),
    "the higher dealer wins": ((9, 10, 10, 8), [STICK], [[]], -1.0),
    "a usable ace turns unusable, then a bust": ((2, 3, 1, 6), [HIT, HIT], [[10], [9]], -1.0),
    "the dealer stands on a soft 17": ((1, 6, 10, 7), [STICK], [[]], 0.0),
    "the dealer draws past a soft 16": ((1, 5, 10, 9), [STICK], [[10, 3]], 0.0),
    "a natural that hits is no natural": ((10, 4, 1, 10), [HIT, STICK], [[10], [7]], 0.0),
}


@pytest.mark.parametrize("name", HANDS)
def test_hand_made_deals_match_gymnasium(name, gym_cards):
    deal_cards, actions, step_cards, last_reward = HANDS[name]
    gym_env = gymnasium.make("Blackjack-v1", sab=True).unwrapped
    gym_cards[:] = list(deal_cards)
    gym_env.reset(seed=0)
    expected = []
    for action, cards in zip(actions, step_cards):
        gym_cards[:] = list(cards)
        obs, reward, done, _, _ = gym_env.step(action)
        assert not gym_cards, "every card of the step is used"
        expected.append((obs, reward, done))
    ours, dealer_sum = play_cards(deal_cards, actions, step_cards)
    assert ours == expected
    assert dealer_sum == (gym_blackjack.sum_hand(gym_env.dealer) if STICK in actions else 0)
    assert expected[-1][1:] == (last_reward, True)


# --- distributions and the values of S&B ----------------------------------------------


def outcome_frequencies(rewards):
    rewards = np.asarray(rewards)
    return np.array([np.mean(rewards == r) for r in (-1.0, 0.0, 1.0)])


def test_outcome_frequencies_match_gymnasium_and_the_exact_values():
    # S&B's policy of Example 5.1: stick on 20 or 21.
    n_jax, n_gym = 50_000, 8_000
    keys = jax.random.split(jax.random.key(2), n_jax)

    def episode(key):
        k0, k1 = jax.random.split(key)
        return play(ENV, PARAMS, threshold_policy(20), k1, ENV.initial(k0, PARAMS))

    rewards, steps = jax.jit(jax.vmap(episode))(keys)
    assert np.all(steps <= blackjack.LONGEST_EPISODE)
    ours = outcome_frequencies(rewards)
    gym_env = gymnasium.make("Blackjack-v1", sab=True)
    gym_env.reset(seed=3)
    gym_rewards = []
    for _ in range(n_gym):
        obs, _ = gym_env.reset()
        done = False
        while not done:
            obs, reward, done, _, _ = gym_env.step(STICK if obs[0] >= 20 else HIT)
        gym_rewards.append(reward)
    theirs = outcome_frequencies(gym_rewards)
    truth = np.array(list(exact_from(deals_from_the_shuffle(), 20).values()))
    assert np.isclose(truth.sum(), 1.0)
    # Binomial standard errors; 4 of them.
    assert np.all(np.abs(ours - truth) <= 4 * np.sqrt(truth * (1 - truth) / n_jax))
    two_sample = np.sqrt(truth * (1 - truth) * (1 / n_jax + 1 / n_gym))
    assert np.all(np.abs(ours - theirs) <= 4 * two_sample)


def test_exact_value_of_example_5_4_is_sutton_and_bartos():
    distribution = exact_from(deals_from(*EXAMPLE_5_4_START), 20)
    value_5_4 = sum(r * p for r, p in distribution.items())
    # S&B's number averages 1e8 returns of standard deviation < 1: error ~1e-4.
    assert abs(value_5_4 - EXAMPLE_5_4) < 5e-4


def test_monte_carlo_recovers_example_5_4():
    n = 100_000
    start = jnp.asarray(EXAMPLE_5_4_START)

    def episode(key):
        k0, k1 = jax.random.split(key)
        state = ENV.initial_from(k0, PARAMS, start)
        return play(ENV, PARAMS, threshold_policy(20), k1, state)

    rewards, steps = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(4), n))
    assert np.all(steps <= blackjack.LONGEST_EPISODE)
    rewards = np.asarray(rewards, np.float64)
    standard_error = rewards.std(ddof=1) / np.sqrt(n)
    assert abs(rewards.mean() - EXAMPLE_5_4) <= 4 * standard_error


def test_initial_from_keeps_the_state_and_draws_the_hidden_card():
    n = 20_000
    start = lambda k: ENV.initial_from(k, PARAMS, jnp.array([21, 10, 1]))  # noqa: E731
    states, obs = jax.jit(jax.vmap(lambda k: (start(k), ENV.observation(start(k), PARAMS))))(
        jax.random.split(jax.random.key(5), n))
    assert np.all(np.asarray(obs) == [21, 10, 1])
    assert np.all(np.asarray(states.natural))
    p = np.array([p for _, p in CARDS])
    counts = np.bincount(np.asarray(states.dealer_hidden), minlength=11)[1:]
    assert np.all(np.abs(counts - n * p) <= 4 * np.sqrt(n * p * (1 - p)))
    assert not bool(ENV.initial_from(jax.random.key(0), PARAMS, (20, 10, 1)).natural)
    assert not bool(ENV.initial_from(jax.random.key(0), PARAMS, (21, 10, 0)).natural)


def test_exploring_starts_from_random_indices_under_jit():
    def start(key):
        k0, k1 = jax.random.split(key)
        index = jax.random.randint(k0, (), 0, blackjack.NUM_STATES)
        return index, ENV.observation(ENV.initial_from(k1, PARAMS, blackjack.index_observation(index)), PARAMS)

    index, obs = jax.jit(jax.vmap(start))(jax.random.split(jax.random.key(6), 1000))
    np.testing.assert_array_equal(blackjack.state_index(obs), index)


# --- the bounds and the state index --------------------------------------------------


def test_card_bounds_by_exhaustive_search():
    @functools.cache
    def most_dealer_cards(total, ace, stick):
        if value(total, ace) >= stick:
            return 0
        return 1 + max(most_dealer_cards(total + c, ace or c == 1, stick) for c, _ in CARDS)

    @functools.cache
    def longest(total, ace):  # steps until a bust when always hitting (a stick ends no later)
        return 0 if total > 21 else 1 + max(longest(total + c, ace or c == 1) for c, _ in CARDS)

    hands = [(a + b, 1 in (a, b)) for a, b in itertools.product(range(1, 11), repeat=2)]
    assert max(most_dealer_cards(*h, 21) for h in hands) == blackjack.MAX_DEALER_CARDS
    assert max(most_dealer_cards(*h, 17) for h in hands) == 10
    assert max(longest(*h) for h in hands) == blackjack.LONGEST_EPISODE


def test_state_index_layout_and_inverse():
    observations = [(s, d, a) for s in range(4, 22) for d in range(1, 11) for a in (0, 1) if a == 0 or s >= 12]
    index = np.asarray(blackjack.state_index(jnp.array(observations)))
    assert sorted(index.tolist()) == list(range(blackjack.BUST_INDEX))
    for (s, d, a), i in zip(observations, index):
        if s >= 12:  # values[:200].reshape(2, 10, 10)[usable_ace, sum - 12, dealer - 1]
            assert i == np.ravel_multi_index((a, s - 12, d - 1), (2, 10, 10))
    np.testing.assert_array_equal(blackjack.index_observation(jnp.asarray(index)), observations)
    assert int(blackjack.state_index(jnp.array([25, 3, 0]))) == blackjack.BUST_INDEX
    assert blackjack.NUM_INDICES == blackjack.BUST_INDEX + 1 == 281


def test_index_observations_env_observes_the_index():
    indexed = blackjack.Blackjack(index_observations=True)

    @jax.jit
    @jax.vmap
    def both(key):
        state = ENV.initial(key, PARAMS)
        return ENV.step(key, state, HIT, PARAMS), indexed.step(key, state, HIT, PARAMS)

    steps, indexed_steps = both(jax.random.split(jax.random.key(7), 500))
    np.testing.assert_array_equal(indexed_steps.observation, blackjack.state_index(steps.observation))
    assert indexed.observation_space(PARAMS) == gymnasium.spaces.Discrete(281)
    assert np.all(np.asarray(indexed_steps.observation) < 281)


# --- adapter, transformations, errors ----------------------------------------------------


@pytest.mark.parametrize("index_observations", [False, True])
def test_adapter_passes_check_env(index_observations):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(GymnasiumEnv(blackjack.Blackjack(index_observations)))


def test_jit_equals_eager_and_params_vmap():
    key, state = jax.random.key(8), ENV.initial_from(jax.random.key(9), PARAMS, (15, 6, 0))
    for action in (STICK, HIT):
        eager = ENV.step(key, state, jnp.int32(action), PARAMS)
        jax.tree.map(np.testing.assert_array_equal, eager, jax.jit(ENV.step)(key, state, jnp.int32(action), PARAMS))
    # A dealer who sticks at 12 instead of 17: his final sums obey each threshold.
    params = blackjack.BlackjackParams(dealer_stick=jnp.array([12, 17]))
    axes = blackjack.BlackjackParams(0, None)
    keys = jax.random.split(key, 300)
    stuck = jax.jit(jax.vmap(jax.vmap(lambda p, k: ENV.step(k, state, STICK, p).next_state, (None, 0)),
                             (axes, None)))(params, keys)
    dealer = np.asarray(stuck.dealer_sum)
    assert dealer[0].min() >= 12 and dealer[1].min() >= 17 and dealer[0].mean() < dealer[1].mean()


def test_bad_arguments_are_rejected():
    key = jax.random.key(0)
    for bad, match in [(blackjack.BlackjackParams(dealer_stick=22), "dealer_stick"),
                       (blackjack.BlackjackParams(dealer_stick=16.5), "dealer_stick"),
                       (blackjack.BlackjackParams(natural_reward=float("nan")), "natural_reward")]:
        with pytest.raises(ValueError, match=match):
            ENV.initial(key, bad)
        with pytest.raises(ValueError, match=match):
            GymnasiumEnv(ENV, bad)
    with pytest.raises(ValueError, match="params"):
        ENV.initial(key, {"dealer_stick": 17})
    for start in [(11, 5, 1), (22, 5, 0), (15, 0, 0), (15, 11, 0), (15, 5, 2), (15, 5)]:
        with pytest.raises(ValueError, match="observation"):
            ENV.initial_from(key, PARAMS, start)
    for index in (-1, 280, jnp.array([0, 300])):
        with pytest.raises(ValueError, match="index"):
            blackjack.index_observation(index)
    with pytest.raises(ValueError, match="index_observations"):
        blackjack.Blackjack(index_observations=1)
