"""Acrobot-v1: swing a two-link pendulum up, as gymnasium's classic environment.

Two links hang from a fixed pivot; only the joint between them (the elbow) is
actuated. θ1 is the angle of the first link from straight down and θ2 the angle
of the second link relative to the first, so s = (θ1, θ2, θ̇1, θ̇2) = 0 hangs
at rest. Actions a ∈ {0, 1, 2} apply the torque τ = a − 1 ∈ {−1, 0, +1} N·m at
the elbow. The equations of motion are those of Sutton & Barto's book (Section
11.3 of the first edition; gymnasium's ``book_or_nips = "book"``): with link
masses m1, m2, lengths l1, l2, centres of mass at lc1, lc2, moments of inertia
I1 = I2 = I and gravity g,

    d1  = m1 lc1² + m2 (l1² + lc2² + 2 l1 lc2 cos θ2) + I1 + I2
    d2  = m2 (lc2² + l1 lc2 cos θ2) + I2
    φ2  = m2 lc2 g sin(θ1 + θ2)
    φ1  = −m2 l1 lc2 θ̇2² sin θ2 − 2 m2 l1 lc2 θ̇2 θ̇1 sin θ2
          + (m1 lc1 + m2 l1) g sin θ1 + φ2
    θ̈2  = (τ + d2/d1 · φ1 − m2 l1 lc2 θ̇1² sin θ2 − φ2)
          / (m2 lc2² + I2 − d2²/d1)
    θ̈1  = −(d2 θ̈2 + φ1) / d1

(gymnasium writes sin x as cos(x − π/2); the two are equal). One step
integrates these with a single classical Runge-Kutta (RK4) step of dt = 0.2 s
holding τ fixed, then wraps both angles into [−π, π) and clips the velocities
to |θ̇1| ≤ 4π and |θ̇2| ≤ 9π. The observation is

    [cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2].

A state is terminal once the tip is more than one link length above the pivot
(gymnasium: −cos θ1 − cos(θ1 + θ2) > 1 for unit links). Each step that does not
reach it pays r_{t+1} = −1, the step that does pays 0. The state starts uniform
on [−0.1, 0.1]⁴, and episodes are truncated after ``max_episode_steps = 500``
steps (gymnasium's registered limit; applied by the caller).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib.envs.base import Environment

NEGATIVE_TORQUE = 0
NO_TORQUE = 1
POSITIVE_TORQUE = 2
INITIAL_HIGH = 0.1
"""Every state variable starts uniform on [−INITIAL_HIGH, INITIAL_HIGH]."""


class AcrobotState(NamedTuple):
    theta1: Float[Array, ""]
    """θ1, the first link's angle from straight down (rad), in [−π, π)."""
    theta2: Float[Array, ""]
    """θ2, the second link's angle relative to the first (rad), in [−π, π)."""
    theta1_dot: Float[Array, ""]
    """θ̇1 (rad/s), in [−4π, 4π]."""
    theta2_dot: Float[Array, ""]
    """θ̇2 (rad/s), in [−9π, 9π]."""


@struct.dataclass
class AcrobotParams:
    link_length_1: Float[Array, ""] | float = 1.0
    """l1 (m)."""
    link_length_2: Float[Array, ""] | float = 1.0
    """l2 (m). Enters only the goal height, not the dynamics."""
    link_mass_1: Float[Array, ""] | float = 1.0
    """m1 (kg)."""
    link_mass_2: Float[Array, ""] | float = 1.0
    """m2 (kg)."""
    link_com_pos_1: Float[Array, ""] | float = 0.5
    """lc1, the distance from the pivot to the first link's centre of mass (m)."""
    link_com_pos_2: Float[Array, ""] | float = 0.5
    """lc2, the distance from the elbow to the second link's centre of mass (m)."""
    link_moi: Float[Array, ""] | float = 1.0
    """I = I1 = I2, the moment of inertia of each link (kg m²)."""
    max_vel_1: Float[Array, ""] | float = 4 * math.pi
    """θ̇1 is clipped to [−max_vel_1, max_vel_1] after each step."""
    max_vel_2: Float[Array, ""] | float = 9 * math.pi
    """θ̇2 is clipped to [−max_vel_2, max_vel_2] after each step."""
    gravity: Float[Array, ""] | float = 9.8
    """g (m/s²)."""
    dt: Float[Array, ""] | float = 0.2
    """The time of one step, integrated by a single RK4 step (s)."""
    torque_noise_max: Float[Array, ""] | float = 0.0
    """τ gets uniform noise on [−torque_noise_max, torque_noise_max]; none in v1."""


def derivatives(
    s: Float[Array, "4"], torque: Float[Array, ""], params: AcrobotParams
) -> Float[Array, "4"]:
    """ds/dt = (θ̇1, θ̇2, θ̈1, θ̈2) from the equations in the module docstring."""
    theta1, theta2, dtheta1, dtheta2 = s
    m1, m2 = params.link_mass_1, params.link_mass_2
    l1, lc1, lc2 = params.link_length_1, params.link_com_pos_1, params.link_com_pos_2
    I1 = I2 = params.link_moi
    g = params.gravity
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * jnp.cos(theta2)) + I1 + I2
    d2 = m2 * (lc2**2 + l1 * lc2 * jnp.cos(theta2)) + I2
    phi2 = m2 * lc2 * g * jnp.sin(theta1 + theta2)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * jnp.sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * jnp.sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * jnp.sin(theta1)
        + phi2
    )
    ddtheta2 = (
        torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * jnp.sin(theta2) - phi2
    ) / (m2 * lc2**2 + I2 - d2**2 / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return jnp.stack([dtheta1, dtheta2, ddtheta1, ddtheta2])


def rk4_step(
    s: Float[Array, "4"], torque: Float[Array, ""], params: AcrobotParams
) -> Float[Array, "4"]:
    """One classical Runge-Kutta step of length dt with the torque held fixed:

    k1 = f(s), k2 = f(s + dt/2 k1), k3 = f(s + dt/2 k2), k4 = f(s + dt k3),
    s' = s + dt/6 (k1 + 2 k2 + 2 k3 + k4).
    """
    dt = params.dt
    k1 = derivatives(s, torque, params)
    k2 = derivatives(s + dt / 2 * k1, torque, params)
    k3 = derivatives(s + dt / 2 * k2, torque, params)
    k4 = derivatives(s + dt * k3, torque, params)
    return s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def wrap_angle(theta: Float[Array, "*S"]) -> Float[Array, "*S"]:
    """θ − 2π ⌊(θ + π) / 2π⌋, the same angle in [−π, π); exact inside that range."""
    return theta - 2 * jnp.pi * jnp.floor((theta + jnp.pi) / (2 * jnp.pi))


def tip_height(state: AcrobotState, params: AcrobotParams) -> Float[Array, ""]:
    """Height of the free end above the pivot: −l1 cos θ1 − l2 cos(θ1 + θ2)."""
    return -params.link_length_1 * jnp.cos(state.theta1) - params.link_length_2 * jnp.cos(
        state.theta1 + state.theta2
    )


@dataclasses.dataclass(frozen=True)
class Acrobot(Environment[AcrobotState, AcrobotParams]):
    """Acrobot-v1 (see the module docstring).

    Example::

        env = Acrobot()
        params = env.default_params()
        state = env.initial(jax.random.key(0), params)
        step = env.step(jax.random.key(1), state, jnp.int32(acrobot.POSITIVE_TORQUE), params)
    """

    max_episode_steps = 500

    def default_params(self) -> AcrobotParams:
        return AcrobotParams()

    def initial(self, key: PRNGKeyArray, params: AcrobotParams) -> AcrobotState:
        """θ1, θ2, θ̇1, θ̇2 each uniform on [−0.1, 0.1], independently."""
        values = jax.random.uniform(key, (4,), minval=-INITIAL_HIGH, maxval=INITIAL_HIGH)
        return AcrobotState(*values)

    def transition(
        self,
        state: AcrobotState,
        action: Int[Array, ""],
        key: PRNGKeyArray,
        params: AcrobotParams,
    ) -> AcrobotState:
        """RK4 over dt with τ = a − 1 (+ noise), then wrap angles and clip velocities.

        ``key`` draws the torque noise; with the default (no noise) the
        transition is deterministic.
        """
        noise = jax.random.uniform(
            key, minval=-params.torque_noise_max, maxval=params.torque_noise_max
        )
        torque = (action - 1).astype(jnp.float32) + noise
        s = rk4_step(jnp.stack(state).astype(jnp.float32), torque, params)
        return AcrobotState(
            theta1=wrap_angle(s[0]),
            theta2=wrap_angle(s[1]),
            theta1_dot=jnp.clip(s[2], -params.max_vel_1, params.max_vel_1),
            theta2_dot=jnp.clip(s[3], -params.max_vel_2, params.max_vel_2),
        )

    def observation(self, state: AcrobotState, params: AcrobotParams) -> Float[Array, "6"]:
        """[cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2]."""
        return jnp.stack(
            [
                jnp.cos(state.theta1),
                jnp.sin(state.theta1),
                jnp.cos(state.theta2),
                jnp.sin(state.theta2),
                state.theta1_dot,
                state.theta2_dot,
            ]
        ).astype(jnp.float32)

    def reward(
        self,
        state: AcrobotState,
        action: Int[Array, ""],
        next_state: AcrobotState,
        params: AcrobotParams,
    ) -> Float[Array, ""]:
        """r_{t+1} = 0 if s_{t+1} is terminal, else −1."""
        return jnp.where(self.terminal(next_state, params), 0.0, -1.0).astype(jnp.float32)

    def terminal(self, state: AcrobotState, params: AcrobotParams) -> Bool[Array, ""]:
        """The tip is more than one link length (l1) above the pivot."""
        return tip_height(state, params) > params.link_length_1

    def observation_space(self, params: AcrobotParams) -> gymnasium.spaces.Box:
        high = np.array(
            [1.0, 1.0, 1.0, 1.0, params.max_vel_1, params.max_vel_2], dtype=np.float32
        )
        return gymnasium.spaces.Box(-high, high, dtype=np.float32)

    def action_space(self, params: AcrobotParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(3)
