"""MountainCar-v0: drive an underpowered car up a hill, as gymnasium's classic environment.

A car sits in a valley whose height is h(x) = 0.45 sin(3x) + 0.55. Its engine is
too weak to climb the right hill directly; it must first back up the left hill
to gather momentum (Moore 1990; Sutton & Barto, Example 10.1). Actions are
0 = push left, 1 = no push, 2 = push right. In one step (Δt = 1)

    v' = clip(v + (a − 1) · force − gravity · cos(3x),  −v_max, v_max)
    x' = clip(x + v',  x_min, x_max)
    v' ← 0  if x' = x_min and v' < 0       (an inelastic hit on the left wall)

with force = 0.001, gravity = 0.0025, v_max = 0.07, [x_min, x_max] = [−1.2, 0.6].
The observation is [x, v]. Every step pays r_{t+1} = −1, so the return counts
the steps taken. A state is terminal once x ≥ 0.5 (the flag) and v ≥ 0. The
car starts at rest at x_0 uniform on [−0.6, −0.4], and episodes are truncated
after ``max_episode_steps = 200`` steps (gymnasium's registered limit;
applied by the caller). A random policy almost never reaches the flag within
200 steps, which is why this is a classic exploration problem.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from rlbook_lib.envs.base import Environment

LEFT = 0
NOOP = 1
RIGHT = 2
INITIAL_POSITION = (-0.6, -0.4)
"""x_0 is uniform on this interval; v_0 = 0."""


class MountainCarState(NamedTuple):
    position: Float[Array, ""]
    """x, the car's position along the horizontal axis."""
    velocity: Float[Array, ""]
    """v, its velocity (position units per step)."""


@struct.dataclass
class MountainCarParams:
    min_position: Float[Array, ""] | float = -1.2
    """x_min, the left wall."""
    max_position: Float[Array, ""] | float = 0.6
    """x_max, the right end of the track."""
    max_speed: Float[Array, ""] | float = 0.07
    """v_max: the velocity is clipped to [−v_max, v_max]."""
    goal_position: Float[Array, ""] | float = 0.5
    """The flag: reaching x ≥ goal_position (with v ≥ goal_velocity) ends the episode."""
    goal_velocity: Float[Array, ""] | float = 0.0
    """The least velocity at the flag that ends the episode."""
    force: Float[Array, ""] | float = 0.001
    """Velocity change per step from the engine."""
    gravity: Float[Array, ""] | float = 0.0025
    """Velocity change per step from gravity on the steepest slope."""


def height(position: Float[Array, "*S"]) -> Float[Array, "*S"]:
    """h(x) = 0.45 sin(3x) + 0.55, the shape of the valley."""
    return jnp.sin(3 * position) * 0.45 + 0.55


@dataclasses.dataclass(frozen=True)
class MountainCar(Environment[MountainCarState, MountainCarParams]):
    """MountainCar-v0 (see the module docstring).

    Example::

        env = MountainCar()
        params = env.default_params()
        state = env.initial(jax.random.key(0), params)
        step = env.step(jax.random.key(1), state, jnp.int32(mountain_car.RIGHT), params)
    """

    max_episode_steps = 200

    def default_params(self) -> MountainCarParams:
        return MountainCarParams()

    def initial(self, key: PRNGKeyArray, params: MountainCarParams) -> MountainCarState:
        """x_0 uniform on [−0.6, −0.4], v_0 = 0."""
        low, high = INITIAL_POSITION
        position = jax.random.uniform(key, (), minval=low, maxval=high)
        return MountainCarState(position, jnp.zeros((), dtype=jnp.float32))

    def transition(
        self,
        state: MountainCarState,
        action: Int[Array, ""],
        key: PRNGKeyArray,
        params: MountainCarParams,
    ) -> MountainCarState:
        """The update of the module docstring. Deterministic."""
        velocity = state.velocity + (
            (action - 1) * params.force + jnp.cos(3 * state.position) * (-params.gravity)
        )
        velocity = jnp.clip(velocity, -params.max_speed, params.max_speed)
        position = jnp.clip(
            state.position + velocity, params.min_position, params.max_position
        )
        hit_left_wall = (position == params.min_position) & (velocity < 0)
        velocity = jnp.where(hit_left_wall, 0.0, velocity)
        return MountainCarState(position, velocity.astype(jnp.float32))

    def observation(
        self, state: MountainCarState, params: MountainCarParams
    ) -> Float[Array, "2"]:
        """[x, v]."""
        return jnp.stack(state).astype(jnp.float32)

    def reward(
        self,
        state: MountainCarState,
        action: Int[Array, ""],
        next_state: MountainCarState,
        params: MountainCarParams,
    ) -> Float[Array, ""]:
        """r_{t+1} = −1 for every step, the one reaching the flag included."""
        return -jnp.ones((), dtype=jnp.float32)

    def terminal(
        self, state: MountainCarState, params: MountainCarParams
    ) -> Bool[Array, ""]:
        """x ≥ goal_position and v ≥ goal_velocity."""
        return (state.position >= params.goal_position) & (
            state.velocity >= params.goal_velocity
        )

    def observation_space(self, params: MountainCarParams) -> gymnasium.spaces.Box:
        low = np.array([params.min_position, -params.max_speed], dtype=np.float32)
        high = np.array([params.max_position, params.max_speed], dtype=np.float32)
        return gymnasium.spaces.Box(low, high, dtype=np.float32)

    def action_space(self, params: MountainCarParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(3)
