"""CartPole-v1, MountainCar-v0 and Acrobot-v1 against gymnasium's numpy originals.

The parity check compares ONE STEP AT A TIME FROM IDENTICAL STATES: before every
step the JAX state is set to gymnasium's current state (float64 -> float32),
then both take the same action. A long open-loop replay would not do: the pole
is unstable, so any float32 CartPole drifts away from the float64 original
after a hundred-odd steps of balancing. Truncation is counted here, on the JAX
side (t >= max_episode_steps), and compared with gymnasium's TimeLimit.
"""

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.envs.phys2d.cartpole import CartPoleFunctional, CartPoleParams
from gymnasium.utils.env_checker import check_env
from scipy import stats

from rlbook_lib.envs import acrobot, cartpole, mountain_car
from rlbook_lib.envs.base import Step
from rlbook_lib.envs.gym_adapter import GymnasiumEnv

RTOL = ATOL = 1e-5  # float32 against float64: a few float32 ulps of the quantities involved
CONDITIONING = 20
"""Acrobot only, far from the hanging position: the error may reach this many times
the change that one float32 ulp of input causes in gymnasium's own float64 step.
At |θ̇2| near 9π one RK4 step of 0.2 s amplifies input errors about a thousandfold,
so float32 rounding alone moves θ̇2 by up to ~2e-3 there (measured: 2.3e-3 at most,
at most 13 times the reference's own one-ulp sensitivity, over 20,000 states)."""
PI = np.pi


@dataclasses.dataclass(frozen=True)
class Case:
    gym_id: str
    env: Any
    state_type: type
    initial: tuple  # (low, high): gymnasium's documented initial-state ranges
    box: tuple  # (low, high) of the states for the one-step test over the state space


CASES = {
    "cartpole": Case("CartPole-v1", cartpole.CartPole(), cartpole.CartPoleState,
                     ((-0.05,) * 4, (0.05,) * 4),
                     ((-2.4, -3.0, -0.21, -3.5), (2.4, 3.0, 0.21, 3.5))),
    "mountain_car": Case("MountainCar-v0", mountain_car.MountainCar(),
                         mountain_car.MountainCarState, ((-0.6, 0.0), (-0.4, 0.0)),
                         ((-1.2, -0.07), (0.6, 0.07))),
    "acrobot": Case("Acrobot-v1", acrobot.Acrobot(), acrobot.AcrobotState,
                    ((-0.1,) * 4, (0.1,) * 4),
                    ((-PI, -PI, -4 * PI, -9 * PI), (PI, PI, 4 * PI, 9 * PI))),
}
StepFn = Callable[[np.ndarray, np.ndarray], Step]
Policy = Callable[[int, np.ndarray], int]


def our_step_fn(case: Case, params=None) -> StepFn:
    """Our step from a flat float32 state, jitted once."""
    params = case.env.default_params() if params is None else params
    key = jax.random.key(0)  # used only by Acrobot's torque noise, which is off
    return jax.jit(lambda s, a: case.env.step(key, case.state_type(*s), a, params))


def phys2d_step_fn() -> StepFn:
    """gymnasium's JAX CartPole (phys2d), with polemass_length = masspole + length."""
    f, params = CartPoleFunctional(), CartPoleParams()

    def step(s, a):
        s_next = f.transition(s, a, None, params)
        return Step(s_next, f.observation(s_next, None, params),
                    f.reward(s, a, s_next, None, params), f.terminal(s_next, None, params))

    return jax.jit(step)


class Outcomes(NamedTuple):
    """One side's results, stacked over steps (leading axis T)."""

    observation: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


def compare_steps(
    gym_id: str, step_fn: StepFn, policy: Policy, num_steps: int, max_episode_steps: int, seed=0
) -> tuple[Outcomes, Outcomes]:
    """(ours, gymnasium's) over ``num_steps`` steps of gymnasium (TimeLimit on, reset after
    every end), each step taken by ``step_fn`` too, from gymnasium's state before it."""
    gym_env = gymnasium.make(gym_id)
    observation, _ = gym_env.reset(seed=seed)
    ours, theirs, t = [], [], 0
    for i in range(num_steps):
        action = policy(i, observation)
        step = step_fn(np.asarray(gym_env.unwrapped.state, np.float32), np.int32(action))
        observation, reward, terminated, truncated, _ = gym_env.step(action)
        t += 1
        ours.append((step.observation, step.reward, step.terminated, t >= max_episode_steps))
        theirs.append((observation, reward, terminated, truncated))
        if terminated or truncated:
            observation, _ = gym_env.reset()
            t = 0
    return tuple(Outcomes(*map(np.asarray, zip(*rows))) for rows in (ours, theirs))


def assert_matches(ours: Outcomes, theirs: Outcomes) -> None:
    np.testing.assert_allclose(ours.observation, theirs.observation, rtol=RTOL, atol=ATOL)
    for field in ("reward", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field), field)


def random_policy(num_actions: int, seed: int) -> Policy:
    """Actions from a JAX key, drawn on first use (not while pytest collects)."""
    draw = functools.cache(lambda: np.asarray(
        jax.random.randint(jax.random.key(seed), (2000,), 0, num_actions)))
    return lambda i, o: int(draw()[i])


def constant(action: int) -> Policy:
    return lambda i, o: action


def bang_bang(low: int, high: int, period: int) -> Policy:
    return lambda i, o: low if (i // period) % 2 == 0 else high


# name: (case, policy, steps, how at least one episode must end)
EPISODE_RUNS = {
    "cartpole-random": ("cartpole", random_policy(2, seed=1), 1500, "terminated"),
    "cartpole-left": ("cartpole", constant(cartpole.LEFT), 300, "terminated"),
    "cartpole-right": ("cartpole", constant(cartpole.RIGHT), 300, "terminated"),
    "cartpole-bang-bang": ("cartpole", bang_bang(0, 1, 10), 500, "terminated"),
    # A linear controller that balances: every episode reaches the time limit.
    "cartpole-balance": ("cartpole", lambda i, o: int(o[2] + 0.5 * o[3] + 0.01 * o[0]
                                                      + 0.1 * o[1] > 0), 1100, "truncated"),
    "mountain_car-random": ("mountain_car", random_policy(3, seed=2), 1000, "truncated"),
    "mountain_car-left": ("mountain_car", constant(mountain_car.LEFT), 400, "truncated"),
    "mountain_car-right": ("mountain_car", constant(mountain_car.RIGHT), 400, "truncated"),
    # Push along the velocity: pumps energy in and reaches the flag.
    "mountain_car-pump": ("mountain_car", lambda i, o: 2 if o[1] >= 0 else 0, 600, "terminated"),
    "acrobot-random": ("acrobot", random_policy(3, seed=3), 1000, "truncated"),
    "acrobot-positive": ("acrobot", constant(acrobot.POSITIVE_TORQUE), 500, "truncated"),
    "acrobot-bang-bang": ("acrobot", bang_bang(0, 2, 5), 500, "truncated"),
    # Torque along θ̇2: swings the tip above the line.
    "acrobot-pump": ("acrobot", lambda i, o: 2 if o[5] >= 0 else 0, 600, "terminated"),
}


@pytest.mark.parametrize("run", EPISODE_RUNS)
def test_step_parity_over_episodes(run):
    name, policy, num_steps, ending = EPISODE_RUNS[run]
    case = CASES[name]
    ours, theirs = compare_steps(
        case.gym_id, our_step_fn(case), policy, num_steps, case.env.max_episode_steps
    )
    assert_matches(ours, theirs)
    assert getattr(theirs, ending).any(), f"no episode was {ending}"


def test_the_parity_check_catches_phys2d_polemass_length():
    """The same check on the same steps passes for ours and fails for phys2d's CartPole."""
    assert CartPoleParams().polemass_length == pytest.approx(0.1 + 0.5)  # should be 0.1 * 0.5
    case, policy = CASES["cartpole"], random_policy(2, seed=1)
    assert_matches(*compare_steps(case.gym_id, our_step_fn(case), policy, 500, 500))
    buggy, theirs = compare_steps(case.gym_id, phys2d_step_fn(), policy, 500, 500)
    with pytest.raises(AssertionError):
        assert_matches(buggy, theirs)
    deviation = np.abs(buggy.observation - theirs.observation).max(axis=0)
    assert deviation[1] > 0.1  # cart velocity, one step after an identical state


def gym_one_step(gym_env, state: np.ndarray, action: int) -> tuple:
    gym_env.reset()
    gym_env.state = state.astype(np.float64)
    return gym_env.step(action)[:3]


@pytest.mark.parametrize("name", CASES)
def test_one_step_parity_over_the_state_space(name):
    case, n = CASES[name], 2000
    k1, k2 = jax.random.split(jax.random.key(4))
    low, high = (jnp.array(bound, jnp.float32) for bound in case.box)
    states = jax.random.uniform(k1, (n, low.size), minval=low, maxval=high)
    if name == "mountain_car":  # also cars driving into the left wall
        states = states.at[:100, 0].set(-1.2).at[:100, 1].set(-jnp.abs(states[:100, 1]))
    actions = jax.random.randint(k2, (n,), 0, case.env.action_space(case.env.default_params()).n)
    ours = jax.jit(jax.vmap(our_step_fn(case)))(states, actions)
    gym_env = gymnasium.make(case.gym_id).unwrapped
    gym_env.reset(seed=0)
    states, actions = np.asarray(states), np.asarray(actions).tolist()
    observation, reward, terminated = map(
        np.asarray, zip(*(gym_one_step(gym_env, s, a) for s, a in zip(states, actions)))
    )
    np.testing.assert_array_equal(ours.reward, reward)
    np.testing.assert_array_equal(ours.terminated, terminated)
    error = np.abs(np.asarray(ours.observation) - observation)
    loose = np.flatnonzero((error > ATOL + RTOL * np.abs(observation)).any(axis=1))
    assert loose.size == 0 or (name == "acrobot" and loose.size < n // 10), loose.size
    for i in loose:  # see CONDITIONING
        nudged = [gym_one_step(gym_env, states[i] + unit * np.spacing(states[i]), actions[i])[0]
                  for unit in np.eye(low.size)]
        sensitivity = np.abs(np.asarray(nudged) - observation[i]).max(axis=0)
        bound = ATOL + RTOL * np.abs(observation[i]) + CONDITIONING * sensitivity
        assert (error[i] <= bound).all(), (states[i], actions[i], error[i], sensitivity)


def test_cartpole_hand_step_from_rest():
    env, params = cartpole.CartPole(), cartpole.CartPoleParams()
    temp = 10.0 / (1.0 + 0.1)
    thetaacc = (9.8 * 0 - 1 * temp) / (0.5 * (4 / 3 - 0.1 * 1 / (1.0 + 0.1)))
    xacc = temp - (0.1 * 0.5) * thetaacc * 1 / (1.0 + 0.1)
    state = cartpole.CartPoleState(*jnp.zeros(4))
    step = env.step(jax.random.key(0), state, jnp.int32(cartpole.RIGHT), params)
    np.testing.assert_allclose(step.observation, [0, 0.02 * xacc, 0, 0.02 * thetaacc], rtol=1e-6)
    assert float(step.reward) == 1.0 and not bool(step.terminated)


def test_mountain_car_left_wall_stops_the_car():
    env, params = mountain_car.MountainCar(), mountain_car.MountainCarParams()
    state = mountain_car.MountainCarState(jnp.float32(-1.19), jnp.float32(-0.05))
    # v = -0.05 - 0.001 - 0.0025 cos(-3.57) ≈ -0.0487 takes x past -1.2: x is clipped, v = 0.
    step = env.step(jax.random.key(0), state, jnp.int32(mountain_car.LEFT), params)
    np.testing.assert_array_equal(step.observation, np.float32([-1.2, 0.0]))
    assert float(step.reward) == -1.0 and not bool(step.terminated)


def test_acrobot_terminal_when_the_tip_is_above_the_line():
    env, params = acrobot.Acrobot(), acrobot.AcrobotParams()

    def terminal(theta1, theta2):
        return bool(env.terminal(acrobot.AcrobotState(*jnp.float32([theta1, theta2, 0, 0])),
                                 params))

    assert terminal(PI, 0)  # straight up: the tip at height 1 + 1
    assert not terminal(0, 0) and not terminal(PI / 2, 0)  # hanging; horizontal
    assert not terminal(PI, PI)  # first link up, second folded down: height 1 - 1


def test_acrobot_torque_noise_draws_from_the_key():
    env = acrobot.Acrobot()
    state, action = env.initial(jax.random.key(0), env.default_params()), jnp.int32(1)
    noisy = acrobot.AcrobotParams(torque_noise_max=0.5)
    for params, same in ((env.default_params(), True), (noisy, False)):
        a, b = (env.step(jax.random.key(k), state, action, params).observation for k in (1, 2))
        assert np.array_equal(a, b) == same


@pytest.mark.parametrize("name", CASES)
def test_initial_states_follow_gymnasiums_distribution(name):
    case, params = CASES[name], CASES[name].env.default_params()
    keys = jax.random.split(jax.random.key(5), 4000)
    ours = np.stack(jax.vmap(case.env.initial, in_axes=(0, None))(keys, params), axis=1)
    gym_env = gymnasium.make(case.gym_id).unwrapped
    gym_env.reset(seed=5)
    theirs = np.stack([np.array(gym_env.state, np.float64) for _ in range(2000)
                       if gym_env.reset()])
    low, high = map(np.array, case.initial)
    assert ours.dtype == np.float32
    for x in (ours, theirs):
        assert (x >= low).all() and (x <= high).all()
    for j in np.flatnonzero(high > low):  # ours reaches both ends and looks like theirs
        assert ours[:, j].min() < low[j] + 0.01 * (high[j] - low[j])
        assert ours[:, j].max() > high[j] - 0.01 * (high[j] - low[j])
        assert stats.ks_2samp(ours[:, j], theirs[:, j]).pvalue > 1e-3


@pytest.mark.parametrize("name", CASES)
def test_spaces_params_and_time_limit_are_gymnasiums(name):
    case = CASES[name]
    params, gym_env = case.env.default_params(), gymnasium.make(case.gym_id).unwrapped
    assert case.env.max_episode_steps == gymnasium.spec(case.gym_id).max_episode_steps
    ours, theirs = case.env.observation_space(params), gym_env.observation_space
    assert ours == theirs and ours.dtype == np.float32
    np.testing.assert_array_equal(ours.low, theirs.low)
    np.testing.assert_array_equal(ours.high, theirs.high)
    assert case.env.action_space(params) == gym_env.action_space
    missing = set()
    for field in (f.name for f in dataclasses.fields(params)):
        gym_name = next((n for n in (field, field.upper()) if hasattr(gym_env, n)), None)
        if gym_name is None:
            missing.add(field)
        else:
            assert getattr(params, field) == getattr(gym_env, gym_name), field
    if name == "cartpole":  # computed by us, stored by gymnasium
        assert params.total_mass == gym_env.total_mass
        assert params.polemass_length == gym_env.polemass_length
        assert gym_env.kinematics_integrator == "euler"
    if name == "acrobot":
        assert gym_env.book_or_nips == "book"
        assert params.gravity == 9.8  # a literal inside gymnasium's AcrobotEnv._dsdt
        missing.discard("gravity")
    assert not missing, f"not compared with gymnasium: {missing}"


def test_derived_constants_follow_the_params_under_vmap():
    """vmap over pole masses and lengths; gymnasium needs its stored products set by hand."""
    case = CASES["cartpole"]
    masspole, length = np.float32([0.1, 0.5, 2.0]), np.float32([0.5, 1.0, 0.25])
    params = cartpole.CartPoleParams(masspole=masspole, length=length)
    params = jax.tree.map(lambda x: jnp.broadcast_to(x, (3,)), params)  # a batch of 3
    state = np.float32([0.1, -0.3, 0.05, 0.8])
    ours = jax.vmap(lambda p: our_step_fn(case, p)(state, np.int32(1)).observation)(params)
    gym_env = gymnasium.make(case.gym_id).unwrapped
    for i in range(3):
        gym_env.masspole, gym_env.length = float(masspole[i]), float(length[i])
        gym_env.total_mass = gym_env.masspole + gym_env.masscart
        gym_env.polemass_length = gym_env.masspole * gym_env.length
        observation, *_ = gym_one_step(gym_env, state, 1)
        np.testing.assert_allclose(ours[i], observation, rtol=RTOL, atol=ATOL)


def assert_close(x, y):
    # XLA fuses a jitted or vmapped program differently from op-by-op execution, so
    # results may differ in the last float32 bits: compare to a few ulps, not bitwise.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), x, y)


@pytest.mark.parametrize("name", CASES)
def test_jit_equals_eager_and_vmap_equals_a_loop(name):
    env, params, n = CASES[name].env, CASES[name].env.default_params(), 16
    keys = jax.random.split(jax.random.key(6), n)
    states = jax.vmap(env.initial, in_axes=(0, None))(keys, params)
    actions = jax.random.randint(jax.random.key(7), (n,), 0, env.action_space(params).n)
    batched = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, states, actions, params)
    jitted, jitted_initial = jax.jit(env.step), jax.jit(env.initial)
    for i in range(n):
        state = jax.tree.map(lambda x: x[i], states)
        assert_close(jitted_initial(keys[i], params), state)
        single = jitted(keys[i], state, actions[i], params)
        assert_close(jax.tree.map(lambda x: x[i], batched), single)
        if i < 3:  # op by op is slow
            assert_close(env.step(keys[i], state, actions[i], params), single)


@pytest.mark.parametrize("name", CASES)
def test_gymnasium_adapter_passes_check_env(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if name == "cartpole":  # CartPole-v1's velocities are unbounded, in gymnasium too
            warnings.filterwarnings("ignore", message=".*Box observation space .*infinity")
        check_env(GymnasiumEnv(CASES[name].env).unwrapped)
