"""KL control for RLHF: the controllers follow their formulas step by step, and the KL-shaped
per-token reward sums to the score minus β times the sequence log-ratio (float64 numpy references)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlbook_lib.llm import kl_control


def test_fixed_controller_keeps_beta():
    ctl = kl_control.fixed_kl_controller(0.3)
    state = ctl.init()
    for kl in [0.0, 6.0, 100.0]:
        state = ctl.update(state, kl, 512)
    assert float(state.beta) == pytest.approx(0.3)


def test_adaptive_controller_follows_its_formula_step_by_step():
    ctl = kl_control.adaptive_kl_controller(init_beta=0.2, kl_target=6.0, horizon=10_000)
    state = ctl.init()
    beta = 0.2
    # below target (clipped at −0.2), near target (unclipped), above target (clipped at +0.2)
    for kl, n in [(1.0, 512), (5.4, 512), (6.3, 256), (30.0, 1024), (6.0, 64)]:
        error = min(max(kl / 6.0 - 1.0, -0.2), 0.2)
        beta = beta * (1.0 + error * n / 10_000)
        state = ctl.update(state, kl, n)
        assert float(state.beta) == pytest.approx(beta, rel=1e-6)
    # by hand, the first step: 0.2 · (1 − 0.2 · 512/10⁴)
    first = ctl.update(ctl.init(), 1.0, 512)
    assert float(first.beta) == pytest.approx(0.2 * (1 - 0.2 * 0.0512), rel=1e-6)


def test_adaptive_controller_depends_on_episodes_not_on_batch_size():
    # 10 updates of 100 episodes and 1 update of 1000 episodes move β alike (to first order in e n/H)
    ctl = kl_control.adaptive_kl_controller()
    small = ctl.init()
    for _ in range(10):
        small = ctl.update(small, 12.0, 100)
    large = ctl.update(ctl.init(), 12.0, 1000)
    assert float(small.beta) == pytest.approx(float(large.beta), rel=1e-3)
    assert float(small.beta) > 0.2


def test_adaptive_controller_runs_under_jit_scan_and_vmap():
    ctl = kl_control.adaptive_kl_controller(kl_target=6.0)
    kls = jnp.array([10.0, 2.0, 7.0, 6.0])

    def run(init_beta_scale):
        def step(state, kl):
            state = ctl.update(state, kl, 512)
            return state, state.beta
        state0 = kl_control.KLControllerState(ctl.init().beta * init_beta_scale)
        return jax.lax.scan(step, state0, kls)[1]

    betas = jax.jit(jax.vmap(run))(jnp.array([1.0, 2.0]))
    eager = [ctl.init()]
    for kl in kls:
        eager.append(ctl.update(eager[-1], kl, 512))
    np.testing.assert_allclose(betas[0], [float(s.beta) for s in eager[1:]], rtol=1e-6)
    np.testing.assert_allclose(betas[1], 2 * betas[0], rtol=1e-6)


def test_jitted_update_does_not_retrace():
    ctl = kl_control.adaptive_kl_controller()
    traces = []

    @jax.jit
    def update(state, kl):
        traces.append(None)
        return ctl.update(state, kl, 512)

    state = update(ctl.init(), jnp.float32(3.0))
    state = update(state, jnp.float32(9.0))
    assert len(traces) == 1


@pytest.mark.parametrize("kwargs", [{"init_beta": -0.1}, {"kl_target": 0.0}, {"horizon": -5}])
def test_adaptive_controller_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        kl_control.adaptive_kl_controller(**kwargs)
    with pytest.raises(ValueError, match="beta"):
        kl_control.fixed_kl_controller(-1.0)


def random_sequence(seed, length=9):
    rng = np.random.default_rng(seed)
    logp = np.log(rng.uniform(0.05, 1.0, length))
    ref_logp = np.log(rng.uniform(0.05, 1.0, length))
    mask = np.zeros(length)
    mask[3:7] = 1.0  # prompt 0..2, response 3..6, padding 7..8
    return logp, ref_logp, mask


def test_kl_reward_sums_to_minus_beta_sequence_log_ratio():
    logp, ref_logp, mask = random_sequence(0)
    beta = 0.15
    log_ratio = np.sum(mask * (logp - ref_logp))  # float64 reference
    rewards = kl_control.kl_shaped_rewards(logp, ref_logp, mask, 0.0, beta)
    assert float(jnp.sum(rewards)) == pytest.approx(-beta * log_ratio, rel=1e-5)
    assert float(kl_control.sequence_log_ratio(logp, ref_logp, mask)) == pytest.approx(log_ratio, rel=1e-5)
    with_score = kl_control.kl_shaped_rewards(logp, ref_logp, mask, 2.5, beta)
    assert float(jnp.sum(with_score)) == pytest.approx(2.5 - beta * log_ratio, rel=1e-5)


def test_kl_reward_token_by_token():
    logp, ref_logp, mask = random_sequence(1)
    rewards = np.asarray(kl_control.kl_shaped_rewards(logp, ref_logp, mask, 2.5, 0.2))
    expected = -0.2 * mask * (logp - ref_logp)
    expected[6] += 2.5  # the score on the last response token
    np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-6)
    assert np.all(rewards[:3] == 0) and np.all(rewards[7:] == 0)


def test_kl_reward_without_response_tokens_is_zero_and_vmaps():
    logp, ref_logp, mask = random_sequence(2)
    empty = kl_control.kl_shaped_rewards(logp, ref_logp, np.zeros_like(mask), 3.0, 0.2)
    assert np.all(np.asarray(empty) == 0.0)
    batch = np.stack([random_sequence(s) for s in range(4)], axis=1)  # [3, B, T]
    scores = jnp.arange(4.0)
    batched = jax.jit(jax.vmap(kl_control.kl_shaped_rewards, in_axes=(0, 0, 0, 0, None)))(
        batch[0], batch[1], batch[2], scores, 0.1)
    for b in range(4):
        single = kl_control.kl_shaped_rewards(batch[0, b], batch[1, b], batch[2, b], scores[b], 0.1)
        np.testing.assert_allclose(batched[b], single, rtol=1e-6, atol=1e-7)


def test_kl_reward_rejects_bad_input():
    logp, ref_logp, mask = random_sequence(3)
    with pytest.raises(ValueError, match="same length"):
        kl_control.kl_shaped_rewards(logp, ref_logp[:-1], mask, 0.0, 0.1)
    with pytest.raises(ValueError, match="beta"):
        kl_control.kl_shaped_rewards(logp, ref_logp, mask, 0.0, -0.1)
    with pytest.raises(ValueError, match="score"):
        kl_control.kl_shaped_rewards(logp, ref_logp, mask, np.zeros(2), 0.1)
