"""CartPole-v1: balance a pole on a cart, as gymnasium's classic environment.

A pole of mass m_p and half-length l is hinged on a cart of mass m_c that moves
on a frictionless track. Each step pushes the cart with a force F = ±10 N
(a_t = 0 pushes left, a_t = 1 right). With M = m_c + m_p the total mass and
m_p l the pole's mass times half-length (both *computed* from the parameters,
never stored), the accelerations of Barto, Sutton & Anderson (1983) are

    temp = (F + m_p l θ̇² sin θ) / M
    θ̈    = (g sin θ − cos θ · temp) / (l (4/3 − m_p cos² θ / M))
    ẍ    = temp − m_p l θ̈ cos θ / M

and the state s = (x, ẋ, θ, θ̇) moves by one explicit Euler step of τ = 0.02 s:

    x' = x + τ ẋ,   ẋ' = ẋ + τ ẍ,   θ' = θ + τ θ̇,   θ̇' = θ̇ + τ θ̈.

θ = 0 is upright and θ > 0 leans right. The observation is the state itself.
Every step pays r_{t+1} = +1, including the one that ends the episode. A state
is terminal when the cart leaves |x| ≤ 2.4 or the pole leans past
|θ| ≤ 12° (strict inequalities, as in gymnasium). The initial state is uniform
on [−0.05, 0.05]⁴, and episodes are truncated after ``max_episode_steps = 500``
steps (gymnasium's registered limit for CartPole-v1; applied by the caller).

Why the derived constants are properties: gymnasium's JAX port
(``gymnasium.envs.phys2d.cartpole``) stores ``polemass_length`` as a field and
sets it to m_p + l = 0.6 instead of m_p l = 0.05. The parity test in
``tests/test_envs_classic_control.py`` catches exactly that mistake.
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

LEFT = 0
RIGHT = 1
INITIAL_HIGH = 0.05
"""Every state variable starts uniform on [−INITIAL_HIGH, INITIAL_HIGH]."""


class CartPoleState(NamedTuple):
    x: Float[Array, ""]
    """Cart position (m)."""
    x_dot: Float[Array, ""]
    """Cart velocity ẋ (m/s)."""
    theta: Float[Array, ""]
    """Pole angle θ from the vertical (rad), positive leaning right."""
    theta_dot: Float[Array, ""]
    """Pole angular velocity θ̇ (rad/s)."""


@struct.dataclass
class CartPoleParams:
    gravity: Float[Array, ""] | float = 9.8
    """g (m/s²)."""
    masscart: Float[Array, ""] | float = 1.0
    """m_c, mass of the cart (kg)."""
    masspole: Float[Array, ""] | float = 0.1
    """m_p, mass of the pole (kg)."""
    length: Float[Array, ""] | float = 0.5
    """l, HALF the pole's length (m): the distance from the hinge to its centre."""
    force_mag: Float[Array, ""] | float = 10.0
    """|F|, the force of one push (N)."""
    tau: Float[Array, ""] | float = 0.02
    """τ, the time of one Euler step (s)."""
    theta_threshold_radians: Float[Array, ""] | float = 12 * 2 * math.pi / 360
    """The episode terminates once |θ| exceeds this (12°)."""
    x_threshold: Float[Array, ""] | float = 2.4
    """The episode terminates once |x| exceeds this (m)."""

    @property
    def total_mass(self) -> Float[Array, ""] | float:
        """M = m_c + m_p."""
        return self.masspole + self.masscart

    @property
    def polemass_length(self) -> Float[Array, ""] | float:
        """m_p l, the pole's mass times its half-length (a product, not a sum)."""
        return self.masspole * self.length


def accelerations(
    state: CartPoleState, force: Float[Array, ""], params: CartPoleParams
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """(ẍ, θ̈) under ``force``, from the equations in the module docstring."""
    costheta = jnp.cos(state.theta)
    sintheta = jnp.sin(state.theta)
    total_mass = params.total_mass
    temp = (
        force + params.polemass_length * jnp.square(state.theta_dot) * sintheta
    ) / total_mass
    thetaacc = (params.gravity * sintheta - costheta * temp) / (
        params.length * (4.0 / 3.0 - params.masspole * jnp.square(costheta) / total_mass)
    )
    xacc = temp - params.polemass_length * thetaacc * costheta / total_mass
    return xacc, thetaacc


@dataclasses.dataclass(frozen=True)
class CartPole(Environment[CartPoleState, CartPoleParams]):
    """CartPole-v1 (see the module docstring).

    Example::

        env = CartPole()
        params = env.default_params()
        state = env.initial(jax.random.key(0), params)
        step = env.step(jax.random.key(1), state, jnp.int32(cartpole.RIGHT), params)
    """

    max_episode_steps = 500

    def default_params(self) -> CartPoleParams:
        return CartPoleParams()

    def initial(self, key: PRNGKeyArray, params: CartPoleParams) -> CartPoleState:
        """x, ẋ, θ, θ̇ each uniform on [−0.05, 0.05], independently."""
        values = jax.random.uniform(key, (4,), minval=-INITIAL_HIGH, maxval=INITIAL_HIGH)
        return CartPoleState(*values)

    def transition(
        self,
        state: CartPoleState,
        action: Int[Array, ""],
        key: PRNGKeyArray,
        params: CartPoleParams,
    ) -> CartPoleState:
        """One Euler step of τ under F = +|F| if a = 1 else −|F|. Deterministic."""
        force = jnp.where(action == RIGHT, params.force_mag, -params.force_mag)
        xacc, thetaacc = accelerations(state, force, params)
        return CartPoleState(
            x=state.x + params.tau * state.x_dot,
            x_dot=state.x_dot + params.tau * xacc,
            theta=state.theta + params.tau * state.theta_dot,
            theta_dot=state.theta_dot + params.tau * thetaacc,
        )

    def observation(
        self, state: CartPoleState, params: CartPoleParams
    ) -> Float[Array, "4"]:
        """[x, ẋ, θ, θ̇]."""
        return jnp.stack(state).astype(jnp.float32)

    def reward(
        self,
        state: CartPoleState,
        action: Int[Array, ""],
        next_state: CartPoleState,
        params: CartPoleParams,
    ) -> Float[Array, ""]:
        """r_{t+1} = +1 for every step, the terminating one included."""
        return jnp.ones((), dtype=jnp.float32)

    def terminal(self, state: CartPoleState, params: CartPoleParams) -> Bool[Array, ""]:
        """|x| > 2.4 or |θ| > 12°."""
        return (
            (state.x < -params.x_threshold)
            | (state.x > params.x_threshold)
            | (state.theta < -params.theta_threshold_radians)
            | (state.theta > params.theta_threshold_radians)
        )

    def observation_space(self, params: CartPoleParams) -> gymnasium.spaces.Box:
        """Twice the termination limits for x and θ, so a terminal observation
        still lies in the space; the velocities are unbounded."""
        high = np.array(
            [
                2 * params.x_threshold,
                np.inf,
                2 * params.theta_threshold_radians,
                np.inf,
            ],
            dtype=np.float32,
        )
        return gymnasium.spaces.Box(-high, high, dtype=np.float32)

    def action_space(self, params: CartPoleParams) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(2)
