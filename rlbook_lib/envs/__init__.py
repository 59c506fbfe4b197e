"""JAX-native environments and their adapter to ``gymnasium.Env``.

``base`` defines the interface (an MDP as pure functions). The environments:

- ``walk``: chapter 1's 1-D walk;
- ``cartpole``, ``mountain_car``, ``acrobot``: gymnasium's classic-control
  ``CartPole-v1``, ``MountainCar-v0`` and ``Acrobot-v1``, step for step;
- ``pendulum``: gymnasium's classic-control ``Pendulum-v1``, with continuous
  torques (a ``Box`` action space);
- ``frozen_lake``, ``cliff_walking``: gymnasium's toy-text ``FrozenLake-v1`` and
  ``CliffWalking-v1``, with their tabular models;
- ``random_walk``: the 5-state random walk of Sutton & Barto's Example 6.2;
- ``random_walk_1000``: the 1000-state random walk of Sutton & Barto's Example 9.1,
  with its exact model;
- ``baird``: Baird's counterexample (Sutton & Barto's Example 11.1), with its model
  and features;
- ``max_bias``: the two-state MDP of Sutton & Barto's Example 6.7 (maximisation bias);
- ``one_state``: the one-state MDP of Sutton & Barto's Example 5.5, where ordinary
  importance sampling has infinite variance;
- ``blackjack``: gymnasium's ``Blackjack-v1`` with ``sab=True``, and
  ``blackjack_model``, its exact tabular model;
- ``gridworld``: the dynamic-programming chapter's gridworld (a model only);
- ``dialogue``: a slot-filling booking dialogue with an agenda-based simulated user.

``gym_adapter`` turns any environment into a classic gymnasium environment.
"""

from rlbook_lib.envs import (
    acrobot,
    baird,
    base,
    blackjack,
    blackjack_model,
    cartpole,
    cliff_walking,
    dialogue,
    frozen_lake,
    gridworld,
    gym_adapter,
    max_bias,
    mountain_car,
    one_state,
    pendulum,
    random_walk,
    random_walk_1000,
    walk,
)

__all__ = [
    "acrobot",
    "baird",
    "base",
    "blackjack",
    "blackjack_model",
    "cartpole",
    "cliff_walking",
    "dialogue",
    "frozen_lake",
    "gridworld",
    "gym_adapter",
    "max_bias",
    "mountain_car",
    "one_state",
    "pendulum",
    "random_walk",
    "random_walk_1000",
    "walk",
]
