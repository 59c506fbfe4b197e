r"""Action distributions of stochastic policies: categorical and diagonal Gaussian.

A policy network outputs the *parameters* of π_θ(· | s); the algorithms
(:mod:`rlbook_lib.a2c`, :mod:`rlbook_lib.ppo`, :mod:`rlbook_lib.trpo`) only ever
call the five methods below, so the same code learns with discrete and with
continuous actions.

=====================  ==================================  ===============================================
method                 categorical (logits z ∈ ℝ^A)        diagonal Gaussian (μ, log σ ∈ ℝ^D)
=====================  ==================================  ===============================================
``sample(key)``        a ~ softmax(z)                      a = μ + σ ⊙ ε,  ε ~ N(0, I)
``log_prob(a)``        z_a − log Σ_b e^{z_b}               −½ Σ_d [((a_d − μ_d)/σ_d)² + 2 log σ_d + log 2π]
``entropy()``          −Σ_a p_a log p_a                    Σ_d (log σ_d + ½ log(2πe))
``kl(other)``          Σ_a p_a (log p_a − log q_a)         Σ_d [log(σ'_d/σ_d) + (σ_d² + (μ_d − μ'_d)²)/(2σ'_d²) − ½]
``mode()``             argmax_a z_a                        μ
=====================  ==================================  ===============================================

``p.kl(q)`` is KL(p ‖ q) = E_{a~p}[log p(a) − log q(a)], in nats. Both classes
are NamedTuples, hence pytrees: a batch of distributions is the same class with
leading batch axes ``[*B]`` on every field, and ``jax.vmap`` maps over them.
Every method also works on such a batch directly (the event axis is the last
one), returning one value per distribution, shape ``[*B]``.

Example::

    pi = distributions.Categorical(jnp.log(jnp.array([0.5, 0.25, 0.25])))
    pi.entropy()  # 1.0397 = 1.5 log 2
    g = distributions.DiagGaussian(jnp.zeros(2), jnp.zeros(2))
    g.log_prob(jnp.zeros(2))  # −log 2π
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Categorical(NamedTuple):
    """π(a | s) = softmax(z)_a over A actions; actions are ints in {0, …, A − 1}."""

    logits: Float[Array, "*B A"]
    """z, unnormalised log-probabilities (any constant shift gives the same distribution)."""

    @property
    def log_probs(self) -> Float[Array, "*B A"]:
        """log p_a = z_a − log Σ_b e^{z_b} for every action."""
        return jax.nn.log_softmax(self.logits, axis=-1)

    def sample(self, key: PRNGKeyArray) -> Int[Array, "*B"]:
        """One action per distribution."""
        return jax.random.categorical(key, self.logits, axis=-1)

    def log_prob(self, action: Int[Array, "*B"]) -> Float[Array, "*B"]:
        """log π(a | s) of the given actions (the distribution's batch axes broadcast against theirs)."""
        index = jnp.asarray(action, jnp.int32)[..., None]
        shape = jnp.broadcast_shapes(index.shape[:-1], self.logits.shape[:-1])
        log_p = jnp.broadcast_to(self.log_probs, shape + self.logits.shape[-1:])
        return jnp.take_along_axis(log_p, jnp.broadcast_to(index, shape + (1,)), axis=-1)[..., 0]

    def entropy(self) -> Float[Array, "*B"]:
        """H = −Σ_a p_a log p_a (nats); log A for the uniform distribution."""
        log_p = self.log_probs
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

    def kl(self, other: Categorical) -> Float[Array, "*B"]:
        """KL(self ‖ other) = Σ_a p_a (log p_a − log q_a) ≥ 0."""
        log_p = self.log_probs
        return jnp.sum(jnp.exp(log_p) * (log_p - other.log_probs), axis=-1)

    def mode(self) -> Int[Array, "*B"]:
        """The most likely action (the greedy action of the policy)."""
        return jnp.argmax(self.logits, axis=-1)


class DiagGaussian(NamedTuple):
    """π(a | s) = N(μ, diag σ²) on ℝ^D; actions are float vectors [D]."""

    mean: Float[Array, "*B D"]
    """μ."""
    log_std: Float[Array, "*B D"]
    """log σ (a state-independent log σ is broadcast to the batch by the network)."""

    def sample(self, key: PRNGKeyArray) -> Float[Array, "*B D"]:
        """a = μ + σ ⊙ ε with ε ~ N(0, I)."""
        noise = jax.random.normal(key, jnp.shape(self.mean))
        return self.mean + jnp.exp(self.log_std) * noise

    def log_prob(self, action: Float[Array, "*B D"]) -> Float[Array, "*B"]:
        """log π(a | s) = Σ_d log N(a_d; μ_d, σ_d²)."""
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * jnp.square(z) - self.log_std - _HALF_LOG_2PI, axis=-1)

    def entropy(self) -> Float[Array, "*B"]:
        """H = Σ_d (log σ_d + ½ log(2πe)) (nats)."""
        per_dim = self.log_std + 0.5 + _HALF_LOG_2PI
        return jnp.sum(jnp.broadcast_to(per_dim, jnp.shape(self.mean)), axis=-1)

    def kl(self, other: DiagGaussian) -> Float[Array, "*B"]:
        """KL(self ‖ other) = Σ_d [log(σ'_d/σ_d) + (σ_d² + (μ_d − μ'_d)²)/(2σ'_d²) − ½]."""
        var_ratio = jnp.exp(2 * (self.log_std - other.log_std))
        mean_term = jnp.square((self.mean - other.mean) * jnp.exp(-other.log_std))
        per_dim = other.log_std - self.log_std + 0.5 * (var_ratio + mean_term) - 0.5
        return jnp.sum(jnp.broadcast_to(per_dim, jnp.shape(self.mean)), axis=-1)

    def mode(self) -> Float[Array, "*B D"]:
        """μ, the most likely action."""
        return self.mean


Distribution = Categorical | DiagGaussian
"""Either family; both have ``sample``, ``log_prob``, ``entropy``, ``kl`` and ``mode``."""
