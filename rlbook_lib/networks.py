r"""Small neural networks for policies and value functions (Flax ``linen``).

Two multilayer perceptrons, the same trunk with a different head:

==================  =======================  ==========  ==========================================
network             call                     output      meaning
==================  =======================  ==========  ==========================================
:class:`Policy`     ``apply(params, obs)``   ``[*B, A]`` logits: π_θ(a | s) = softmax(logits)_a
:class:`Value`      ``apply(params, obs)``   ``[*B]``    v_w(s), an estimate of v_π(s)
==================  =======================  ==========  ==========================================

**Inputs.** A ``Discrete(n)`` observation (an integer, such as the walk's cell)
is one-hot encoded into n inputs; a ``Box`` observation (a float vector, such as
CartPole's [x, ẋ, θ, θ̇]) is used as it is. :func:`num_categories` reads which
from the environment's observation space. With no hidden layers and one-hot
inputs, :class:`Policy` is exactly the tabular softmax policy of
:mod:`rlbook_lib.policy_gradient`, with preferences θ[s] = kernel[s] + bias.

**Shapes.** Every network works on one unbatched observation (shape ``[]`` for
a discrete one, ``[D]`` for a vector) and equally on any leading batch axes
``[*B]``, because a ``Dense`` layer acts on the last axis only.

**Initialisation.** Hidden layers use Flax's defaults (LeCun-normal kernels,
zero biases) and tanh. The policy's last layer starts 10 times smaller (its
variance 100 times), so the first policy is close to uniform over the actions,
a common choice that keeps early exploration broad. Parameters are a pure
function of the key passed to ``init``.

Example::

    net = networks.Policy(num_actions=2, hidden_sizes=(32,), num_categories=11)
    params = net.init(jax.random.key(0), jnp.int32(3))
    logits = net.apply(params, jnp.arange(11))  # [11, 2], one row per cell
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

POLICY_OUTPUT_SCALE = 0.01
"""Variance scale of the policy's last kernel (1.0 is LeCun-normal): near-uniform π at start."""


def num_categories(space: gymnasium.Space) -> int | None:
    """n for a ``Discrete(n)`` observation space (one-hot inputs), None for a ``Box`` (as is)."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1:
        return None
    raise ValueError(
        f"observation space must be Discrete or a 1-D Box, got {space!r}"
    )


def encode(obs: Array, num_categories: int | None) -> Float[Array, "*B D"]:
    """The network's input: one_hot(obs, n) for a discrete observation, else obs as float32."""
    if num_categories is None:
        return jnp.asarray(obs, jnp.float32)
    return jax.nn.one_hot(obs, num_categories, dtype=jnp.float32)


class MLP(nn.Module):
    """encode(obs) → [Dense → tanh] per hidden size → Dense(out_features)."""

    out_features: int
    """Width of the last layer."""
    hidden_sizes: Sequence[int] = (64, 64)
    """Widths of the hidden layers; () makes a linear (tabular, for one-hot inputs) model."""
    num_categories: int | None = None
    """n to one-hot encode integer observations, or None to use observations as they are."""
    output_scale: float = 1.0
    """Variance scale of the last kernel's LeCun-normal initialiser."""

    @nn.compact
    def __call__(self, obs: Array) -> Float[Array, "*B out"]:
        x = encode(obs, self.num_categories)
        for width in self.hidden_sizes:
            x = nn.tanh(nn.Dense(width)(x))
        last_init = nn.initializers.variance_scaling(self.output_scale, "fan_in", "truncated_normal")
        return nn.Dense(self.out_features, kernel_init=last_init)(x)


class Policy(nn.Module):
    """Categorical policy: the logits of π_θ(· | s), shape ``[*B, num_actions]``."""

    num_actions: int
    """A, the number of discrete actions."""
    hidden_sizes: Sequence[int] = (64, 64)
    """Widths of the hidden layers."""
    num_categories: int | None = None
    """n for one-hot inputs (a Discrete(n) observation space), None for vectors."""

    @nn.compact
    def __call__(self, obs: Array) -> Float[Array, "*B A"]:
        return MLP(self.num_actions, self.hidden_sizes, self.num_categories, POLICY_OUTPUT_SCALE)(obs)


class Value(nn.Module):
    """State-value network: v_w(s), shape ``[*B]``."""

    hidden_sizes: Sequence[int] = (64, 64)
    """Widths of the hidden layers."""
    num_categories: int | None = None
    """n for one-hot inputs (a Discrete(n) observation space), None for vectors."""

    @nn.compact
    def __call__(self, obs: Array) -> Float[Array, "*B"]:
        return MLP(1, self.hidden_sizes, self.num_categories)(obs)[..., 0]


def log_policy(logits: Float[Array, "*B A"], actions: Array) -> Float[Array, "*B"]:
    """log π(a | s) of the actions taken, from the logits."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_probs, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]


def entropy(logits: Float[Array, "*B A"]) -> Float[Array, "*B"]:
    """H(π(· | s)) = −Σ_a π(a | s) log π(a | s), in nats."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


def global_norm(tree) -> Float[Array, ""]:
    """‖g‖ = √(Σ_leaves Σ g²), the Euclidean norm of all leaves of a pytree together (e.g. a
    gradient). ``optax.global_norm`` is deprecated, and its replacement, ``optax.tree.norm``,
    is newer than the optax we support."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree)))
