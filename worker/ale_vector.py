"""Atari envs stepped in C++: ale-py's vector env, batched, with the paper's preprocessing done there
(frame skip 4 max-pooled over the last two frames, 84x84 grayscale, 4 stacked frames, up to 30
no-op starts, no sticky actions, no terminal on life loss, no FIRE at reset), behind EnvBatch's
interface (worker/envs.py).

The same observations as the gymnasium path: float32 in [0, 1], and right after a reset the stack
is padded with the first frame (gymnasium's FrameStackObservation), not with ale-py's zeros. Rewards
are clipped to [-1, 1] here, so the raw score can be recorded as the episode's return.
"""
from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from ps.api.envs import ATARI_FRAME_SKIP, register_optional_envs

from .envs import ATARI_NOOP_MAX, ATARI_SCREEN, ATARI_STACK, FinishedEpisodes


def vector_settings(env_id: str) -> dict:
    """The AtariVectorEnv arguments for env_id: its game and frame limit from the gymnasium
    registration, the rest the paper's preprocessing."""
    register_optional_envs(env_id)
    kwargs = gymnasium.spec(env_id).kwargs
    return dict(game=kwargs["game"], frameskip=ATARI_FRAME_SKIP, maxpool=True, img_height=ATARI_SCREEN,
                img_width=ATARI_SCREEN, grayscale=True, stack_num=ATARI_STACK, noop_max=ATARI_NOOP_MAX,
                episodic_life=False, use_fire_reset=False, repeat_action_probability=0.0,
                full_action_space=kwargs.get("full_action_space", False),
                max_num_frames_per_episode=kwargs.get("max_num_frames_per_episode", 108_000))


class AleVectorBatch(FinishedEpisodes):
    """EnvBatch's interface (obs, step, take_finished, close) over one AtariVectorEnv."""

    def __init__(self, env_id: str, count: int, seed: int) -> None:
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode
        self.settings = vector_settings(env_id)
        # One stepping thread: each worker process has one core's share, and reward clipping is
        # done here so the raw score stays visible. SAME_STEP: a done env's reset observation comes
        # back in the same step, its final one in info["final_obs"].
        self.env = AtariVectorEnv(**self.settings, num_envs=count,
                                  num_threads=1, reward_clipping=False, autoreset_mode=AutoresetMode.SAME_STEP)
        self.count = count
        self.observation_space = spaces.Box(0.0, 1.0, self.env.single_observation_space.shape, np.float32)
        self.action_space = self.env.single_action_space
        self.action_space.seed(seed)
        raw, _ = self.env.reset(seed=seed)  # env k seeded seed + k, as EnvBatch does
        self.since_reset = np.zeros(count, dtype=np.int64)
        self.obs = np.empty((count, *self.observation_space.shape), np.float32)
        self._adopt(raw)
        self.episode_return = np.zeros(count)
        self.episode_length = np.zeros(count, dtype=np.int64)
        self.finished_returns: list[float] = []
        self.finished_lengths: list[int] = []

    def __len__(self) -> int:
        return self.count

    def step(self, actions: np.ndarray):
        """As EnvBatch.step: (clipped rewards, terminated, truncated, final_obs), self.obs advanced."""
        raw, score, term, trunc, info = self.env.step(np.asarray(actions, dtype=np.int64))
        score = score.astype(np.float64)
        self.episode_return += score
        self.episode_length += 1
        self.since_reset += 1
        done = term | trunc
        truncated = trunc & ~term
        final_obs = {int(k): self._scaled(info["final_obs"][k], k) for k in np.flatnonzero(truncated)}
        for k in np.flatnonzero(done):
            self.finished_returns.append(float(self.episode_return[k]))
            self.finished_lengths.append(int(self.episode_length[k]))
        self.episode_return[done] = 0.0
        self.episode_length[done] = 0
        self.since_reset[done] = 0
        self._adopt(raw)
        return np.clip(score, -1.0, 1.0).astype(np.float32), term.copy(), truncated, final_obs

    def _adopt(self, raw: np.ndarray) -> None:
        np.multiply(raw, np.float32(1 / 255), out=self.obs)
        for k in np.flatnonzero(self.since_reset < ATARI_STACK - 1):
            _pad(self.obs[k], self.since_reset[k])

    def _scaled(self, raw: np.ndarray, k: int) -> np.ndarray:
        obs = raw.astype(np.float32) / 255
        _pad(obs, self.since_reset[k])
        return obs

    def close(self) -> None:
        self.env.close()


def _pad(stack: np.ndarray, since_reset: int) -> None:
    """Frames from before the episode's start are ale-py's zeros: repeat its first frame there."""
    first = ATARI_STACK - 1 - int(since_reset)
    if first > 0:
        stack[:first] = stack[first]
