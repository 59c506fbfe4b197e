r"""DQN (Mnih et al., 2015) and Double DQN (van Hasselt, Guez & Silver, 2016).

An action-value network Q(s, a; θ) is fitted by stochastic gradient steps on the
TD loss over minibatches drawn uniformly from a replay buffer,

.. math::

    L(\theta) = \frac{1}{B} \sum_{i=1}^{B} \ell\big(y_i - Q(s_i, a_i; \theta)\big),
    \qquad y_i = r_i + \gamma_{s'_i} \max_{a'} Q(s'_i, a'; \theta^-),

where ℓ is the Huber (or squared) loss, γ_{s'} = γ (1 − terminal(s')) and θ⁻ is
a target network, a copy of θ that is updated only every C gradient steps
(θ⁻ ← τ θ + (1 − τ) θ⁻; τ = 1 is Mnih et al.'s hard copy, small τ with C = 1
is Polyak averaging). y is held fixed (a semi-gradient: no gradient flows
through y). Double DQN replaces the max by Q(s', argmax_a' Q(s', a'; θ); θ⁻)
(see :mod:`rlbook_lib.dqn_loss`). The data come from ε-greedy actions with a
linearly decaying ε.

=============  ==================================  ======  ==============================================
symbol         code                                shape   meaning
=============  ==================================  ======  ==============================================
N              ``config.num_envs``                 []      environments stepped side by side (vmap)
F              ``config.train_frequency``          []      steps of each environment per gradient step
B              ``config.batch_size``               []      transitions per gradient step
C              ``config.target_update_period``     []      gradient steps between target updates
Q(s, ·; θ)     ``q_network.apply(params, s)``      [A]     the online network's action values
y              ``targets`` in ``dqn_loss.loss``    [B]     TD targets, from θ⁻ (and θ's argmax if double)
=============  ==================================  ======  ==============================================

**One update** steps the N environments F times with ε-greedy actions, adds the
N F transitions to the buffer, then takes one Adam step on a minibatch of B
(only once ``learning_starts`` environment steps have been taken) and perhaps
updates θ⁻. ``train`` runs ``num_updates`` of them in a ``lax.scan``, with a
greedy evaluation (ε = 0, fresh episodes, no learning) every
``evaluation_period`` environment steps.

**Time limits.** A truncated transition keeps γ_{s'} = γ and bootstraps from
its true final observation, which :mod:`rlbook_lib.rollout` records in
``next_obs`` even though the environment was reset.

Example::

    config = dqn.Config()
    env = cartpole.CartPole(); env_params = env.default_params()
    train = jax.jit(jax.vmap(dqn.make_train(config, env, env_params)))
    state, metrics = train(jax.random.split(jax.random.key(0), 8))
    metrics.evaluation.episode_return  # [8 seeds, num_evaluations], greedy returns
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from rlbook_lib import action_selection, checks, dqn_loss, evaluation, networks, replay, rollout
from rlbook_lib.envs.base import Environment


@dataclasses.dataclass(frozen=True)
class Config:
    """DQN's settings. The defaults solve CartPole-v1 (see tests/test_dqn.py)."""

    num_envs: int = 8
    """N, environments stepped side by side."""
    total_steps: int = 100_000
    """Environment steps of the whole run, all N environments together."""
    train_frequency: int = 1
    """F, steps of each environment per gradient step: one gradient step every N F environment steps."""
    buffer_size: int = 10_000
    """Capacity of the replay buffer, in transitions (a buffer of B is learning without replay)."""
    batch_size: int = 64
    """B, transitions per gradient step, drawn uniformly (with replacement) from the buffer."""
    learning_starts: int = 1_000
    """Environment steps taken before the first gradient step."""
    target_update_period: int = 50
    """C, gradient steps between target updates θ⁻ ← τ θ + (1 − τ) θ⁻ (1 with τ = 1: no target network).

    May be an int array inside a vmapped sweep (one compilation for several periods)."""
    tau: float = 1.0
    """τ in (0, 1]: 1 copies θ (Mnih et al.); a small τ with C = 1 is Polyak averaging."""
    epsilon_start: float = 1.0
    """ε at the first step."""
    epsilon_end: float = 0.05
    """ε from ``exploration_steps`` on."""
    exploration_steps: int = 10_000
    """Environment steps over which ε falls linearly from ``epsilon_start`` to ``epsilon_end``."""
    gamma: float = 0.99
    """γ, the discount."""
    learning_rate: float = 2e-3
    """Adam's step size."""
    max_grad_norm: float = 10.0
    """The gradient is rescaled to at most this Euclidean norm before Adam."""
    double: bool = False
    """Double DQN's target (the online network picks a', the target network evaluates it).

    May be a bool array inside a vmapped sweep: both targets are computed and one is selected."""
    huber: bool = True
    """Huber loss (κ = 1) on the TD error; False: the squared error δ²/2. Static."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the Q-network's hidden (tanh) layers."""
    evaluation_period: int = 5_000
    """Environment steps between greedy evaluations; a multiple of N F that divides ``total_steps``."""
    num_eval_episodes: int = 8
    """M, greedy episodes per evaluation."""

    def __post_init__(self):
        for name in ("num_envs", "total_steps", "train_frequency", "buffer_size", "batch_size",
                     "target_update_period", "exploration_steps", "evaluation_period", "num_eval_episodes"):
            if name in _TRACEABLE and isinstance(getattr(self, name), jax.Array):
                continue  # an array in a vmapped sweep is not checked
            checks.check_positive_int(name, getattr(self, name))
        if not isinstance(self.learning_starts, int) or self.learning_starts < 0:
            raise ValueError(f"learning_starts must be an int >= 0, got {self.learning_starts!r}")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must be at least batch_size ({self.batch_size})")
        if self.steps_per_update > self.buffer_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must hold one update's N F = "
                             f"{self.steps_per_update} transitions")
        if self.evaluation_period % self.steps_per_update or self.total_steps % self.evaluation_period:
            raise ValueError(f"evaluation_period ({self.evaluation_period}) must be a multiple of N F = "
                             f"{self.steps_per_update} and divide total_steps ({self.total_steps})")
        sizes = self.hidden_sizes
        if not isinstance(sizes, tuple) or not all(isinstance(w, int) and w > 0 for w in sizes):
            raise ValueError(f"hidden_sizes must be a tuple of positive ints, got {sizes!r}")
        checks.check_hyperparameters(gamma=self.gamma)
        rules = {"epsilon_start": (lambda x: 0 <= x <= 1, "in [0, 1]"),
                 "epsilon_end": (lambda x: 0 <= x <= 1, "in [0, 1]"), "tau": (lambda x: 0 < x <= 1, "in (0, 1]"),
                 "learning_rate": (lambda x: x > 0, "> 0"), "max_grad_norm": (lambda x: x > 0, "> 0")}
        for name, (ok, expected) in rules.items():  # a traced value (a vmapped sweep) is not checked
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not ok(value):
                raise ValueError(f"{name} must be {expected}, got {value!r}")

    @property
    def steps_per_update(self) -> int:
        """N F, environment steps per update (and per gradient step, once learning has started)."""
        return self.num_envs * self.train_frequency

    @property
    def num_updates(self) -> int:
        """Updates in the run: total_steps / (N F)."""
        return self.total_steps // self.steps_per_update

    @property
    def updates_per_evaluation(self) -> int:
        """Updates between two greedy evaluations."""
        return self.evaluation_period // self.steps_per_update

    @property
    def num_evaluations(self) -> int:
        """Greedy evaluations in the run, the last one at its end."""
        return self.total_steps // self.evaluation_period


_TRACEABLE = ("target_update_period",)
"""Int fields that may be arrays (traced in a vmapped sweep), besides the float fields and ``double``."""


class TrainState(NamedTuple):
    params: Any
    """θ, the online network's parameters."""
    target_params: Any
    """θ⁻, the target network's parameters."""
    opt_state: optax.OptState
    """Adam's moments for θ."""
    buffer: replay.ReplayBuffer
    """The last ``buffer_size`` transitions (rollout.Transition items)."""
    env_state: rollout.RolloutState
    """The N environments' states, leaves [N, ...]."""
    env_steps: Int[Array, ""]
    """Environment steps taken so far, all N environments together."""
    gradient_steps: Int[Array, ""]
    """Gradient steps taken so far (none before ``learning_starts``)."""
    key: PRNGKeyArray
    """Key for what comes next."""


Evaluation = evaluation.Summary
"""Greedy evaluations: env_steps, episode_return, discounted_return and initial_value = max_a Q(s_0, a; θ)."""


class Metrics(NamedTuple):
    """Per update (leading update axis after ``train``), except ``evaluation`` (leading evaluation axis)."""

    episode_return: Float[Array, ""]
    """Mean return of the training episodes that ended during the update; NaN if none did."""
    episodes_finished: Int[Array, ""]
    """How many training episodes ended during the update."""
    td_loss: Float[Array, ""]
    """L(θ) on the update's minibatch, before the step."""
    q_mean: Float[Array, ""]
    """Mean of Q(s_i, a_i; θ) over the minibatch."""
    epsilon: Float[Array, ""]
    """ε used for the update's actions."""
    learning: Array
    """Whether a gradient step was taken (False before ``learning_starts``)."""
    evaluation: Evaluation | None = None
    """Greedy evaluations, one every ``evaluation_period`` environment steps (None inside ``update``)."""


def make_network(config: Config, env: Environment, env_params: Any) -> networks.MLP:
    """Q(s, ·; θ): observation → A action values, an MLP with ``config.hidden_sizes``."""
    num_actions = int(env.action_space(env_params).n)
    categories = networks.num_categories(env.observation_space(env_params))
    return networks.MLP(num_actions, config.hidden_sizes, categories)


def epsilon(config: Config, env_steps: Int[Array, ""] | int) -> Float[Array, ""]:
    """ε_t = ε_end + (ε_start − ε_end) max(0, 1 − t / exploration_steps), t in environment steps."""
    frac = jnp.clip(1.0 - env_steps / config.exploration_steps, 0.0, 1.0)
    return config.epsilon_end + (config.epsilon_start - config.epsilon_end) * frac


def policy_fn(q_network: networks.MLP, params: Any, epsilon: float | Array = 0.0) -> rollout.Policy:
    """``act(key, obs) -> action`` on one observation: ε-greedy in Q(obs, ·; θ); ε = 0 (default) is greedy."""

    def act(key: PRNGKeyArray, obs: Array) -> Array:
        q = q_network.apply(params, obs)
        if isinstance(epsilon, (int, float)) and epsilon == 0:
            return action_selection.greedy(q)
        return action_selection.epsilon_greedy(key, q, epsilon)

    return act


loss = dqn_loss.loss
"""``loss(config, q_network, params, target_params, batch) -> (L(θ), LossInfo)``: see :func:`rlbook_lib.dqn_loss.loss`."""


def optimizer(config: Config) -> optax.GradientTransformation:
    """Adam with step size ``learning_rate``, after clipping the gradient's norm to ``max_grad_norm``."""
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))


def init(config: Config, env: Environment, env_params: Any, q_network: networks.MLP,
         key: PRNGKeyArray) -> TrainState:
    """θ = θ⁻ fresh, an empty buffer and N freshly reset environments; all a function of ``key``."""
    key, key_env, key_params = jax.random.split(key, 3)
    env_state = jax.vmap(lambda k: rollout.reset(env, env_params, k))(jax.random.split(key_env, config.num_envs))
    obs = rollout.observe(env, env_params, jax.tree.map(lambda x: x[0], env_state))
    params = q_network.init(key_params, obs)
    example = rollout.Transition(obs, jnp.int32(0), jnp.float32(0), obs, jnp.bool_(False), jnp.bool_(False),
                                 jnp.float32(0), jnp.int32(0))
    return TrainState(params, params, optimizer(config).init(params), replay.init(config.buffer_size, example),
                      env_state, jnp.int32(0), jnp.int32(0), key)


def collect(config: Config, env: Environment, env_params: Any, q_network: networks.MLP, params: Any,
            key: PRNGKeyArray, env_state: rollout.RolloutState,
            eps: Float[Array, ""]) -> tuple[rollout.RolloutState, rollout.Transition]:
    """F steps of each of the N environments with ε-greedy actions; transitions [F · N], oldest first."""
    act = jax.vmap(policy_fn(q_network, params, eps))
    step = jax.vmap(lambda k, s, a: rollout.step(env, env_params, k, s, a))
    steps = []
    for key_step in jax.random.split(key, config.train_frequency):  # F is small: unrolled, no inner loop
        key_act, key_env = jax.random.split(key_step)
        obs = jax.vmap(lambda s: rollout.observe(env, env_params, s))(env_state)
        actions = act(jax.random.split(key_act, config.num_envs), obs)
        env_state, transitions = step(jax.random.split(key_env, config.num_envs), env_state, actions)
        steps.append(transitions)  # leaves [N, ...]
    time_major = jax.tree.map(lambda *x: jnp.concatenate(x), *steps)
    return env_state, time_major


def update(config: Config, env: Environment, env_params: Any, q_network: networks.MLP,
           state: TrainState) -> tuple[TrainState, Metrics]:
    """Collect N F transitions, then (once learning has started) one Adam step and perhaps a target update.

    Before ``learning_starts`` the step is computed and discarded (a select, as ``vmap`` would make it anyway).
    """
    key, key_collect, key_sample = jax.random.split(state.key, 3)
    eps = epsilon(config, state.env_steps)
    env_state, transitions = collect(config, env, env_params, q_network, state.params, key_collect,
                                     state.env_state, eps)
    buffer = replay.add_batch(state.buffer, transitions)
    env_steps = state.env_steps + config.steps_per_update
    batch = replay.sample(buffer, key_sample, config.batch_size)
    grads, info = jax.grad(lambda p: loss(config, q_network, p, state.target_params, batch), has_aux=True)(
        state.params)
    steps, opt_state = optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, steps)

    learning = env_steps >= config.learning_starts
    keep_if_not = lambda new, old: jax.tree.map(lambda n, o: jnp.where(learning, n, o), new, old)  # noqa: E731
    params, opt_state = keep_if_not((params, opt_state), (state.params, state.opt_state))
    gradient_steps = state.gradient_steps + learning.astype(jnp.int32)
    refresh = learning & (gradient_steps % config.target_update_period == 0)
    target_params = jax.tree.map(lambda p, t: jnp.where(refresh, config.tau * p + (1 - config.tau) * t, t),
                                 params, state.target_params)

    stats = rollout.episode_statistics(transitions)
    metrics = Metrics(stats.mean_return, stats.count, info.td_loss, info.q_mean, eps, learning)
    return TrainState(params, target_params, opt_state, buffer, env_state, env_steps, gradient_steps, key), metrics


def evaluate(config: Config, env: Environment, env_params: Any, q_network: networks.MLP, params: Any,
             key: PRNGKeyArray) -> Evaluation:
    """M greedy episodes (:func:`rlbook_lib.evaluation.evaluate`), and the values Q predicts at their starts."""
    episodes = evaluation.evaluate(env, env_params, policy_fn(q_network, params), key, config.num_eval_episodes,
                                   config.gamma)
    initial_value = jnp.max(q_network.apply(params, episodes.initial_obs), axis=-1)
    return Evaluation(jnp.int32(0), jnp.mean(episodes.episode_return), jnp.mean(episodes.discounted_return),
                      jnp.mean(initial_value))


def _check(config: Config, env: Environment, env_params: Any) -> None:
    if not isinstance(config, Config):
        raise ValueError(f"config must be a dqn.Config, got {type(config).__name__}")
    checks.check_environment(env)
    if env.max_episode_steps is None:
        raise ValueError("env.max_episode_steps must be an int: an evaluation episode runs at most that long")
    if not hasattr(env.action_space(env_params), "n"):
        raise ValueError(f"DQN needs a Discrete action space, got {env.action_space(env_params)!r}")
    networks.num_categories(env.observation_space(env_params))  # raises for other spaces


def make_train(config: Config, env: Environment, env_params: Any):
    """``train(key) -> (TrainState, Metrics)``: ``config.num_updates`` updates and the evaluations, one scan.

    ``jax.jit(jax.vmap(train))(keys)`` trains one agent per key in one call.
    """
    _check(config, env, env_params)
    q_network = make_network(config, env, env_params)

    def period(state: TrainState, _) -> tuple[TrainState, Metrics]:
        state, metrics = jax.lax.scan(lambda s, _: update(config, env, env_params, q_network, s), state,
                                      None, config.updates_per_evaluation)
        key, key_eval = jax.random.split(state.key)
        result = evaluate(config, env, env_params, q_network, state.params, key_eval)
        return state._replace(key=key), metrics._replace(evaluation=result._replace(env_steps=state.env_steps))

    def train(key: PRNGKeyArray) -> tuple[TrainState, Metrics]:
        state = init(config, env, env_params, q_network, key)
        state, metrics = jax.lax.scan(period, state, None, config.num_evaluations)
        per_update = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), metrics._replace(evaluation=None))
        return state, per_update._replace(evaluation=metrics.evaluation)  # [num_updates], [num_evaluations]

    return train
