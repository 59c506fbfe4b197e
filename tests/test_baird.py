"""Baird's counterexample (S&B Example 11.1, Fig. 11.2): the MDP and its features by hand;
off-policy semi-gradient TD diverges, in expectation and from samples, while the same
features updated on-policy converge."""

import numpy as np
from gymnasium.utils.env_checker import check_env

from rlbook_lib import rollout, vfa  # sets the XLA flags before JAX starts  # isort: skip
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rlbook_lib.envs import baird  # noqa: E402
from rlbook_lib.envs.gym_adapter import GymnasiumEnv  # noqa: E402

ENV = baird.Baird()
MODEL = ENV.to_mdp(ENV.default_params(), gamma=0.99)
PHI = jnp.asarray(baird.FEATURES)
W0 = jnp.asarray(baird.INITIAL_WEIGHTS)
UNIFORM = jnp.full(7, 1 / 7)


def test_features_by_hand():
    w = np.arange(1.0, 9.0)  # w_1 .. w_8
    v = baird.FEATURES @ w
    np.testing.assert_allclose(v[:6], 2 * w[:6] + w[7])  # 2 w_i + w_8
    assert v[6] == w[6] + 2 * w[7]  # w_7 + 2 w_8
    assert np.linalg.matrix_rank(baird.FEATURES) == 7  # w = 0 represents v_pi = 0 exactly


def test_model_and_steps():
    np.testing.assert_allclose(MODEL.P[:, baird.SOLID], np.tile(np.eye(7)[6], (7, 1)))
    np.testing.assert_allclose(MODEL.P[:, baird.DASHED, :6], 1 / 6)
    assert float(jnp.abs(MODEL.R).max()) == 0.0 and not MODEL.terminal.any()
    state = baird.BairdState(jnp.int32(6))
    keys = jax.random.split(jax.random.key(0), 600)
    dashed = jax.vmap(lambda k: ENV.step(k, state, jnp.int32(baird.DASHED), ENV.default_params()))(keys)
    counts = np.bincount(np.asarray(dashed.next_state.position), minlength=7)
    assert counts[6] == 0 and counts.min() == 0 and np.all(np.abs(counts[:6] - 100) < 5 * np.sqrt(100))
    solid = ENV.step(keys[0], state, jnp.int32(baird.SOLID), ENV.default_params())
    assert int(solid.next_state.position) == 6 and float(solid.reward) == 0.0


def test_behaviour_visits_every_state_equally():
    np.testing.assert_allclose(vfa.on_policy_distribution(MODEL, baird.BEHAVIOUR), UNIFORM, atol=1e-6)
    np.testing.assert_allclose(vfa.on_policy_distribution(MODEL, baird.TARGET), np.eye(7)[6], atol=1e-6)


def test_off_policy_expected_semi_gradient_td_diverges():
    matrices = vfa.td_matrices(MODEL, baird.TARGET, PHI, UNIFORM)  # updates under mu, targets under pi
    assert np.linalg.eigvals(np.asarray(matrices.A, np.float64)).real.min() < 0
    norms = np.linalg.norm(np.asarray(vfa.expected_td_sweeps(matrices, W0, 0.01, 5000)), axis=1)
    assert norms[1000] > 30 * norms[0]  # S&B Fig. 11.2 (right): alpha = 0.01, 1000 sweeps
    assert norms[5000] > 1e4 * norms[1000]  # and it keeps growing geometrically


def test_on_policy_expected_semi_gradient_td_converges():
    nu = vfa.on_policy_distribution(MODEL, baird.BEHAVIOUR)  # evaluate the behaviour policy itself: on-policy
    matrices = vfa.td_matrices(MODEL, baird.BEHAVIOUR, PHI, nu)
    symmetric = np.asarray(matrices.A + matrices.A.T, np.float64)
    assert np.linalg.eigvalsh(symmetric).min() > -1e-6  # A is positive semi-definite on-policy
    ws = np.asarray(vfa.expected_td_sweeps(matrices, W0, 0.01, 20_000))
    errors = np.array([float(vfa.value_error(PHI @ w, jnp.zeros(7), nu)) for w in ws[::500]])
    norms = np.linalg.norm(ws, axis=1)
    assert np.all(norms <= norms[0] + 1e-4)
    assert np.all(np.diff(errors) <= 1e-6)
    assert errors[-1] < 1e-3 * errors[0]


def test_off_policy_semi_gradient_td_from_samples_diverges():
    """S&B Fig. 11.2 (left): w += alpha rho delta x along one behaviour trajectory, rho = pi/mu."""
    params = ENV.default_params()
    behaviour = jnp.log(jnp.asarray(baird.BEHAVIOUR[0]))
    policy = lambda key, obs: jax.random.categorical(key, behaviour)  # noqa: E731
    state = rollout.reset(ENV, params, jax.random.key(0))
    _, tr = rollout.rollout(ENV, params, policy, jax.random.key(1), state, 1000)
    rho = jnp.where(tr.action == baird.SOLID, 1.0 / baird.BEHAVIOUR[0, 1], 0.0)  # 7 or 0

    def step(w, t):
        x, x_next = PHI[tr.obs[t]], PHI[tr.next_obs[t]]
        return vfa.semi_gradient_td_update(w, x, tr.reward[t], 0.99, x_next, 0.01 * rho[t]), None

    w, _ = jax.lax.scan(step, W0, jnp.arange(1000))
    assert float(jnp.linalg.norm(w)) > 10 * float(jnp.linalg.norm(W0))


def test_gymnasium_adapter_passes_check_env():
    check_env(GymnasiumEnv(ENV, max_episode_steps=100), skip_render_check=True)

