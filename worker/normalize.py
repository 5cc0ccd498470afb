"""Observation and reward normalisation with statistics shared by all workers (VecNormalize's, kept
on the server as layout buffers).

The network sees (obs - mean) / sqrt(var + eps) clipped to +-clip_obs, with the mean and variance
of every worker's observations as the last reply carried them; rewards are divided by the running
std of the discounted return, clipped to +-clip_reward. What this worker saw since its last push
goes back as moments with the push (ps/api/moments.py), and the server merges them.
"""
from __future__ import annotations

import numpy as np

from ps.api.moments import OBS_NORM, RET_NORM, VAR_EPS, Moments, batch_moments, buffer_entries, initial_values


def normalization_buffers(spec, observation_space) -> list[tuple[str, np.ndarray]]:
    """The layout buffers this run's network carries after its parameters: (name, initial value)."""
    groups = ([(OBS_NORM, tuple(observation_space.shape))] if spec.normalize_obs else []) + \
             ([(RET_NORM, (1,))] if spec.normalize_reward else [])
    out = []
    for group, shape in groups:
        out += [(name, value) for (name, _), value in zip(buffer_entries(group, shape), initial_values(shape))]
    return out


def normalize(obs: np.ndarray, mean: np.ndarray, var: np.ndarray, clip: float) -> np.ndarray:
    """VecNormalize's observation transform, in float32."""
    return np.clip((obs - mean) / np.sqrt(var + VAR_EPS), -clip, clip).astype(np.float32)


class NormalizedEnvs:
    """An EnvBatch (worker/envs.py) whose observations and rewards come out normalised with the
    buffers of `flat` (read at each use, so a freshly loaded reply counts at once). `learn=False`
    (evaluation) records no moments. Episode returns stay the env's own (EnvBatch sums the raw rewards)."""

    def __init__(self, envs, spec, flat, learn: bool = True) -> None:
        self.inner, self.spec, self.learn = envs, spec, learn
        self.observation_space, self.action_space = envs.observation_space, envs.action_space
        self.obs_stats = (flat.buffer(f"{OBS_NORM}.mean"), flat.buffer(f"{OBS_NORM}.var")) \
            if spec.normalize_obs else None
        self.ret_var = flat.buffer(f"{RET_NORM}.var") if spec.normalize_reward else None
        self.discounted = np.zeros(len(envs))   # each env's discounted return so far (reward scaling)
        self._seen_obs: list[np.ndarray] = []
        self._seen_returns: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def obs(self) -> np.ndarray:
        return self._normalized(self.inner.obs)

    def step(self, actions: np.ndarray):
        """EnvBatch.step with normalised observations (final ones too) and scaled rewards."""
        if self.learn and self.obs_stats is not None:
            self._seen_obs.append(self.inner.obs.copy())  # the observations acted on: one per env step
        rewards, terminated, truncated, final_obs = self.inner.step(actions)
        if self.ret_var is not None:
            self.discounted = self.discounted * self.spec.gamma + rewards
            if self.learn:
                self._seen_returns.append(self.discounted.copy())
            rewards = np.clip(rewards / np.sqrt(float(self.ret_var[0]) + VAR_EPS), -self.spec.clip_reward,
                              self.spec.clip_reward).astype(np.float32)
            self.discounted[terminated | truncated] = 0.0
        final_obs = {k: self._normalized(o) for k, o in final_obs.items()}
        return rewards, terminated, truncated, final_obs

    def take_moments(self) -> tuple[Moments, ...]:
        """Moments of what was seen since the last call, one per group."""
        out = []
        if self._seen_obs:
            out.append(batch_moments(OBS_NORM, np.concatenate(self._seen_obs)))
        if self._seen_returns:
            out.append(batch_moments(RET_NORM, np.concatenate(self._seen_returns)))
        self._seen_obs, self._seen_returns = [], []
        return tuple(out)

    def take_finished(self):
        return self.inner.take_finished()

    def close(self) -> None:
        self.inner.close()

    def _normalized(self, obs: np.ndarray) -> np.ndarray:
        if self.obs_stats is None:
            return obs
        return normalize(obs, *self.obs_stats, self.spec.clip_obs)


def normalized(envs, spec, flat, learn: bool = True):
    """envs wrapped in NormalizedEnvs when the run normalises anything, else envs itself."""
    return NormalizedEnvs(envs, spec, flat, learn) if spec.normalize_obs or spec.normalize_reward else envs
