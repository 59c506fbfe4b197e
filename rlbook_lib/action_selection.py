r"""Action-selection rules: greedy, ε-greedy and softmax (Boltzmann) over one state's values.

Every function takes the values (or preferences) of the actions of ONE state,
an array of shape [A], and returns one action or one distribution over the A
actions; vmap at the call site for a batch of states. Shared by the tabular
learners (:mod:`rlbook_lib.mc`, :mod:`rlbook_lib.td`) and by DQN.

=====================  ==========================================================
symbol                 meaning
=====================  ==========================================================
Q(s, a), ``q_values``  action values of the state, shape [A]
ε, ``epsilon``         probability of a uniformly random (valid) action, in [0, 1]
h(s, a)                action preferences (logits), shape [A]
τ, ``temperature``     softmax temperature, > 0
``valid``              optional boolean mask [A] of the actions that exist in s
=====================  ==========================================================

The ε-greedy policy (S&B §5.4) spreads ε uniformly over the valid actions and
the rest uniformly over the greedy ones,

.. math:: \pi(a \mid s) = \frac{\varepsilon}{|A|}
          + (1 - \varepsilon)\,\frac{\mathbb{1}[a \in \operatorname{argmax}_b Q(s, b)]}
                                      {|\operatorname{argmax}_b Q(s, b)|},

and the softmax policy (S&B §2.8, §13.1) weights actions by their exponentiated
preferences,

.. math:: \pi(a \mid s) = \frac{e^{h(s, a)/\tau}}{\sum_b e^{h(s, b)/\tau}}.

``temperature`` and ``epsilon`` may be traced (vmapped for sweeps), so they are
not checked here; check them at the public boundary of the algorithm
(:func:`rlbook_lib.checks.check_hyperparameters`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


def greedy(q_values: Float[Array, "A"]) -> Int[Array, ""]:
    """argmax_a Q(s, a); ties go to the lowest index (deterministic, as ``jnp.argmax``)."""
    return jnp.argmax(q_values)


def _valid_or_all(q_values, valid):
    return jnp.ones(q_values.shape, bool) if valid is None else valid


def epsilon_greedy_probabilities(q_values: Float[Array, "A"], epsilon,
                                 valid: Bool[Array, "A"] | None = None) -> Float[Array, "A"]:
    """π(a | s) = ε/|A| + (1 − ε) 1[a greedy] / (number of greedy actions); with
    ``valid``, |A| and the greedy actions count only the valid actions (others get 0)."""
    valid = _valid_or_all(q_values, valid)
    best = valid & (q_values == jnp.max(jnp.where(valid, q_values, -jnp.inf)))
    best = best.astype(jnp.float32)
    return epsilon * valid / jnp.sum(valid) + (1.0 - epsilon) * best / jnp.sum(best)


def epsilon_greedy(key: PRNGKeyArray, q_values: Float[Array, "A"], epsilon,
                   valid: Bool[Array, "A"] | None = None) -> Int[Array, ""]:
    """Sample a ~ :func:`epsilon_greedy_probabilities`: with probability ε a uniform
    (valid) action, possibly a greedy one, otherwise a greedy action, ties broken at random.

    One draw of two uniforms (u, u'): the candidates are all (valid) actions if
    u < ε, else the greedy ones, and the ⌊u' m⌋-th of the m candidates is taken.
    Unlike :func:`greedy`, ties among greedy actions are broken uniformly at
    random, so an all-equal Q (e.g. at initialisation) does not favour action 0.
    """
    u_explore, u_pick = jax.random.uniform(key, (2,))
    valid = _valid_or_all(q_values, valid)
    best = jnp.max(jnp.where(valid, q_values, -jnp.inf))
    candidates = valid & ((u_explore < epsilon) | (q_values == best))
    m = jnp.sum(candidates)
    j = jnp.minimum(jnp.floor(u_pick * m), m - 1)
    return jnp.argmax(jnp.cumsum(candidates) > j)


def softmax_probabilities(preferences: Float[Array, "A"], temperature=1.0) -> Float[Array, "A"]:
    """π(a | s) = exp(h(s, a)/τ) / Σ_b exp(h(s, b)/τ), computed stably (max subtracted)."""
    return jax.nn.softmax(preferences / temperature)


def softmax(key: PRNGKeyArray, preferences: Float[Array, "A"], temperature=1.0) -> Int[Array, ""]:
    """Sample a ~ :func:`softmax_probabilities` (``jax.random.categorical`` on h/τ)."""
    return jax.random.categorical(key, preferences / temperature)
