r"""Returns computed backwards along one trajectory.

Every function here takes one unbatched, time-major trajectory of length T;
vmap it at the call site for a batch of trajectories. Here T is only the array's
length: the trajectory may end with its episode (then T is the episode's final
step, as in the book's notation), at a time limit H, or anywhere in a rollout.

====================  ===================  =====  ===================================================
symbol                code                 shape  meaning
====================  ===================  =====  ===================================================
:math:`r_{t+1}`       ``rewards[t]``       [T]    reward that follows the action :math:`A_t` in :math:`S_t`
:math:`\gamma_{t+1}`  ``discounts[t]``     [T]    :math:`\gamma\,(1 - \mathrm{terminated}_{t+1})`: weight of
                                                  everything after arriving in :math:`S_{t+1}`
:math:`G_t`           ``returns[t]``       [T]    discounted return from :math:`S_t`
:math:`V(S_T)`        ``bootstrap_value``  []     stands in for :math:`G_T`, the return after the last step
====================  ===================  =====  ===================================================

**Discount, not done.** The end of an episode is written into the discount:
``discounts[t] = 0`` when :math:`S_{t+1}` is terminal, and γ otherwise. A
trajectory may then hold several episodes one after another, and a zero discount
stops each episode's return at its end. A time limit is *not* a termination:
its discount stays γ, and the return after the cut is the bootstrap value.

The reward index follows Sutton & Barto: ``rewards[t]`` is :math:`r_{t+1}`, the
reward for the step :math:`S_t \to S_{t+1}`, and ``discounts[t]`` belongs to
the same step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rlbook_lib.checks import check_sequences


def _check_scalar(name: str, x) -> None:
    if np.ndim(x) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(x)}")


def discounted_returns(
    rewards: Float[Array, "T"],
    discounts: Float[Array, "T"],
    bootstrap_value: Float[Array, ""] = 0.0,
) -> Float[Array, "T"]:
    r"""Discounted returns :math:`G_t` of one trajectory, computed backwards.

    .. math::

        G_t = r_{t+1} + \gamma_{t+1} G_{t+1}, \qquad G_T = \text{bootstrap\_value},

    so that, with a constant discount γ and no termination,
    :math:`G_t = \sum_{k=t}^{T-1} \gamma^{k-t} r_{k+1} + \gamma^{T-t} G_T`.
    One reverse :func:`jax.lax.scan`: O(T) work, O(T) sequential steps.

    **When the bootstrap value is 0 and when it is V(S_T).**

    * The trajectory ends because the episode *terminated* in :math:`S_T`: then
      ``discounts[T-1] = 0``, the bootstrap value is multiplied by 0 and which
      value you pass does not matter; 0, the value of a terminal state, is the
      natural one.
    * The trajectory ends because it was *truncated* (a time limit, or the end
      of a rollout segment) in a non-terminal :math:`S_T`: the true return goes
      on, so pass an estimate :math:`V(S_T)`. Passing 0 there treats the time
      limit as a termination and biases every :math:`G_t` by
      :math:`-\gamma^{T-t}\,\mathbb{E}[G_T]`, which matters most near the cut.
    * Plain Monte Carlo, with no value estimate: 0, accepting that bias, which
      is small when :math:`\gamma^{T-t}` is.

    Args:
      rewards: ``[T]``, ``rewards[t]`` = :math:`r_{t+1}`.
      discounts: ``[T]``, ``discounts[t]`` = :math:`\gamma_{t+1} = \gamma (1 - \mathrm{terminated}_{t+1})`.
      bootstrap_value: scalar :math:`G_T`, see above.

    Returns:
      ``[T]`` float32 array, ``returns[t]`` = :math:`G_t`.

    Example::

        >>> discounted_returns(jnp.array([1.0, 0.0, 2.0]), jnp.full(3, 0.9))
        Array([2.62, 1.8 , 2.  ], dtype=float32)   # [1 + 0.9 (0 + 0.9 · 2), 0 + 0.9 · 2, 2]
    """
    check_sequences(rewards=rewards, discounts=discounts)
    _check_scalar("bootstrap_value", bootstrap_value)
    return _discounted_returns(jnp.asarray(rewards, jnp.float32), jnp.asarray(discounts, jnp.float32),
                               jnp.asarray(bootstrap_value, jnp.float32))


@jax.jit
def _discounted_returns(rewards, discounts, bootstrap_value):
    def backward(g_next, step):
        reward, discount = step
        g = reward + discount * g_next
        return g, g

    _, returns = jax.lax.scan(backward, bootstrap_value, (rewards, discounts), reverse=True)
    return returns
