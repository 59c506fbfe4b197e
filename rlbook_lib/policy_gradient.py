r"""The policy-gradient theorem on a tabular MDP: exact gradients and sampled ones.

The policy is a softmax over a table of preferences, π_θ(a | s) = softmax(θ[s])_a,
and the objective is the expected discounted return from the start,

.. math::

    J(\theta) = \sum_s p_0(s)\, v_{\pi_\theta}(s) = \mathbb{E}_{\pi_\theta}[G_0],

or, with an entropy bonus of weight :math:`c_\mathcal{H} \ge 0` added to the
reward of every step (see :func:`exact_objective`),

.. math::

    J_{\mathcal{H}}(\theta) = \mathbb{E}_{\pi_\theta}\Big[ \sum_t \gamma^t \big( R_{t+1}
        + c_\mathcal{H}\, \mathcal{H}(\pi_\theta(\cdot \mid S_t)) \big) \Big].

On a small MDP we can compute J, its gradient and :math:`d^\pi` exactly (one
linear solve each), and so check the sampled estimators against the truth.

====================  ================  ======  ==================================================
symbol                code              shape   meaning
====================  ================  ======  ==================================================
:math:`\theta`        ``theta``         [S, A]  preferences; π_θ(a | s) = exp θ[s,a] / Σ_b exp θ[s,b]
:math:`\pi_\theta`    ``pi``            [S, A]  :func:`softmax_policy` (theta)
:math:`p_0`           ``mdp.initial``   [S]     distribution of :math:`S_0`
:math:`d^\pi`         ``d``             [S]     :math:`\sum_t \gamma^t \Pr(S_t = s)`, see :func:`discounted_visitation`
:math:`q_\pi`         ``q``             [S, A]  action values, :func:`rlbook_lib.dp.q_from_v`
:math:`G_t`           ``returns[t]``    [H]     discounted return from :math:`S_t`, :mod:`rlbook_lib.returns`
:math:`\Gamma_t`      (internal)        [H]     :math:`\prod_{k<t} \gamma_{k+1}`: γ^t until the episode ends, then 0
:math:`\mathcal{H}`   ``entropy``       [S]     :math:`\mathcal{H}(\pi_\theta(\cdot \mid s))`, :func:`entropy`
:math:`c_\mathcal{H}` ``entropy_coef``  []      weight of the entropy bonus (0: none)
====================  ================  ======  ==================================================

**The theorem** (Sutton & Barto, section 13.2, with the discount kept):

.. math::

    \nabla J(\theta) = \sum_s d^\pi(s) \sum_a \nabla \pi_\theta(a \mid s)\, q_\pi(s, a)
    = \mathbb{E}\Big[ \sum_t \gamma^t\, q_\pi(S_t, A_t)\, \nabla \log \pi_\theta(A_t \mid S_t) \Big].

Episode ends follow :mod:`rlbook_lib.mdp`: arriving in a terminal state
continues with weight 0, so :math:`\gamma^t` becomes :math:`\Gamma_t`, which
drops to 0 for the steps after the end.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from rlbook_lib import checks, dp, returns
from rlbook_lib import mdp as mdp_lib
from rlbook_lib.mdp import MDP



def softmax_policy(theta: Float[Array, "S A"]) -> Float[Array, "S A"]:
    """π_θ(a | s) = exp θ[s, a] / Σ_b exp θ[s, b], row by row."""
    if np.ndim(theta) != 2:
        raise ValueError(f"theta must have shape [S, A], got shape {np.shape(theta)}")
    return jax.nn.softmax(jnp.asarray(theta, jnp.float32), axis=-1)


def grad_log_policy(theta: Float[Array, "S A"], state: Int[Array, ""], action: Int[Array, ""]
                    ) -> Float[Array, "S A"]:
    r"""The score :math:`\nabla_\theta \log \pi_\theta(a \mid s)` of the softmax policy.

    .. math::

        \frac{\partial \log \pi_\theta(a \mid s)}{\partial \theta[s', b]} = 1\{s' = s\}\,(1\{b = a\} - \pi_\theta(b \mid s)):

    row s is :math:`e_a - \pi_\theta(\cdot \mid s)` and every other row is 0.
    Its mean over :math:`a \sim \pi_\theta(\cdot \mid s)` is 0, which is why a
    baseline b(s) leaves the expected gradient unchanged.
    """
    S, A = np.shape(theta)
    row = jax.nn.one_hot(action, A) - jax.nn.softmax(theta[state])
    return jax.nn.one_hot(state, S)[:, None] * row[None, :]


def entropy(theta: Float[Array, "S A"]) -> Float[Array, "S"]:
    r"""Entropy of the softmax policy in each state, in nats.

    .. math::

        \mathcal{H}(\pi_\theta(\cdot \mid s)) = -\sum_a \pi_\theta(a \mid s) \log \pi_\theta(a \mid s),

    between 0 (a deterministic policy) and log |A| (the uniform one).
    """
    if np.ndim(theta) != 2:
        raise ValueError(f"theta must have shape [S, A], got shape {np.shape(theta)}")
    log_pi = jax.nn.log_softmax(jnp.asarray(theta, jnp.float32), axis=-1)
    return -jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1)


def entropy_gradient(theta: Float[Array, "S A"]) -> Float[Array, "S A"]:
    r"""Row s holds :math:`\nabla_{\theta[s]} \mathcal{H}(\pi_\theta(\cdot \mid s))`.

    With :math:`\partial \pi(a \mid s) / \partial \theta[s, b] = \pi(a \mid s)(1\{a = b\} - \pi(b \mid s))`
    and :math:`\sum_a \partial \pi(a \mid s) / \partial \theta[s, b] = 0`,

    .. math::

        \frac{\partial \mathcal{H}(\pi_\theta(\cdot \mid s))}{\partial \theta[s, b]}
            = -\sum_a \frac{\partial \pi(a \mid s)}{\partial \theta[s, b]} \big(\log \pi(a \mid s) + 1\big)
            = -\pi(b \mid s) \big( \log \pi(b \mid s) + \mathcal{H}(\pi_\theta(\cdot \mid s)) \big).

    The entropy of state s depends only on row s of θ, so the gradient of
    :math:`\sum_s w(s)\, \mathcal{H}(\pi_\theta(\cdot \mid s))` is ``w[:, None] * entropy_gradient(theta)``.
    It pushes each preference towards the row's mean and vanishes at the uniform policy.
    """
    log_pi = jax.nn.log_softmax(jnp.asarray(theta, jnp.float32), axis=-1)
    return -jnp.exp(log_pi) * (log_pi + entropy(theta)[:, None])


def _with_entropy_bonus(mdp: MDP, theta, entropy_coef) -> MDP:
    """The MDP whose reward r(s, a) + c_H H(π_θ(· | s)) includes the entropy bonus."""
    return mdp._replace(R=mdp.R + entropy_coef * entropy(theta)[:, None])


def exact_objective(mdp: MDP, theta: Float[Array, "S A"], entropy_coef=0.0) -> Float[Array, ""]:
    r"""J(θ) = Σ_s p_0(s) v_π(s), with v_π from the linear solve of :func:`rlbook_lib.dp.policy_evaluation_exact`.

    With ``entropy_coef`` :math:`= c_\mathcal{H} > 0`, the entropy-regularised
    objective :math:`J_\mathcal{H}(\theta)`: every step taken in s earns the extra
    reward :math:`c_\mathcal{H}\, \mathcal{H}(\pi_\theta(\cdot \mid s))`, so
    :math:`J_\mathcal{H} = \sum_s d^\pi(s) \big(r_\pi(s) + c_\mathcal{H} \mathcal{H}(\pi_\theta(\cdot \mid s))\big)`.

    Differentiable: ``jax.grad(exact_objective, argnums=1)(mdp, theta)`` is ∇J(θ)
    by automatic differentiation through the solve, an independent check of
    :func:`exact_gradient`. Raises ``ValueError`` for a bad ``theta`` or
    ``entropy_coef`` and, with γ = 1, if π_θ never ends the episode from some state.
    """
    checks.check_mdp_and_policy_parameters(mdp, theta)
    checks.check_entropy_coef(entropy_coef)
    regularised = _with_entropy_bonus(mdp, theta, entropy_coef)
    return jnp.dot(mdp.initial, dp.policy_evaluation_exact(regularised, softmax_policy(theta)))


def discounted_visitation(mdp: MDP, pi: Float[Array, "S A"]) -> Float[Array, "S"]:
    r"""Unnormalised discounted state visitation :math:`d^\pi(s) = \sum_t \gamma^t \Pr(S_t = s)`.

    With the terminal masking of :mod:`rlbook_lib.mdp`, :math:`M = P_\pi\,
    \mathrm{diag}(\gamma (1 - \mathrm{terminal}))` and

    .. math::

        d^\pi = p_0^\top \sum_t M^t = p_0^\top (I - M)^{-1},

    found by solving :math:`(I - M)^\top d = p_0`. Steps taken in a state count;
    the arrival in a terminal state ends the episode and does not. Then
    :math:`J = \sum_s d^\pi(s)\, r_\pi(s)`.

    **Normalisation.** Without terminal states Σ_s d^π(s) = 1/(1 − γ), so
    (1 − γ) d^π is a probability distribution (the "discounted state
    distribution"). With terminal states Σ_s d^π(s) is the expected discounted
    episode length, and with γ = 1 it is the expected number of steps: Sutton &
    Barto's η(s) (eq. 9.2), which they normalise into the on-policy distribution η(s) / Σ η.
    """
    checks.check_mdp(mdp)
    if not mdp_lib.is_traced(mdp, pi):
        mdp_lib.check_policy(mdp, pi)
        mdp_lib.check_terminates(mdp, pi, "d^pi is infinite")
    return _visitation(mdp, jnp.asarray(pi, jnp.float32))


@jax.jit
def _visitation(mdp, pi):
    M = mdp_lib.discounted_policy_transitions(mdp, pi)
    return jnp.linalg.solve((jnp.eye(M.shape[0]) - M).T, mdp.initial)


def exact_gradient(mdp: MDP, theta: Float[Array, "S A"], entropy_coef=0.0) -> Float[Array, "S A"]:
    r"""∇J(θ) from the policy-gradient theorem, written out for the softmax policy.

    .. math::

        \nabla J = \sum_s d^\pi(s) \sum_a \nabla \pi_\theta(a \mid s)\, q_\pi(s, a),
        \qquad \frac{\partial \pi_\theta(a \mid s)}{\partial \theta[s, b]}
            = \pi_\theta(a \mid s) (1\{a = b\} - \pi_\theta(b \mid s)),

    and ∂π(a | s)/∂θ[s', b] = 0 for s' ≠ s, so

    .. math::

        \frac{\partial J}{\partial \theta[s, b]}
            = d^\pi(s)\, \pi_\theta(b \mid s) \Big( q_\pi(s, b) - \sum_a \pi_\theta(a \mid s) q_\pi(s, a) \Big)
            = d^\pi(s)\, \pi_\theta(b \mid s)\, (q_\pi(s, b) - v_\pi(s)).

    **With an entropy bonus** (``entropy_coef`` :math:`= c_\mathcal{H}`), the
    bonus is a reward that depends on θ. Differentiating the Bellman equation
    :math:`v(s) = \sum_a \pi(a \mid s) q(s, a) + c_\mathcal{H} \mathcal{H}(s)` adds the
    direct term to the theorem's per-state sum, and q, v are those of the
    regularised reward:

    .. math::

        \nabla J_\mathcal{H} = \sum_s d^\pi(s) \Big( \sum_a \nabla \pi_\theta(a \mid s)\, q^\mathcal{H}_\pi(s, a)
            + c_\mathcal{H}\, \nabla \mathcal{H}(\pi_\theta(\cdot \mid s)) \Big).

    Two linear solves (v_π and d^π), :math:`O(|S|^3)`.
    """
    checks.check_mdp_and_policy_parameters(mdp, theta)
    checks.check_entropy_coef(entropy_coef)
    pi = softmax_policy(theta)
    q = dp.q_from_v(mdp, dp.policy_evaluation_exact(_with_entropy_bonus(mdp, theta, entropy_coef), pi))
    d = discounted_visitation(mdp, pi)
    # q omits the bonus c_H H(s); it is the same for every a, and the advantage would cancel it.
    advantage = q - jnp.sum(pi * q, axis=-1, keepdims=True)
    return d[:, None] * (pi * advantage + entropy_coef * entropy_gradient(theta))


class Ascent(NamedTuple):
    """What :func:`gradient_ascent` records at each of its K steps."""

    objective: Float[Array, "K+1"]
    """J(θ_k), computed exactly (without any entropy bonus), before step k (the last entry after the last step)."""
    entropy: Float[Array, "K+1"]
    """The policy's entropy averaged over states, (1/|S|) Σ_s H(π_θk(· | s)) in nats, at the same times."""
    theta: Float[Array, "S A"]
    """θ_K, the final preferences."""


def gradient_ascent(mdp: MDP, theta: Float[Array, "S A"], gradient_fn, key: jax.Array,
                    *, num_steps: int, step_size) -> Ascent:
    r"""Stochastic gradient ascent θ_{k+1} = θ_k + α ĝ(θ_k), recording the exact J(θ_k) and the entropy.

    ``gradient_fn(theta, key) -> [S, A]`` gives the step direction: the exact
    gradient (``lambda th, k: exact_gradient(mdp, th)``) or an average of sampled
    estimates from :mod:`rlbook_lib.score_function`. The whole loop is one
    ``lax.scan``, so ``jax.vmap`` over keys runs independent seeds in one call.
    ``step_size`` (α) is used only in arithmetic and may be vmapped too.
    """
    checks.check_mdp_and_policy_parameters(mdp, theta)
    checks.check_positive_int("num_steps", num_steps)

    def record(theta):
        return exact_objective(mdp, theta), jnp.mean(entropy(theta))

    def step(theta, key):
        return theta + step_size * gradient_fn(theta, key), record(theta)

    theta, (objectives, entropies) = jax.lax.scan(step, jnp.asarray(theta, jnp.float32),
                                                  jax.random.split(key, num_steps))
    last_objective, last_entropy = record(theta)
    return Ascent(jnp.append(objectives, last_objective), jnp.append(entropies, last_entropy), theta)
