"""Environment ids, families and spaces: what server and worker agree on about an env id.

The server checks at start that the run's environment exists and suits the algorithm and network
(check_env), so a typo in --env fails at once, not on every worker.
"""
from __future__ import annotations

import functools

from ps.api.spec import VALUE_BASED, ConfigError, RunSpec

ATARI_FRAME_SKIP = 4  # one agent step is 4 emulator frames (the paper's "frames" count these)
_registered = False


def register_optional_envs(env_id: str | None = None) -> None:
    """Make ids from optional packages (ALE, MinAtar) known to gymnasium, where installed (once).

    Skipped for an env_id gymnasium already knows: importing minatar pulls in seaborn, scipy and
    pandas (~90 MB and ~1 s in every process), which a CartPole run must not pay.
    """
    global _registered
    import gymnasium
    if _registered or (env_id is not None and env_id in gymnasium.registry):
        return
    _registered = True

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


@functools.lru_cache(maxsize=8)
def env_spaces(env_id: str):
    """(observation space, action space) of the raw env; ConfigError if the id is unknown."""
    import gymnasium

    register_optional_envs(env_id)
    try:
        env = gymnasium.make(env_id)
    except gymnasium.error.Error as err:
        raise ConfigError(f"unknown --env {env_id!r}: {err}") from None
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def env_family(env_id: str, action_space=None) -> str:
    """atari (ale-py), minatar, continuous (Box actions) or classic (everything else)."""
    import gymnasium

    register_optional_envs(env_id)
    try:
        entry = str(gymnasium.spec(env_id).entry_point)
    except gymnasium.error.Error:
        entry = ""
    if entry.startswith("ale_py"):
        return "atari"
    if entry.startswith("minatar"):
        return "minatar"
    if action_space is not None and isinstance(action_space, gymnasium.spaces.Box):
        return "continuous"
    return "classic"


def check_env(spec: RunSpec) -> str:
    """Raise ConfigError if the env id is unknown or its spaces do not fit the algorithm or network.

    Returns a one-line description of the spaces.
    """
    from gymnasium import spaces

    obs, act = env_spaces(spec.env_id)
    family = env_family(spec.env_id, act)
    if not isinstance(obs, spaces.Box):
        raise ConfigError(f"--env {spec.env_id}: observation space {obs} is not a Box; not supported")
    if spec.algo in VALUE_BASED and not isinstance(act, spaces.Discrete):
        raise ConfigError(f"--algo {spec.algo} needs a discrete action space (one Q-value per action); "
                          f"{spec.env_id} has {act}")
    if isinstance(act, spaces.Box) and len(act.shape) != 1:
        raise ConfigError(f"--env {spec.env_id}: action space {act} is not a vector; Gaussian policies need shape (D,)")
    if not isinstance(act, (spaces.Discrete, spaces.Box)):
        raise ConfigError(f"--env {spec.env_id}: action space {act} is not supported by --algo {spec.algo} "
                          f"(Discrete, or Box for a3c)")
    images = family in ("atari", "minatar")  # their wrappers hand the network (C, H, W) images
    if spec.network in ("atari", "minatar") and not images and len(obs.shape) != 3:
        raise ConfigError(f"--network {spec.network} needs image observations; {spec.env_id} has shape {obs.shape}")
    if spec.network == "auto" and not images and len(obs.shape) not in (1, 3):
        raise ConfigError(f"--env {spec.env_id}: no network for observations of shape {obs.shape}; "
                          f"choose --network mlp")
    if spec.normalize_obs and images:
        raise ConfigError(f"--normalize-obs is for vector observations; {spec.env_id}'s images are scaled to [0, 1] "
                          f"already")
    return f"{spec.env_id} ({family}): observations {obs.shape}, actions {act}"
