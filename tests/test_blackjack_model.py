"""Blackjack's exact model against the JAX environment's sampled steps, against
Sutton & Barto's published value of Example 5.4, and against Thorp's basic
strategy; and Monte Carlo ES (rlbook_lib.mc) against the model's optimum."""

import numpy as np
import pytest

from rlbook_lib import dp, mc, mdp  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import blackjack, blackjack_model  # noqa: E402
from rlbook_lib.envs.blackjack import HIT, STICK  # noqa: E402

ENV = blackjack.Blackjack(index_observations=True)
PARAMS = ENV.default_params()


@pytest.fixture(scope="module")
def model():
    return blackjack_model.to_mdp(PARAMS)


def index(player_sum, dealer_card, usable_ace):
    return int(blackjack.state_index(np.array([player_sum, dealer_card, usable_ace])))


def test_dealer_distribution_matches_the_environments_dealer():
    n = 40_000
    for showing in (1, 6, 10):
        exact = blackjack_model.dealer_final_distribution(showing)
        assert exact.sum() == pytest.approx(1.0) and np.all(exact[:17] == 0)

        def final(key, showing=showing):
            hidden, rest = jnp.split(blackjack.draw_cards(key, 1 + blackjack.MAX_DEALER_CARDS), [1])
            return blackjack.dealer_play(jnp.int32(showing), hidden[0], rest, 17)[0]

        finals = jax.jit(jax.vmap(final))(jax.random.split(jax.random.key(showing), n))
        observed = np.bincount(np.asarray(finals), minlength=32) / n
        assert np.all(np.abs(observed - exact) <= 4 * np.sqrt(exact * (1 - exact) / n) + 1e-9)


def test_deal_distribution_by_hand(model):
    p_card = [None] + [1 / 13] * 9 + [4 / 13]
    # A natural: (ace, ten) in either order, then any showing card d.
    for d in (1, 10):
        assert float(model.initial[index(21, d, 1)]) == pytest.approx(2 * p_card[1] * p_card[10] * p_card[d])
    # Sum 4 without an ace: (2, 2) only.
    assert float(model.initial[blackjack.NUM_STATES + 10 * (4 - 4) + 0]) == pytest.approx(p_card[2] ** 3)
    assert float(model.initial.sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("start", [(12, 3, 0), (15, 1, 1), (8, 10, 0), (20, 7, 0), (11, 5, 0)])
def test_model_rows_match_sampled_steps(model, start):
    n = 20_000
    s = index(*start)

    def one(key, action):
        k0, k1 = jax.random.split(key)
        state = ENV.initial_from(k0, PARAMS, jnp.asarray(start))
        step = ENV.step(k1, state, jnp.int32(action), PARAMS)
        return step.observation, step.reward

    keys = jax.random.split(jax.random.key(s), n)
    hit_obs, hit_rewards = jax.jit(jax.vmap(lambda k: one(k, HIT)))(keys)
    observed = np.bincount(np.asarray(hit_obs), minlength=blackjack.NUM_INDICES) / n
    P_hit = np.asarray(model.P[s, HIT, :blackjack.NUM_INDICES])
    assert np.all(np.abs(observed - P_hit) <= 4 * np.sqrt(P_hit * (1 - P_hit) / n) + 1e-9)
    assert float(np.mean(hit_rewards)) == pytest.approx(float(model.R[s, HIT]), abs=4 / np.sqrt(n))
    _, stick_rewards = jax.jit(jax.vmap(lambda k: one(k, STICK)))(keys)
    assert float(np.mean(stick_rewards)) == pytest.approx(float(model.R[s, STICK]), abs=4 / np.sqrt(n))


def test_example_5_4_value_is_sutton_and_bartos(model):
    """S&B Example 5.4: sticking only on 20 or 21 from (13, 2, usable ace) is worth
    −0.27726 (their average of 100 million returns, error about 1e-4)."""
    player = np.asarray(blackjack.index_observation(np.arange(blackjack.BUST_INDEX)))[:, 0]
    actions = np.concatenate([np.where(player >= 20, STICK, HIT), [STICK, STICK]])
    v = dp.policy_evaluation_exact(model, mdp.deterministic_policy(jnp.asarray(actions), 2))
    assert float(v[index(13, 2, 1)]) == pytest.approx(-0.27726, abs=5e-4)


def thorps_hit_stand_policy():
    """Hit (1) or stick (0) in the 200 states, from the basic strategy without doubling or
    splitting: hard 17+ stands; hard 13–16 stands against 2–6; hard 12 against 4–6; soft
    19+ stands; soft 18 stands against 2–8."""
    policy = np.ones((2, 10, 10), int)  # [usable, sum − 12, dealer − 1]
    dealer = np.arange(1, 11)
    for p in range(12, 22):
        hard_stands = ((p >= 17) | ((p >= 13) & (dealer >= 2) & (dealer <= 6))
                       | ((p == 12) & (dealer >= 4) & (dealer <= 6)))
        soft_stands = (p >= 19) | ((p == 18) & (dealer >= 2) & (dealer <= 8))
        policy[0, p - 12] = np.where(hard_stands, STICK, HIT)
        policy[1, p - 12] = np.where(soft_stands, STICK, HIT)
    return policy.reshape(-1)


def test_optimal_policy_is_thorps_basic_strategy(model):
    q = np.asarray(dp.value_iteration(model, tol=1e-9).q)
    np.testing.assert_array_equal(q[:blackjack.NUM_STATES].argmax(axis=1), thorps_hit_stand_policy())
    low = q[blackjack.NUM_STATES:blackjack.BUST_INDEX]  # sums 4–11: no card can bust them
    assert np.all(low[:, HIT] > low[:, STICK])


def exploring_start(key):
    k_state, k_action, k_env = jax.random.split(key, 3)
    s = jax.random.randint(k_state, (), 0, blackjack.NUM_STATES)
    return (ENV.initial_from(k_env, PARAMS, blackjack.index_observation(s)),
            jax.random.randint(k_action, (), 0, 2))


@pytest.mark.slow
def test_monte_carlo_es_finds_the_optimal_policy(model):
    """S&B Fig. 5.2 with 200,000 episodes (S&B: 500,000), 4 runs: the greedy policy
    of Monte Carlo ES agrees with the exact optimum in almost every state, and
    errs only where the two actions are close in value."""
    q_star = np.asarray(dp.value_iteration(model, tol=1e-9).q)[:blackjack.NUM_STATES]
    config = mc.ControlConfig(epsilon=0.0, max_episode_steps=blackjack.LONGEST_EPISODE,
                              episodes_per_update=1000)
    runs = jax.jit(jax.vmap(lambda k: mc.run_control(config, ENV, PARAMS, k, 200_000, exploring_start).q))
    q = np.asarray(runs(jax.random.split(jax.random.key(0), 4)))[:, :blackjack.NUM_STATES]
    wrong = q.argmax(-1) != q_star.argmax(-1)
    gap = np.abs(q_star[:, HIT] - q_star[:, STICK])
    assert np.median(wrong.sum(axis=1)) <= 10
    assert np.all(gap[wrong.any(axis=0)] < 0.15)
    assert np.median(np.abs(q.max(-1) - q_star.max(-1)).mean(axis=1)) < 0.03
