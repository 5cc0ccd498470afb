"""Checks, at server start, that the run's environment exists and suits the algorithm.

The only place the server touches gymnasium: a typo in --env fails at once, not on every worker.
"""
from __future__ import annotations

from .config import VALUE_BASED, ConfigError, RunSpec


_registered = False


def register_optional_envs() -> None:
    """Make ids from optional packages (ALE, MinAtar) known to gymnasium, where installed (once)."""
    global _registered
    if _registered:
        return
    _registered = True
    import gymnasium

    try:
        import ale_py
        gymnasium.register_envs(ale_py)
    except ImportError:
        pass
    try:
        import minatar.gym
        minatar.gym.register_envs()
    except (ImportError, Exception):
        pass


def check_env(spec: RunSpec) -> str:
    """Raise ConfigError if the env id is unknown or its action space does not fit the algorithm.

    Returns a one-line description of the spaces.
    """
    import gymnasium
    from gymnasium import spaces

    register_optional_envs()
    try:
        env = gymnasium.make(spec.env_id)
    except gymnasium.error.Error as err:
        raise ConfigError(f"unknown --env {spec.env_id!r}: {err}") from None
    try:
        obs, act = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(obs, spaces.Box):
        raise ConfigError(f"--env {spec.env_id}: observation space {obs} is not a Box; not supported")
    if spec.algo in VALUE_BASED and not isinstance(act, spaces.Discrete):
        raise ConfigError(f"--algo {spec.algo} needs a discrete action space (one Q-value per action); "
                          f"{spec.env_id} has {act}")
    if not isinstance(act, spaces.Discrete):
        raise ConfigError(f"--env {spec.env_id}: action space {act} is not supported by --algo {spec.algo}")
    return f"{spec.env_id}: observations {obs.shape}, actions {act}"
