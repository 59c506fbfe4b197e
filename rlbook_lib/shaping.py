r"""Reward design on tabular MDPs: potential-based shaping, a naive bonus, and an exploration bonus.

**Extra rewards on transitions.** An extra reward F(s, s') for every transition
turns an :class:`~rlbook_lib.mdp.MDP` into one with

.. math:: r'(s, a) = r(s, a) + \sum_{s'} P(s' \mid s, a)\, F(s, s')

(:func:`add_reward`). Two kinds of F:

* **potential-based** (Ng, Harada & Russell, 1999):
  :math:`F(s, s') = \gamma_{s'} \Phi(s') - \Phi(s)`, with the arrival discount
  :math:`\gamma_{s'} = \gamma (1 - \mathrm{terminal}[s'])` of :mod:`rlbook_lib.mdp`
  (so Φ counts as 0 once the episode has ended). Along any episode the extra
  rewards telescope to :math:`-\Phi(S_0)`, so :math:`v'_\pi = v_\pi - \Phi` for
  every π and :math:`q'_*(s, a) = q_*(s, a) - \Phi(s)`: the optimal policies are
  the same (:func:`potential_reward`, :func:`potential_based`).
* **a progress bonus** :math:`F(s, s') = \xi\, \mathbb{1}[\Phi(s') > \Phi(s)]`, which
  pays for moving closer to the goal but charges nothing for moving away. A loop
  away and back then earns ξ every two steps, forever (:func:`progress_bonus`).

**An exploration bonus.** :func:`q_learning` runs tabular Q-learning on samples
from an MDP and adds :math:`c / \sqrt{N(s, a)}` to each reward, N(s, a) the
visits of (s, a) so far, this one included (Strehl & Littman's MBIE-EB). Rarely
tried actions look better than they are until they have been tried.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import bandits, checks, td
from rlbook_lib import mdp as mdp_lib
from rlbook_lib.mdp import MDP


def _check_state_vector(mdp: MDP, name: str, x) -> None:
    if np.shape(x) != mdp.initial.shape:
        raise ValueError(f"{name} must have shape [S] = {mdp.initial.shape}, got {np.shape(x)}")


def add_reward(mdp: MDP, extra: Float[Array, "S S"]) -> MDP:
    """The MDP with r'(s, a) = r(s, a) + Σ_s' P(s' | s, a) F(s, s'), F = ``extra``."""
    checks.check_mdp(mdp)
    S = mdp.initial.shape[0]
    if np.shape(extra) != (S, S):
        raise ValueError(f"extra must have shape [S, S] = {(S, S)}, got {np.shape(extra)}")
    R = mdp.R + jnp.einsum("sat,st->sa", mdp.P, jnp.asarray(extra, jnp.float32))
    return mdp._replace(R=R)


def potential_reward(mdp: MDP, phi: Float[Array, "S"]) -> Float[Array, "S S"]:
    """F(s, s') = γ_s' Φ(s') − Φ(s), with γ_s' = γ (1 − terminal[s'])."""
    checks.check_mdp(mdp)
    _check_state_vector(mdp, "phi", phi)
    phi = jnp.asarray(phi, jnp.float32)
    return mdp_lib.continuation(mdp)[None, :] * phi[None, :] - phi[:, None]


def potential_based(mdp: MDP, phi: Float[Array, "S"]) -> MDP:
    """The potential-shaped MDP: same optimal policies, v'_π = v_π − Φ for every π."""
    return add_reward(mdp, potential_reward(mdp, phi))


def progress_bonus(phi: Float[Array, "S"], bonus) -> Float[Array, "S S"]:
    """F(s, s') = ξ 1[Φ(s') > Φ(s)]: a bonus for progress, nothing for regress (not potential-based)."""
    phi = jnp.asarray(phi, jnp.float32)
    return bonus * (phi[None, :] > phi[:, None]).astype(jnp.float32)


def grid_distances(world) -> np.ndarray:
    """Fewest moves from each state of a :class:`~rlbook_lib.envs.gridworld.Gridworld` to a goal cell.

    Breadth-first search over intended moves (slips ignored); pits and goals are not
    passed through. Unreachable states get the largest finite distance plus one.
    """
    types = world.cell_types()
    distance = np.full(world.num_states, -1)
    queue = collections.deque(s for s in range(world.num_states) if types[s] == "G")
    for s in queue:
        distance[s] = 0
    while queue:
        s = queue.popleft()
        for action in range(4):  # moves are reversible, so neighbours of s are one move from s
            t = world.state(*world._move(*world.cell(s), action))
            if distance[t] < 0 and types[t] not in "GX":
                distance[t] = distance[s] + 1
                queue.append(t)
    return np.where(distance < 0, distance.max() + 1, distance)


# ------------------------------------------------------------------ sparse exploration


def sparse_chain(length: int, gamma) -> MDP:
    """A chain 0, 1, ..., L−1 with the goal L−1: 'forward' (1) moves on, 'back' (0) returns to 0.

    Only the step into the goal pays (+1) and ends the episode. A uniformly random
    agent needs L − 1 forward moves in a row, probability 2^{-(L−1)} from the start.
    """
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an int >= 2, got {length!r}")
    S = length
    P = np.zeros((S, 2, S))
    for s in range(S):
        P[s, 0, 0] = 1.0
        P[s, 1, min(s + 1, S - 1)] = 1.0
    P[S - 1, :, :] = 0.0
    P[S - 1, :, S - 1] = 1.0  # the goal is absorbing (and terminal)
    R = np.zeros((S, 2))
    R[S - 2, 1] = 1.0
    initial = np.eye(S)[0]
    return mdp_lib.make_mdp(P, R, gamma, initial, np.arange(S) == S - 1)


@dataclasses.dataclass(frozen=True)
class ExplorationConfig:
    """Q-learning with an optional count-based bonus. Float fields may be vmapped."""

    num_steps: int = 5_000
    """Environment steps of the run, all episodes together."""
    horizon: int = 50
    """Time limit H of an episode (a truncation: the last step still bootstraps)."""
    epsilon: float = 0.1
    """ε of the ε-greedy behaviour (ties among greedy actions broken at random)."""
    step_size: float = 0.5
    """α, a constant step size."""
    bonus_scale: float = 0.0
    """c in the bonus c / sqrt(N(s, a)); 0 turns it off. Q starts at c / (1 − γ), the value of
    an untried action's first bonus kept forever, so that untried actions look best."""

    def __post_init__(self):
        checks.check_positive_int("num_steps", self.num_steps)
        checks.check_positive_int("horizon", self.horizon)
        checks.check_hyperparameters(epsilon=self.epsilon, step_size=self.step_size)
        if isinstance(self.bonus_scale, (int, float)) and self.bonus_scale < 0:
            raise ValueError(f"bonus_scale must be >= 0, got {self.bonus_scale}")


class ExplorationTrace(NamedTuple):
    q: Float[Array, "S A"]
    """Q after the last step (learned on reward plus bonus)."""
    rewards: Float[Array, "T"]
    """The MDP's own reward r(s_t, a_t) of every step (without the bonus)."""
    terminated: Array
    """Whether step t arrived in a terminal state (in :func:`sparse_chain`: reached the goal), [T]."""
    counts: Int[Array, "S A"]
    """N(s, a) at the end."""


def q_learning(config: ExplorationConfig, mdp: MDP, key: PRNGKeyArray) -> ExplorationTrace:
    """Q-learning on transitions sampled from ``mdp``, on the reward r + c / sqrt(N(s, a)).

    Target r + c/√N + γ_{s'} max_a' Q(s', a') (:func:`rlbook_lib.td.q_learning_target`);
    a new episode starts from p_0 after a terminal state or H steps.
    """
    checks.check_mdp(mdp)
    S, A = mdp.R.shape
    continuation = mdp_lib.continuation(mdp)

    def step(carry, key):
        q, counts, s, t = carry
        k_act, k_next, k_reset = jax.random.split(key, 3)
        explore = jax.random.uniform(k_act) < config.epsilon
        a = jnp.where(explore, jax.random.randint(jax.random.fold_in(k_act, 1), (), 0, A),
                      bandits.argmax_random_tie(jax.random.fold_in(k_act, 2), q[s]))
        s_next = jax.random.categorical(k_next, jnp.log(mdp.P[s, a]))
        counts = counts.at[s, a].add(1)
        bonus = config.bonus_scale / jnp.sqrt(counts[s, a].astype(jnp.float32))
        target = td.q_learning_target(mdp.R[s, a] + bonus, continuation[s_next], q[s_next])
        q = td.update(q, (s, a), target, config.step_size)
        restart = mdp.terminal[s_next] | (t + 1 >= config.horizon)
        s0 = jax.random.categorical(k_reset, jnp.log(mdp.initial))
        next_carry = (q, counts, jnp.where(restart, s0, s_next), jnp.where(restart, 0, t + 1))
        return next_carry, (mdp.R[s, a], mdp.terminal[s_next])

    key_start, key_run = jax.random.split(key)
    s0 = jax.random.categorical(key_start, jnp.log(mdp.initial))
    q0 = jnp.full((S, A), config.bonus_scale / (1.0 - mdp.gamma), jnp.float32)
    init = (q0, jnp.zeros((S, A), jnp.int32), s0, jnp.int32(0))
    (q, counts, _, _), (rewards, terminated) = jax.lax.scan(step, init, jax.random.split(key_run, config.num_steps))
    return ExplorationTrace(q, rewards, terminated, counts)
