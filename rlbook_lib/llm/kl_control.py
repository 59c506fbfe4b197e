r"""The KL penalty of RLHF: its coefficient β (fixed or adaptive) and the per-token KL-shaped reward.

RLHF with PPO (Ziegler et al., 2019; Ouyang et al., 2022) maximises the reward-model score
of a response y to a prompt x while staying close to the reference (pretrained) model:

.. math::

    \max_\theta\ \mathbb{E}_{y \sim \pi_\theta(\cdot\mid x)}\big[r(x, y)\big]
        - \beta\, \mathrm{KL}\big(\pi_\theta(\cdot\mid x) \,\|\, \pi_{\text{ref}}(\cdot\mid x)\big).

Because a response is a sequence of tokens, the sequence KL is the expected sum of the
per-token log-ratios, and the penalty becomes a **per-token reward** (:func:`kl_shaped_rewards`)

.. math::

    r_t = -\beta\,\big(\log \pi_\theta(y_t \mid x, y_{<t}) - \log \pi_{\text{ref}}(y_t \mid x, y_{<t})\big)
          + [t = t_{\text{last}}]\; r(x, y),

on response tokens (0 elsewhere), with the score r(x, y) on the last response token. The
bracket is the k₁ estimator of :mod:`rlbook_lib.kl` (k₁ = −log ρ^ref with
ρ^ref_t = π_ref/π_θ at the sampled token), so Σ_t r_t = r(x, y) − β log(π_θ(y|x)/π_ref(y|x)),
an unbiased single-sample estimate of the objective above. GAE over tokens
(:func:`rlbook_lib.returns.gae`) then turns these rewards into advantages Â_t for PPO.

**Controllers** follow optax's pattern: a :class:`KLController` is a pair of pure functions
``init() -> KLControllerState`` and ``update(state, kl, num_episodes) -> KLControllerState``
over a NamedTuple state holding β; both run under ``jit`` and ``vmap``.

* :func:`fixed_kl_controller`: β never changes.
* :func:`adaptive_kl_controller`: Ziegler et al.'s proportional controller, as their
  released code (``lm-human-preferences``, ``AdaptiveKLController``) has it:

  .. math::

      e = \operatorname{clip}\Big(\frac{\mathrm{KL}}{\mathrm{KL}_{\text{target}}} - 1,\ -0.2,\ 0.2\Big),
      \qquad \beta \leftarrow \beta\,\Big(1 + e\,\frac{n}{H}\Big),

  with n the number of episodes in the batch just used and H the horizon in episodes;
  defaults β₀ = 0.2 (0.15 in their sentiment runs), KL_target = 6 nats, H = 10,000.

  The paper's text writes the gain as a constant, β ← β(1 + K_β e) with K_β = 0.1, and
  some summaries quote only that. We implement n/H, as the released code does, because
  then the controller's time scale is H *episodes* whatever the batch size: halving the
  batch halves each step's correction and doubles the number of steps, so the β
  trajectory against episodes seen stays the same. A constant K_β would make the
  adaptation speed depend on the batch size. The two agree when n = K_β·H (1,000 episodes
  per batch at H = 10,000); pass ``num_episodes = K_beta * horizon`` to get the constant
  gain.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from rlbook_lib import kl as kl_divergence
from rlbook_lib.checks import check_sequences
from rlbook_lib.mdp import is_traced


class KLControllerState(NamedTuple):
    """State of a KL controller."""

    beta: Float[Array, ""]
    """β, the current KL coefficient."""


class KLController(NamedTuple):
    """An optax-like pair of pure functions (call ``init`` once, then ``update`` after every batch)."""

    init: Callable[[], KLControllerState]
    """``init() -> KLControllerState`` with the initial β."""
    update: Callable[..., KLControllerState]
    """``update(state, kl, num_episodes) -> KLControllerState``: kl is the measured mean
    sequence KL(π_θ ‖ π_ref) of the batch (nats), num_episodes its number of episodes n."""


def _check_nonnegative(name: str, x) -> None:
    if np.ndim(x) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(x)}")
    if not is_traced(x) and not float(x) >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {x!r}")


def _check_positive(name: str, x) -> None:
    if np.ndim(x) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(x)}")
    if not is_traced(x) and not float(x) > 0.0:
        raise ValueError(f"{name} must be > 0, got {x!r}")


def fixed_kl_controller(beta: float = 0.2) -> KLController:
    """A constant β: ``update`` returns the state unchanged (``ValueError`` if β < 0)."""
    _check_nonnegative("beta", beta)

    def init() -> KLControllerState:
        return KLControllerState(beta=jnp.asarray(beta, jnp.float32))

    def update(state: KLControllerState, kl=None, num_episodes=None) -> KLControllerState:
        del kl, num_episodes
        return state

    return KLController(init, update)


def adaptive_kl_controller(init_beta: float = 0.2, kl_target: float = 6.0, horizon: float = 10_000
                           ) -> KLController:
    r"""Ziegler et al.'s (2019) adaptive β (module docstring):
    e = clip(KL/KL_target − 1, −0.2, 0.2), β ← β (1 + e n/H).

    ``init_beta`` β₀ ≥ 0, ``kl_target`` KL_target > 0 (nats), ``horizon`` H > 0 (episodes);
    ``ValueError`` otherwise. Each update moves β by at most a factor 1 ± 0.2 n/H. Example::

        ctl = adaptive_kl_controller()
        state = ctl.init()                       # β = 0.2
        state = ctl.update(state, 9.0, 512)      # KL above target: β = 0.2 (1 + 0.2 · 512/10⁴)
    """
    _check_nonnegative("init_beta", init_beta)
    _check_positive("kl_target", kl_target)
    _check_positive("horizon", horizon)

    def init() -> KLControllerState:
        return KLControllerState(beta=jnp.asarray(init_beta, jnp.float32))

    def update(state: KLControllerState, kl: Float[Array, ""], num_episodes) -> KLControllerState:
        error = jnp.clip(jnp.asarray(kl, jnp.float32) / kl_target - 1.0, -0.2, 0.2)
        return KLControllerState(beta=state.beta * (1.0 + error * num_episodes / horizon))

    return KLController(init, update)


def sequence_log_ratio(logp: Float[Array, "T"], ref_logp: Float[Array, "T"], mask: Float[Array, "T"]
                       ) -> Float[Array, ""]:
    r"""log π_θ(y|x) − log π_ref(y|x) = Σ_t m_t (log π_θ(y_t|·) − log π_ref(y_t|·)) over response tokens.

    Its mean over responses sampled from π_θ is the sequence KL(π_θ ‖ π_ref) (the k₁
    estimate): the ``kl`` to feed a controller's ``update``.
    """
    check_sequences(logp=logp, ref_logp=ref_logp, mask=mask)
    mask = jnp.asarray(mask, jnp.float32)
    return jnp.sum(mask * kl_divergence.k1(jnp.asarray(ref_logp) - jnp.asarray(logp)))


def kl_shaped_rewards(logp: Float[Array, "T"], ref_logp: Float[Array, "T"], mask: Float[Array, "T"],
                      score: Float[Array, ""], beta: Float[Array, ""] | float) -> Float[Array, "T"]:
    r"""Per-token rewards r_t = −β m_t (log π_θ − log π_ref)(y_t) + [t = t_last] r(x, y) of one sequence.

    ============  ============  =====  ==============================================================
    symbol        code          shape  meaning
    ============  ============  =====  ==============================================================
    log π_θ       ``logp``      [T]    log-probability of each token under the policy (sampled from it)
    log π_ref     ``ref_logp``  [T]    ... under the reference model
    m_t           ``mask``      [T]    1 on response tokens, 0 on prompt and padding
    r(x, y)       ``score``     []     reward-model (or true) score of the whole response
    β             ``beta``      []     KL coefficient (≥ 0; e.g. a controller's ``state.beta``)
    ============  ============  =====  ==============================================================

    t_last is the last position with m_t > 0; a sequence without response tokens gets
    zeros. Σ_t r_t = r(x, y) − β :func:`sequence_log_ratio`. The result is data, a reward and
    not a loss: no gradient flows through it (``stop_gradient``). Vmap for a batch.
    """
    length = check_sequences(logp=logp, ref_logp=ref_logp, mask=mask)
    if np.ndim(score) != 0:
        raise ValueError(f"score must be a scalar (one sequence; vmap for a batch), got shape {np.shape(score)}")
    _check_nonnegative("beta", beta)
    mask = jnp.asarray(mask, jnp.float32)
    per_token_kl = kl_divergence.k1(jnp.asarray(ref_logp) - jnp.asarray(logp))  # log π_θ − log π_ref
    positions = jnp.arange(length)
    last = jnp.max(jnp.where(mask > 0, positions, -1))  # −1: no response token, no score
    rewards = -beta * mask * per_token_kl + (positions == last) * jnp.asarray(score, jnp.float32)
    return jax.lax.stop_gradient(rewards)
