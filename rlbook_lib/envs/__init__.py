"""JAX-native environments and their adapter to ``gymnasium.Env``.

``base`` defines the interface (an MDP as pure functions), ``walk`` is chapter
1's 1-D walk, and ``gym_adapter`` turns any of them into a classic gymnasium
environment.
"""

from rlbook_lib.envs import base, gym_adapter, walk

__all__ = ["base", "gym_adapter", "walk"]
