"""Small tabular MDPs shared by the policy-gradient and score-function tests."""

import jax
import numpy as np

from rlbook_lib import mdp as mdp_lib


def random_theta(key, num_states, num_actions):
    return jax.random.normal(key, (num_states, num_actions))


def chain_with_terminal(gamma):
    """0 -> 1 -> 2 whatever the action; 2 is terminal. r(0, ·) = 1, r(1, ·) = 2, r(2, ·) = 5."""
    P = np.zeros((3, 2, 3))
    P[0, :, 1] = P[1, :, 2] = P[2, :, 2] = 1.0
    R = [[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]]
    return mdp_lib.make_mdp(P, R, gamma, initial=[1.0, 0.0, 0.0], terminal=[False, False, True])


def episodic_mdp(gamma=0.9):
    """A random 5-state MDP whose state 4 is terminal; episodes last about 14 steps."""
    base = mdp_lib.random_mdp(jax.random.key(7), 5, 3, gamma)
    P = np.asarray(base.P, np.float64)
    P[:, :, 4] *= 0.2  # enter the terminal state less often
    P /= P.sum(axis=-1, keepdims=True)
    return mdp_lib.make_mdp(P, base.R, gamma, initial=[0.25] * 4 + [0.0], terminal=[False] * 4 + [True])
