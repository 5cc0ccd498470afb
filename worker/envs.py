"""K environments stepped in lockstep, with resets and episode bookkeeping.

Stepped by hand rather than with a gymnasium vector env, so the truncation bootstrap is explicit:
when an episode is cut by a time limit, its final observation is kept for V(s_final).
"""
from __future__ import annotations

import gymnasium
import numpy as np

from ps.envcheck import register_optional_envs


def make_env(env_id: str) -> gymnasium.Env:
    register_optional_envs()
    return gymnasium.make(env_id)


class EnvBatch:
    def __init__(self, env_id: str, count: int, seed: int) -> None:
        self.envs = [make_env(env_id) for _ in range(count)]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        first = [env.reset(seed=seed + k)[0] for k, env in enumerate(self.envs)]
        for k, env in enumerate(self.envs):
            env.action_space.seed(seed + k)
        self.obs = np.stack(first).astype(np.float32)
        self.episode_return = np.zeros(count)
        self.episode_length = np.zeros(count, dtype=np.int64)
        self.finished_returns: list[float] = []
        self.finished_lengths: list[int] = []

    def __len__(self) -> int:
        return len(self.envs)

    def step(self, actions: np.ndarray):
        """Step every env; returns (rewards, terminated, truncated, final_obs) and advances self.obs.

        final_obs[k] is the last observation of an episode cut by truncation (else unused).
        """
        n = len(self.envs)
        rewards = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        final_obs = {}
        for k, env in enumerate(self.envs):
            obs, r, term, trunc, _ = env.step(actions[k])
            rewards[k] = r
            self.episode_return[k] += r
            self.episode_length[k] += 1
            if term or trunc:
                terminated[k], truncated[k] = term, trunc and not term
                if truncated[k]:
                    final_obs[k] = np.asarray(obs, dtype=np.float32)
                self.finished_returns.append(float(self.episode_return[k]))
                self.finished_lengths.append(int(self.episode_length[k]))
                self.episode_return[k] = 0.0
                self.episode_length[k] = 0
                obs, _ = env.reset()
            self.obs[k] = obs
        return rewards, terminated, truncated, final_obs

    def take_finished(self) -> tuple[list[float], list[int]]:
        """Returns and lengths of episodes finished since the last call."""
        out = (self.finished_returns, self.finished_lengths)
        self.finished_returns, self.finished_lengths = [], []
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()
