"""Pendulum-v1: swing a pendulum up and hold it upright, as gymnasium's classic environment.

A rigid rod of mass m and length l hangs from a frictionless pivot; the action is
a torque u ∈ [−u_max, u_max] at the pivot (a float vector of shape [1]; larger
actions are clipped). θ = 0 is upright, θ = ±π hanging down, and θ̇ is the angular
velocity. With g the gravity and Δt the time step, one semi-implicit Euler step is

    θ̇' = clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) Δt,  −θ̇_max, θ̇_max)
    θ'  = θ + θ̇' Δt

(θ itself is not wrapped). The reward depends on the state *before* the step:

    r_{t+1} = −(norm(θ)² + 0.1 θ̇² + 0.001 u²),    norm(θ) = ((θ + π) mod 2π) − π,

so it lies in [−(π² + 0.1 · 8² + 0.001 · 2²), 0] ≈ [−16.27, 0], and it is 0 only
when the pendulum is upright, at rest, with no torque. The observation is
[cos θ, sin θ, θ̇]. No state is terminal: every episode is truncated after
``max_episode_steps = 200`` steps (gymnasium's registered limit, applied by the
caller), so value targets always bootstrap at the end of an episode. The initial
state has θ uniform on [−π, π] and θ̇ uniform on [−1, 1].

The constants are gymnasium's: g = 10, m = l = 1, Δt = 0.05, θ̇_max = 8, u_max = 2.
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
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from rlbook_lib.envs.base import Environment

INITIAL_HIGH = (math.pi, 1.0)
"""θ_0 is uniform on [−π, π] and θ̇_0 on [−1, 1]."""


class PendulumState(NamedTuple):
    theta: Float[Array, ""]
    """θ, the angle from upright (rad), not wrapped."""
    theta_dot: Float[Array, ""]
    """θ̇, the angular velocity (rad/s)."""


@struct.dataclass
class PendulumParams:
    max_speed: Float[Array, ""] | float = 8.0
    """θ̇_max: the angular velocity is clipped to [−θ̇_max, θ̇_max] (rad/s)."""
    max_torque: Float[Array, ""] | float = 2.0
    """u_max: the torque is clipped to [−u_max, u_max] (N m)."""
    dt: Float[Array, ""] | float = 0.05
    """Δt, the time of one step (s)."""
    g: Float[Array, ""] | float = 10.0
    """g, gravity (m/s²)."""
    m: Float[Array, ""] | float = 1.0
    """m, the rod's mass (kg)."""
    l: Float[Array, ""] | float = 1.0  # noqa: E741  gymnasium's name
    """l, the rod's length (m)."""


def angle_normalize(theta: Float[Array, ""]) -> Float[Array, ""]:
    """norm(θ) = ((θ + π) mod 2π) − π, the angle in [−π, π)."""
    return jnp.mod(theta + jnp.pi, 2 * jnp.pi) - jnp.pi


def _torque(action: Float[Array, "1"], params: PendulumParams) -> Float[Array, ""]:
    return jnp.clip(jnp.reshape(action, (-1,))[0], -params.max_torque, params.max_torque)


@dataclasses.dataclass(frozen=True)
class Pendulum(Environment[PendulumState, PendulumParams]):
    """Pendulum-v1 (see the module docstring).

    Example::

        env = Pendulum()
        params = env.default_params()
        state = env.initial(jax.random.key(0), params)
        step = env.step(jax.random.key(1), state, jnp.array([1.0]), params)
    """

    max_episode_steps = 200

    def default_params(self) -> PendulumParams:
        return PendulumParams()

    def initial(self, key: PRNGKeyArray, params: PendulumParams) -> PendulumState:
        """θ uniform on [−π, π], θ̇ uniform on [−1, 1], independently."""
        high = jnp.array(INITIAL_HIGH, jnp.float32)
        values = jax.random.uniform(key, (2,), minval=-high, maxval=high)
        return PendulumState(*values)

    def transition(self, state: PendulumState, action: Float[Array, "1"], key: PRNGKeyArray,
                   params: PendulumParams) -> PendulumState:
        """One semi-implicit Euler step of Δt under the clipped torque. Deterministic."""
        u = _torque(action, params)
        acceleration = (3 * params.g / (2 * params.l) * jnp.sin(state.theta)
                        + 3.0 / (params.m * params.l**2) * u)
        theta_dot = jnp.clip(state.theta_dot + acceleration * params.dt, -params.max_speed, params.max_speed)
        return PendulumState(theta=state.theta + theta_dot * params.dt, theta_dot=theta_dot)

    def observation(self, state: PendulumState, params: PendulumParams) -> Float[Array, "3"]:
        """[cos θ, sin θ, θ̇]."""
        return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot]).astype(jnp.float32)

    def reward(self, state: PendulumState, action: Float[Array, "1"], next_state: PendulumState,
               params: PendulumParams) -> Float[Array, ""]:
        """r_{t+1} = −(norm(θ_t)² + 0.1 θ̇_t² + 0.001 u²), from the state before the step."""
        u = _torque(action, params)
        cost = jnp.square(angle_normalize(state.theta)) + 0.1 * jnp.square(state.theta_dot) + 0.001 * u**2
        return (-cost).astype(jnp.float32)

    def terminal(self, state: PendulumState, params: PendulumParams) -> Bool[Array, ""]:
        """Never: Pendulum's episodes only end at the time limit."""
        return jnp.zeros((), dtype=bool)

    def observation_space(self, params: PendulumParams) -> gymnasium.spaces.Box:
        high = np.array([1.0, 1.0, params.max_speed], dtype=np.float32)
        return gymnasium.spaces.Box(-high, high, dtype=np.float32)

    def action_space(self, params: PendulumParams) -> gymnasium.spaces.Box:
        return gymnasium.spaces.Box(-params.max_torque, params.max_torque, shape=(1,), dtype=np.float32)
