r"""The surrogate objective of conservative policy iteration, TRPO and PPO, exactly, on a tabular MDP.

For an old policy :math:`\pi_{\text{old}} = \pi_{\theta_{\text{old}}}` and a new one
:math:`\pi = \pi_\theta` (softmax policies, :mod:`rlbook_lib.policy_gradient`),
the **performance-difference lemma** (Kakade & Langford, 2002) says

.. math::

    J(\theta) = J(\theta_{\text{old}}) + \sum_s d^{\pi}(s) \sum_a \pi(a \mid s)\, A^{\pi_{\text{old}}}(s, a),

with the state visitation :math:`d^\pi` of the *new* policy. The **surrogate**
replaces it by the old one's, which samples from :math:`\pi_{\text{old}}` can
estimate with the importance ratio :math:`\rho = \pi(a \mid s) / \pi_{\text{old}}(a \mid s)`:

.. math::

    L_{\theta_{\text{old}}}(\theta)
      = J(\theta_{\text{old}}) + \sum_s d^{\pi_{\text{old}}}(s) \sum_a \pi(a \mid s)\, A^{\pi_{\text{old}}}(s, a)
      = J(\theta_{\text{old}})
        + \mathbb{E}_{\pi_{\text{old}}}\Big[\sum_t \gamma^t \rho_t\, A^{\pi_{\text{old}}}(S_t, A_t)\Big].

At :math:`\theta = \theta_{\text{old}}` it has J's value (the advantages average
to zero under :math:`\pi_{\text{old}}`) and J's gradient (the policy-gradient
theorem). Away from it the two drift apart; Schulman et al. (2015, Theorem 1)
bound the drift for discounted MDPs with γ < 1:

.. math::

    J(\theta) \ge L_{\theta_{\text{old}}}(\theta)
        - C\, \max_s \mathrm{KL}\big(\pi_{\text{old}}(\cdot \mid s) \,\|\, \pi(\cdot \mid s)\big),
    \qquad C = \frac{4 A_{\max} \gamma}{(1 - \gamma)^2},
    \quad A_{\max} = \max_{s, a} \lvert A^{\pi_{\text{old}}}(s, a) \rvert .

All quantities are exact (linear solves), so J, L and the bound can be compared
without sampling noise. Terminal states follow :mod:`rlbook_lib.mdp`: their
advantage is 0 and they are not visited.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from rlbook_lib import checks, dp, kl, policy_gradient
from rlbook_lib.mdp import MDP, is_traced


def advantages(mdp: MDP, theta: Float[Array, "S A"]) -> Float[Array, "S A"]:
    r""":math:`A^{\pi_\theta}(s, a) = q_{\pi_\theta}(s, a) - v_{\pi_\theta}(s)`, exactly (0 in terminal states)."""
    checks.check_mdp_and_policy_parameters(mdp, theta)
    v = dp.policy_evaluation_exact(mdp, policy_gradient.softmax_policy(theta))
    advantage = dp.q_from_v(mdp, v) - v[:, None]
    return jnp.where(jnp.asarray(mdp.terminal)[:, None], 0.0, advantage)


def surrogate_objective(mdp: MDP, theta_old: Float[Array, "S A"], theta: Float[Array, "S A"]) -> Float[Array, ""]:
    r"""The surrogate objective, exactly:

    .. math::

        L_{\theta_{\text{old}}}(\theta) = J(\theta_{\text{old}})
            + \sum_s d^{\pi_{\text{old}}}(s) \sum_a \pi_\theta(a \mid s) A^{\pi_{\text{old}}}(s, a).

    Differentiable in ``theta`` (``jax.grad(surrogate_objective, argnums=2)``);
    at ``theta = theta_old`` its value and gradient are those of
    :func:`rlbook_lib.policy_gradient.exact_objective`.
    """
    checks.check_mdp_and_policy_parameters(mdp, theta)
    pi_old = policy_gradient.softmax_policy(theta_old)
    d_old = policy_gradient.discounted_visitation(mdp, pi_old)
    j_old = policy_gradient.exact_objective(mdp, theta_old)
    gain = jnp.sum(d_old[:, None] * policy_gradient.softmax_policy(theta) * advantages(mdp, theta_old))
    return j_old + gain


def max_kl(mdp: MDP, theta_old: Float[Array, "S A"], theta: Float[Array, "S A"]) -> Float[Array, ""]:
    r""":math:`\max_s \mathrm{KL}(\pi_{\text{old}}(\cdot \mid s) \,\|\, \pi_\theta(\cdot \mid s))`,
    over the non-terminal states."""
    checks.check_mdp_and_policy_parameters(mdp, theta)
    per_state = kl.categorical_kl_from_logits(jnp.asarray(theta_old, jnp.float32), jnp.asarray(theta, jnp.float32))
    return jnp.max(jnp.where(jnp.asarray(mdp.terminal), 0.0, per_state))


def penalty_coefficient(mdp: MDP, theta_old: Float[Array, "S A"]) -> Float[Array, ""]:
    r""":math:`C = 4 A_{\max} \gamma / (1 - \gamma)^2` with :math:`A_{\max} = \max_{s,a} |A^{\pi_{\text{old}}}(s, a)|`.

    Needs γ < 1 (``ValueError`` otherwise): the bound is for discounted MDPs.
    """
    if not is_traced(mdp.gamma) and not float(mdp.gamma) < 1.0:
        raise ValueError(f"the bound needs gamma < 1, got gamma = {float(mdp.gamma)}")
    largest_advantage = jnp.max(jnp.abs(advantages(mdp, theta_old)))  # A_max
    return 4.0 * largest_advantage * mdp.gamma / (1.0 - mdp.gamma) ** 2


def lower_bound(mdp: MDP, theta_old: Float[Array, "S A"], theta: Float[Array, "S A"]) -> Float[Array, ""]:
    r""":math:`L_{\theta_{\text{old}}}(\theta) - C \max_s \mathrm{KL}(\pi_{\text{old}} \| \pi_\theta)`,
    a lower bound on J(θ)
    (Schulman et al., 2015, Theorem 1)."""
    return surrogate_objective(mdp, theta_old, theta) - penalty_coefficient(mdp, theta_old) * max_kl(
        mdp, theta_old, theta)
