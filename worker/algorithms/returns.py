"""n-step forward-view returns, shared by A3C and n-step Q, and GAE(lambda) advantages for A3C."""
from __future__ import annotations

import numpy as np


def n_step_returns(rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                   truncation_values: np.ndarray, bootstrap_value: np.ndarray, gamma: float) -> np.ndarray:
    """R_t = r_t + gamma * R_{t+1}, computed backwards over a rollout of shape [T, K].

    - after the last step, R is bootstrapped from bootstrap_value[k] = V(s_T);
    - a terminated step ends its episode: nothing is bootstrapped past it;
    - a truncated step (time limit) also ends the episode, but the future it cut off is
      bootstrapped from truncation_values[t, k] = V(s_final) of that episode.
    """
    T = rewards.shape[0]
    out = np.zeros_like(rewards, dtype=np.float32)
    running = bootstrap_value.astype(np.float32).copy()
    for t in range(T - 1, -1, -1):
        running = np.where(terminated[t], 0.0, np.where(truncated[t], truncation_values[t], running))
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def gae_advantages(rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                   truncation_values: np.ndarray, bootstrap_value: np.ndarray, gamma: float,
                   lam: float) -> np.ndarray:
    """Generalized advantage estimation (Schulman et al. 2016) over a rollout [T, K]:

    delta_t = r_t + gamma * V(s_{t+1}) - V(s_t),   A_t = delta_t + gamma * lambda * A_{t+1},

    with V(s_{t+1}) = 0 after a terminated step and V(s_final) after a truncated one, and A not carried
    across an episode's end. lambda = 1 gives the n-step returns minus V(s_t).
    """
    T = rewards.shape[0]
    out = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros_like(bootstrap_value, dtype=np.float32)
    next_value = bootstrap_value.astype(np.float32)
    for t in range(T - 1, -1, -1):
        ended = terminated[t] | truncated[t]
        following = np.where(terminated[t], 0.0, np.where(truncated[t], truncation_values[t], next_value))
        delta = rewards[t] + gamma * following - values[t]
        running = delta + gamma * lam * np.where(ended, 0.0, running)
        out[t] = running
        next_value = values[t]
    return out
