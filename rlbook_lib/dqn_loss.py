r"""DQN's loss and its pieces: the TD targets of one transition and the Huber loss.

For a transition (s, a, r, s') with arrival discount γ_{s'} = γ (1 − terminal(s')),

.. math::

    y^{\mathrm{DQN}} = r + \gamma_{s'} \max_{a'} Q(s', a'; \theta^-),
    \qquad
    y^{\mathrm{Double}} = r + \gamma_{s'}\, Q\big(s', \arg\max_{a'} Q(s', a'; \theta); \theta^-\big),

where θ⁻ are the target network's parameters and θ the online network's
(Mnih et al., 2015; van Hasselt, Guez & Silver, 2016). DQN's max both picks and
evaluates the next action with θ⁻, so noise in the estimates biases the target
upwards; Double DQN picks with θ and evaluates with θ⁻.

**Termination and truncation.** Only a terminal s' has value 0, so only then is
γ_{s'} = 0. After a time-limit truncation s' is an ordinary state and the target
still bootstraps from it: :mod:`rlbook_lib.rollout` records the true final
observation in ``next_obs`` even when the environment was reset.

The loss on a TD error δ = y − Q(s, a; θ) is the squared error δ²/2 or the Huber
loss with threshold κ,

.. math::

    \ell_\kappa(\delta) = \begin{cases} \tfrac12 \delta^2 & |\delta| \le \kappa \\
        \kappa (|\delta| - \tfrac12 \kappa) & |\delta| > \kappa \end{cases},
    \qquad \ell_\kappa'(\delta) = \operatorname{clip}(\delta, -\kappa, \kappa),

whose gradient is the TD error clipped to [−κ, κ], as Mnih et al. clip it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from rlbook_lib import action_selection, networks, rollout


def q_learning_target(reward: Float[Array, ""], discount: Float[Array, ""],
                      q_next_target: Float[Array, "A"]) -> Float[Array, ""]:
    """y = r + γ_{s'} max_a' Q(s', a'; θ⁻); ``discount`` is γ_{s'} = γ (1 − terminated)."""
    return reward + discount * jnp.max(q_next_target)


def double_dqn_target(reward: Float[Array, ""], discount: Float[Array, ""], q_next_target: Float[Array, "A"],
                      q_next_online: Float[Array, "A"]) -> Float[Array, ""]:
    """y = r + γ_{s'} Q(s', argmax_a' Q(s', a'; θ); θ⁻): the online net picks, the target net evaluates."""
    return reward + discount * q_next_target[action_selection.greedy(q_next_online)]


def huber(delta: Float[Array, "*B"], kappa: float = 1.0) -> Float[Array, "*B"]:
    """ℓ_κ(δ): δ²/2 for |δ| ≤ κ, else κ(|δ| − κ/2)."""
    abs_delta = jnp.abs(delta)
    return jnp.where(abs_delta <= kappa, 0.5 * jnp.square(delta), kappa * (abs_delta - 0.5 * kappa))


def squared(delta: Float[Array, "*B"]) -> Float[Array, "*B"]:
    """δ²/2, whose gradient is δ itself."""
    return 0.5 * jnp.square(delta)


class LossInfo(NamedTuple):
    td_loss: Float[Array, ""]
    """L(θ)."""
    q_mean: Float[Array, ""]
    """Mean of Q(s_i, a_i; θ) over the minibatch."""


def loss(config: Any, q_network: networks.MLP, params: Any, target_params: Any,
         batch: rollout.Transition) -> tuple[Float[Array, ""], LossInfo]:
    r"""L(θ) = (1/B) Σ_i ℓ(y_i − Q(s_i, a_i; θ)) over a minibatch (leaves [B, ...]); y is held fixed.

    ``config`` is a :class:`rlbook_lib.dqn.Config` (its ``gamma``, ``double`` and
    ``huber`` are read; ``double`` may be a bool array in a vmapped sweep). y_i uses γ_{s'} = γ (1 − terminated_i): a truncated
    transition keeps γ and bootstraps from ``next_obs``. ``jax.grad`` of L is the
    semi-gradient −(1/B) Σ_i ℓ'(δ_i) ∇_θ Q(s_i, a_i; θ): no gradient flows into y,
    not even when ``target_params`` is ``params``.
    """
    q = q_network.apply(params, batch.obs)  # [B, A]
    q_taken = jnp.take_along_axis(q, batch.action[:, None].astype(jnp.int32), axis=-1)[:, 0]
    q_next_target = q_network.apply(target_params, batch.next_obs)  # [B, A]
    discount = config.gamma * batch.discount  # γ_{s'} = γ (1 − terminated); truncation keeps γ
    if isinstance(config.double, bool) and not config.double:
        targets = jax.vmap(q_learning_target)(batch.reward, discount, q_next_target)
    else:
        q_next_online = q_network.apply(params, batch.next_obs)
        targets = jax.vmap(double_dqn_target)(batch.reward, discount, q_next_target, q_next_online)
        if not isinstance(config.double, bool):  # an array in a vmapped sweep: select DQN's target where False
            plain = jax.vmap(q_learning_target)(batch.reward, discount, q_next_target)
            targets = jnp.where(config.double, targets, plain)
    delta = jax.lax.stop_gradient(targets) - q_taken
    td_loss = jnp.mean(huber(delta) if config.huber else squared(delta))
    return td_loss, LossInfo(td_loss, jnp.mean(q_taken))
