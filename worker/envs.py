"""K environments stepped in lockstep, with resets and episode bookkeeping.

Stepped by hand rather than with a gymnasium vector env, so the truncation bootstrap is explicit:
when an episode is cut by a time limit, its final observation is kept for V(s_final).
"""
from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces, wrappers

from ps.api.envs import register_optional_envs
from ps.api.envs import ATARI_FRAME_SKIP, env_family

# The paper's Atari preprocessing (after Mnih et al. 2015), shared by both Atari paths.
ATARI_NOOP_MAX = 30    # up to 30 no-op actions at the start of each episode
ATARI_SCREEN = 84      # frames resized to 84x84 grayscale
ATARI_STACK = 4        # the last 4 frames stacked


def make_env(env_id: str, render_mode: str | None = None) -> gymnasium.Env:
    """The env as the agent sees it: Atari and MinAtar preprocessed, continuous actions clipped.
    render_mode "rgb_array" lets a video recorder wrap it (ps-eval --video)."""
    register_optional_envs(env_id)
    family = env_family(env_id)
    if family == "atari":
        return atari_env(env_id, render_mode)
    env = gymnasium.make(env_id, **_rendering(render_mode))
    if family == "minatar":
        return minatar_env(env)
    if isinstance(env.action_space, spaces.Box):
        return wrappers.ClipAction(env)  # the Gaussian's samples are unbounded; the env gets them clipped
    return env


def _rendering(render_mode: str | None) -> dict:
    """make()'s render_mode only when asked for: not every env's constructor takes one."""
    return {"render_mode": render_mode} if render_mode else {}


def atari_env(env_id: str, render_mode: str | None = None) -> gymnasium.Env:
    """The paper's preprocessing (after Mnih et al. 2015), with gymnasium's own wrappers.

    Frame skip 4 with max-pooling over the last two frames, 84x84 grayscale scaled to [0, 1], up to 30
    no-op starts, 4 stacked frames; no sticky actions (the paper's ALE had none). Training sees rewards
    clipped to [-1, 1]; the raw score, recorded below the clip, is the episode return reported.
    """
    env = gymnasium.make(env_id, frameskip=1, repeat_action_probability=0.0,  # the wrapper skips frames
                         **_rendering(render_mode))
    env = wrappers.AtariPreprocessing(env, noop_max=ATARI_NOOP_MAX, frame_skip=ATARI_FRAME_SKIP,
                                      screen_size=ATARI_SCREEN, grayscale_obs=True, scale_obs=True)
    return clip_rewards_report_score(wrappers.FrameStackObservation(env, ATARI_STACK))


def clip_rewards_report_score(env: gymnasium.Env) -> gymnasium.Env:
    """Rewards clipped to [-1, 1] for training; the raw episode score recorded under the clip."""
    return wrappers.ClipReward(wrappers.RecordEpisodeStatistics(env), -1.0, 1.0)


def minatar_env(env: gymnasium.Env) -> gymnasium.Env:
    """MinAtar's (10, 10, C) boolean images as (C, 10, 10) float32, the layout conv nets take."""
    h, w, c = env.observation_space.shape
    space = spaces.Box(0.0, 1.0, (c, h, w), np.float32)
    return wrappers.TransformObservation(env, lambda o: np.moveaxis(o, -1, 0).astype(np.float32), space)


def make_env_batch(spec, seed: int):
    """The worker's envs for this run: ale-py's C++ vector env for Atari (spec.ale_vector), else an
    EnvBatch of make_env's envs. Both give the same observations, rewards and episode records."""
    if spec.ale_vector and env_family(spec.env_id) == "atari":
        from .ale_vector import AleVectorBatch
        return AleVectorBatch(spec.env_id, spec.envs_per_worker, seed)
    return EnvBatch(spec.env_id, spec.envs_per_worker, seed)


class FinishedEpisodes:
    """What an env batch hands each push: the episodes it finished since the last one (raw scores)."""

    finished_returns: list[float]
    finished_lengths: list[int]

    def take_finished(self) -> tuple[list[float], list[int]]:
        """Returns and lengths of episodes finished since the last call."""
        out = (self.finished_returns, self.finished_lengths)
        self.finished_returns, self.finished_lengths = [], []
        return out

    def take_moments(self) -> tuple:
        """No normalisation here: nothing to report (worker/normalize.py's NormalizedEnvs has the moments)."""
        return ()


class EnvBatch(FinishedEpisodes):
    def __init__(self, env_id: str, count: int, seed: int, render_mode: str | None = None, wrap=None) -> None:
        """`wrap(env, k)`, when given, wraps each env before its first reset (a video recorder)."""
        self.envs = [make_env(env_id, render_mode) for _ in range(count)]
        if wrap is not None:
            self.envs = [wrap(env, k) for k, env in enumerate(self.envs)]
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
            obs, r, term, trunc, info = env.step(actions[k])
            rewards[k] = r
            self.episode_return[k] += r
            self.episode_length[k] += 1
            if term or trunc:
                terminated[k], truncated[k] = term, trunc and not term
                if truncated[k]:
                    final_obs[k] = np.asarray(obs, dtype=np.float32)
                # Where training sees clipped rewards, the raw score recorded under the clip is reported.
                raw = info["episode"]["r"] if "episode" in info else self.episode_return[k]
                self.finished_returns.append(float(raw))
                self.finished_lengths.append(int(self.episode_length[k]))
                self.episode_return[k] = 0.0
                self.episode_length[k] = 0
                obs, _ = env.reset()
            self.obs[k] = obs
        return rewards, terminated, truncated, final_obs

    def close(self) -> None:
        for env in self.envs:
            env.close()
