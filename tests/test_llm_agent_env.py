"""The two-turn reader: transitions by hand on example strings (eager and jit), the returns and the
leave-one-out advantages by hand, the surrogate's gradient credits the late reward to the turn-1 reply
(and nothing to the reply of a reader who left), bad settings; and (slow) REINFORCE with RLOO baselines
raises the mean episode reward of a pretrained model, with the reader's verdicts checked against the
grammar's own parser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import agent_env as ae
from rlbook_lib.llm import grammar, pretrain

TOK = grammar.TOKENIZER
ENV = ae.EnvParams()


def row(text, eos=True):
    return jnp.asarray(TOK.encode_batch([text], 16, eos=eos)[0])


def start(a=3, b=4):
    state, _ = ae.reset(jax.random.key(0))
    return state._replace(a=jnp.int32(a), b=jnp.int32(b), noun=jnp.int32(TOK.token_id("film")))


def test_reset_gives_a_review_prompt():
    for seed in range(5):
        state, prompt = ae.reset(jax.random.key(seed))
        words = TOK.decode(prompt).split()
        assert words[0] == "the" and words[1] in grammar.NOUNS and words[2] == "was" and int(prompt[4]) == 0
        assert 0 <= int(state.a) <= grammar.MAX_OPERAND and not bool(state.done) and int(state.turn) == 0


@pytest.mark.parametrize("jit", [False, True])
def test_transitions_by_hand(jit):
    step = jax.jit(ae.step, static_argnums=0) if jit else ae.step  # EnvParams is hashable
    # A positive review pleases the reader: no reward yet, the question comes next.
    state, prompt, reward, done = step(ENV, start(3, 4), row("the film was very good ."))
    assert bool(state.pleased) and not bool(done) and float(reward) == 0.0 and int(state.turn) == 1
    assert TOK.decode(prompt) == "3 + 4 ="
    # The right answer is paid, and the episode ends; a wrong one is not.
    _, _, reward, done = step(ENV, state, row("3 + 4 = 7 ."))
    assert float(reward) == 1.0 and bool(done)
    _, _, reward, done = step(ae.EnvParams(reward=2.0), state, row("3 + 4 = 7 ."))
    assert float(reward) == 2.0
    for wrong, eos in [("3 + 4 = 8 .", True), ("3 + 4 = 7", False)]:  # wrong sum; right one, unfinished
        _, _, reward, done = step(ENV, state, row(wrong, eos))
        assert float(reward) == 0.0 and bool(done)
    # Reviews that do not please: negative, neutral, cut off, not a review.
    for text, eos in [("the film was bad .", True), ("the film was good but bad .", True),
                      ("the film was good", False), ("the film was good good .", True)]:
        left, _, reward, done = step(ENV, start(), row(text, eos))
        assert not bool(left.pleased) and bool(done) and float(reward) == 0.0, text
        # ... and then even a right answer earns nothing.
        _, _, reward, _ = step(ENV, left, row("3 + 4 = 7 ."))
        assert float(reward) == 0.0
    # A pickier reader wants sentiment >= 2.
    picky = ae.EnvParams(min_sentiment=2.0)
    assert not bool(step(picky, start(), row("the film was good ."))[0].pleased)
    assert bool(step(picky, start(), row("the film was great ."))[0].pleased)
    assert bool(step(picky, start(), row("the film was good and fun ."))[0].pleased)  # 1 + 1


def test_returns_and_leave_one_out_advantages_by_hand():
    gamma = 0.9
    # One group of k = 3: pleased and right; pleased and wrong; not pleased (left after turn 1).
    rewards = jnp.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    pleased = jnp.array([True, True, False])
    np.testing.assert_allclose(ae.turn_returns(rewards[0], ~pleased[0], gamma), [0 + 0.9 * 1.0, 1.0])
    np.testing.assert_allclose(ae.turn_returns(jnp.array([0.5, 1.0]), jnp.bool_(True), gamma), [0.5, 1.0])
    episodes = ae.Episodes(jnp.zeros((3, 2, 16), jnp.int32), jnp.zeros((3, 2, 16), bool), rewards, pleased)
    adv = ae.advantages(episodes, 3, gamma)
    g1, g2 = [0.9, 0.0, 0.0], [1.0, 0.0, 0.0]
    expected1 = [g1[0] - (g1[1] + g1[2]) / 2, g1[1] - (g1[0] + g1[2]) / 2, g1[2] - (g1[0] + g1[1]) / 2]
    expected2 = [g2[0] - (g2[1] + g2[2]) / 2, g2[1] - (g2[0] + g2[2]) / 2, g2[2] - (g2[0] + g2[1]) / 2]
    np.testing.assert_allclose(adv[:, 0], expected1, rtol=1e-6)
    np.testing.assert_allclose(adv[:, 1], expected2, rtol=1e-6)


def test_the_late_reward_is_credited_to_the_turn_1_reply():
    rewards = jnp.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # r1 = 0 in every episode
    pleased = jnp.array([True, True, False, False])
    mask = np.zeros((4, 2, 16), bool)
    mask[:, :, 5:8] = True
    mask[2:, 1] = False  # those readers left: no turn 2
    episodes = ae.Episodes(jnp.zeros((4, 2, 16), jnp.int32), mask, rewards, pleased)
    adv = ae.advantages(episodes, 4, 1.0)
    grad = jax.grad(ae.surrogate)(jnp.zeros((4, 2, 16)), mask, adv)  # ∂ loss / ∂ log π(token)
    # Every token of the turn-1 reply is pushed by −Â_{i,1}/B, and Â_{i,1} = G_1 − b_1 ≠ 0 though r_1 = 0.
    np.testing.assert_allclose(grad[:, 0, 5:8], np.repeat(-np.asarray(adv[:, 0:1]) / 4, 3, axis=1), rtol=1e-6)
    assert float(adv[0, 0]) == pytest.approx(1.0 - 0.0) and float(adv[1, 0]) == pytest.approx(0.0 - 1 / 3)
    assert np.all(grad[:, :, :5] == 0) and np.all(grad[2:, 1] == 0)  # prompts, and the replies after leaving


def test_bad_config():
    with pytest.raises(ValueError, match="group_size"):
        ae.Config(group_size=1)
    with pytest.raises(ValueError, match="gamma"):
        ae.Config(gamma=1.5)
    with pytest.raises(ValueError, match="num_updates"):
        ae.Config(num_updates=0)


ARITHMETIC = pretrain.Config(num_steps=400, warmup_steps=50, num_snapshots=2)
"""The short pre-training of test_llm_policy_gradient (same cache file)."""
LEARNING_RATE = 3e-4


@pytest.mark.slow
def test_reinforce_with_rloo_raises_the_episode_reward_of_a_pretrained_model():
    params = pretrain.pretrain(ARITHMETIC, jax.random.key(0)).params
    model = ARITHMETIC.model
    config = ae.Config(num_updates=16, num_starts=16, group_size=4, learning_rate=LEARNING_RATE)
    trained, metrics = jax.jit(jax.vmap(ae.make_train(config, model, params)))(
        jax.random.split(jax.random.key(1), 2))
    # The pretrained and the two trained policies play the same 256 start states.
    starts = ae.start_states(jax.random.key(2), 256, 1)
    play = jax.jit(jax.vmap(lambda p: ae.rollout(jax.random.key(3), model, p, ENV, starts)))
    episodes = play(jax.tree.map(lambda x, y: jnp.concatenate([x[None], y]), params, trained))
    reward = np.asarray(episodes.rewards.sum(-1).mean(-1))
    pleased = np.asarray(episodes.pleased.mean(-1))
    print("episode reward (pretrained, trained x 2)", reward, "pleased", pleased)
    # The reader's verdict agrees with the grammar's own parser on the pretrained model's reviews.
    for tokens, verdict in zip(np.asarray(episodes.tokens[0, :, 0]), np.asarray(episodes.pleased[0])):
        words, ended = grammar.words_of(tokens)
        assert verdict == (ended and grammar.is_grammatical(words) and grammar.sentiment(words) >= 1)
    assert np.all(episodes.rewards[..., 0] == 0)  # nothing is paid for the review itself
    assert not np.any(np.asarray(episodes.mask[:, :, 1]).any(-1) & ~np.asarray(episodes.pleased))  # left: no turn 2
    assert 0.1 < pleased[0] < 0.7  # the pretrained model pleases some readers, not all
    assert np.all(reward[1:] > reward[0] + 0.1)
    assert np.all(pleased[1:] > pleased[0] + 0.1)  # the credit reached the turn-1 reply
