r"""What A2C, PPO and TRPO share: the actor-critic network, rollout segments of N environments,
and GAE advantages that bootstrap at time limits. (The training loop around them is
:mod:`rlbook_lib.on_policy`.)

All three algorithms alternate two phases. They step N environments side by side
(``vmap``) for T steps with the current policy π_θ, auto-resetting any episode that ends
(:mod:`rlbook_lib.rollout`), and keep the environments' states for the next segment. Then
they learn from the N·T transitions, with generalised advantage estimates (Schulman et
al., 2016) computed along each environment's segment:

.. math::

    \delta_t = r_{t+1} + \gamma\,(1 - \mathrm{terminated}_{t})\, v_{\mathbf w}(o'_{t}) - v_{\mathbf w}(o_t),
    \qquad
    \hat A_t = \delta_t + \gamma\lambda\,(1 - \mathrm{ended}_{t})\, \hat A_{t+1},
    \qquad \hat A_T = 0,

where o'_t is the TRUE next observation (``Transition.next_obs``, also after a
time-limit cut) and ended = terminated or truncated. So a truncated step still
bootstraps from v(o'_t), and no advantage flows from one episode into the next. The
value target is the λ-return G^λ_t = Â_t + v_𝐰(o_t). The recursion is
:func:`rlbook_lib.returns.gae_from_transitions`; without time-limit cuts inside the
segment it equals :func:`rlbook_lib.returns.gae` (tested).

=========================  ============================  =========  =====================================
symbol                     code                          shape      meaning
=========================  ============================  =========  =====================================
N, T                       ``num_envs``, ``num_steps``   []         environments, steps per segment
π_θ(· | o_t)               ``Batch.dist``                [N, T, …]  the policy that collected the segment
log π_θ(a_t | o_t)         ``Batch.log_prob``            [N, T]     its log-probability of the actions
v_𝐰(o_t)                   ``Batch.value``               [N, T]     the critic when collecting
Â_t                        ``Batch.advantage``           [N, T]     GAE advantage
G^λ_t                      ``Batch.target``              [N, T]     value target Â_t + v_𝐰(o_t)
=========================  ============================  =========  =====================================
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import gymnasium
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from rlbook_lib import distributions, networks, returns, rollout, vector_rollout
from rlbook_lib.envs.base import Environment


class ActorCritic(nn.Module):
    """obs → (π_θ(· | obs), v_𝐰(obs)): two tanh MLPs on the same input, or one shared trunk.

    With ``shared_trunk=False`` (the default) the actor and the critic have no weights
    in common; with True both heads read the same hidden layers, whose weights then
    receive the gradients of the policy loss and of the value loss together.

    Discrete actions give a :class:`~rlbook_lib.distributions.Categorical` over
    ``action_dim`` logits; continuous ones a
    :class:`~rlbook_lib.distributions.DiagGaussian` whose mean is the MLP's output
    and whose log σ is one learned vector, the same in every state.

    Initialisation: ``orthogonal=True`` uses orthogonal kernels with gains √2 in
    the hidden layers, 0.01 for the policy's output and 1 for the value's (Engstrom
    et al., 2020; Huang et al., 2022); False uses LeCun-normal kernels with the
    policy's output 10 times smaller (as :mod:`rlbook_lib.networks`). Both start with
    a near-uniform (or near-zero-mean) policy.
    """

    action_dim: int
    """A logits (discrete) or D action dimensions (continuous)."""
    continuous: bool = False
    """A Gaussian policy over ℝ^D (True) or a categorical one over A actions (False)."""
    hidden_sizes: Sequence[int] = (64, 64)
    """Widths of the hidden tanh layers of each network."""
    num_categories: int | None = None
    """n for one-hot inputs (a Discrete(n) observation space), None for vectors."""
    orthogonal: bool = False
    """Orthogonal initialisation (see above)."""
    log_std_init: float = 0.0
    """Initial log σ of a Gaussian policy."""
    shared_trunk: bool = False
    """One set of hidden layers for both heads (True) or one per network (False)."""

    @nn.compact
    def __call__(self, obs: Array) -> tuple[distributions.Distribution, Float[Array, "*B"]]:
        x = networks.encode(obs, self.num_categories)
        if self.orthogonal:
            hidden, policy_out, value_out = (nn.initializers.orthogonal(s) for s in (math.sqrt(2), 0.01, 1.0))
        else:
            hidden = value_out = nn.initializers.lecun_normal()
            policy_out = nn.initializers.variance_scaling(networks.POLICY_OUTPUT_SCALE, "fan_in",
                                                          "truncated_normal")
        actor, critic = x, x
        for width in self.hidden_sizes:
            actor = nn.tanh(nn.Dense(width, kernel_init=hidden)(actor))
            critic = actor if self.shared_trunk else nn.tanh(nn.Dense(width, kernel_init=hidden)(critic))
        out = nn.Dense(self.action_dim, kernel_init=policy_out)(actor)
        value = nn.Dense(1, kernel_init=value_out)(critic)[..., 0]
        if self.continuous:
            log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
            return distributions.DiagGaussian(out, jnp.broadcast_to(log_std, out.shape)), value
        return distributions.Categorical(out), value


def make_network(env: Environment, env_params: Any, hidden_sizes: Sequence[int] = (64, 64),
                 orthogonal: bool = False, log_std_init: float = 0.0, shared_trunk: bool = False) -> ActorCritic:
    """An :class:`ActorCritic` sized for ``env``: Discrete(A) or Box(D,) actions."""
    space = env.action_space(env_params)
    categories = networks.num_categories(env.observation_space(env_params))
    options = dict(hidden_sizes=tuple(hidden_sizes), num_categories=categories, orthogonal=orthogonal,
                   log_std_init=log_std_init, shared_trunk=shared_trunk)
    if isinstance(space, gymnasium.spaces.Discrete):
        return ActorCritic(int(space.n), False, **options)
    if isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1:
        return ActorCritic(int(space.shape[0]), True, **options)
    raise ValueError(f"the action space must be Discrete or a 1-D Box, got {space!r}")


def policy_fn(net: ActorCritic, params: Any, greedy: bool = False) -> rollout.Policy:
    """``act(key, obs) -> action``: a sample of π_θ(· | obs), or its mode if ``greedy`` (for
    :func:`rlbook_lib.evaluation.evaluate`)."""

    def act(key: PRNGKeyArray, obs: Array) -> Array:
        dist = net.apply(params, obs)[0]
        return dist.mode() if greedy else dist.sample(key)

    return act


class Batch(NamedTuple):
    """One segment of N environments × T steps; every field has leading axes [N, T]."""

    transitions: rollout.Transition
    dist: distributions.Distribution
    """π_θ(· | o_t) of the policy that acted (held fixed while learning from the batch)."""
    log_prob: Float[Array, "N T"]
    value: Float[Array, "N T"]
    advantage: Float[Array, "N T"]
    target: Float[Array, "N T"]


def reset(env: Environment, env_params: Any, key: PRNGKeyArray, num_envs: int) -> rollout.RolloutState:
    """N fresh episodes, fields [N, …]."""
    return jax.vmap(rollout.reset, (None, None, 0))(env, env_params, jax.random.split(key, num_envs))


def collect(env: Environment, env_params: Any, net: ActorCritic, params: Any, key: PRNGKeyArray,
            states: rollout.RolloutState, num_steps: int) -> tuple[rollout.RolloutState, rollout.Transition]:
    """T steps of a ~ π_θ in each of the N environments (auto-reset); transitions [N, T, …].

    The same as ``jax.vmap`` of :func:`rlbook_lib.rollout.rollout` over ``split(key, N)``, computed
    by :func:`rlbook_lib.vector_rollout.rollout_batch`, which draws s_0 only where an episode ended."""
    num_envs = jax.tree_util.tree_leaves(states)[0].shape[0]
    return vector_rollout.rollout_batch(env, env_params, policy_fn(net, params), jax.random.split(key, num_envs),
                                        states, num_steps)


def gae(transitions: rollout.Transition, values: Float[Array, "T"], next_values: Float[Array, "T"],
        gamma: Float[Array, ""] | float, lambda_: Float[Array, ""] | float) -> Float[Array, "T"]:
    """Â_t of one environment's segment (module docstring); ``next_values[t]`` = v(o'_t).

    :func:`rlbook_lib.returns.gae_from_transitions` with discounts γ(1 − terminated_t)."""
    return returns.gae_from_transitions(transitions.reward, gamma * transitions.discount, values, next_values,
                                        transitions.truncated.astype(jnp.float32), lambda_)


def make_batch(net: ActorCritic, params: Any, transitions: rollout.Transition, gamma: Float[Array, ""] | float,
               lambda_: Float[Array, ""] | float) -> Batch:
    """π_θ, log π_θ(a_t | o_t), v(o_t), Â_t and G^λ_t for a segment [N, T] (no gradient flows)."""
    params = jax.lax.stop_gradient(params)
    dist, values = net.apply(params, transitions.obs)
    _, next_values = net.apply(params, transitions.next_obs)
    advantages = jax.vmap(gae, (0, 0, 0, None, None))(transitions, values, next_values, gamma, lambda_)
    return Batch(transitions, dist, dist.log_prob(transitions.action), values, advantages, advantages + values)


def normalize(x: Array) -> Array:
    """(x − mean) / (std + 1e-8) over all entries."""
    return (x - jnp.mean(x)) / (jnp.std(x) + 1e-8)


def explained_variance(values: Array, targets: Array) -> Float[Array, ""]:
    """1 − Var[G − v] / Var[G]: 1 for a perfect critic, 0 for a constant one, < 0 for worse."""
    return 1.0 - jnp.var(targets - values) / jnp.maximum(jnp.var(targets), 1e-8)


def minibatches(key: PRNGKeyArray, batch: Any, num_minibatches: int) -> Any:
    """Flatten [N, T, …] to N·T samples, shuffle, and split into [M, N·T/M, …]."""
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    size = jax.tree_util.tree_leaves(flat)[0].shape[0]
    order = jax.random.permutation(key, size)
    return jax.tree.map(lambda x: x[order].reshape((num_minibatches, -1) + x.shape[1:]), flat)
