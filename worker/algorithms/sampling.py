"""Action sampling, the one home for it: softmax policies, Gaussian policies, epsilon-greedy Q.

Without torch.distributions (its per-call overhead dwarfs a small MLP's forward), and with the
worker's own numpy rng, so a worker's actions follow from its seed.
"""
from __future__ import annotations

import numpy as np
import torch


def sample_categorical(logits: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """One action per row of logits [B, A], by inverse-CDF sampling."""
    probs = torch.softmax(logits, dim=-1).numpy()
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1)


def sample_gaussian(mean: torch.Tensor, var: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """One action per row, mu + sigma * eps (unclipped: its log-prob is exact; the env clips it)."""
    mu = mean.numpy()
    return (mu + np.sqrt(var.numpy()) * rng.standard_normal(mu.shape)).astype(np.float32)


def most_likely(policy, continuous: bool) -> np.ndarray:
    """The deterministic action of a policy head: argmax of the logits, or the Gaussian's mean."""
    if continuous:
        return policy[0].numpy().astype(np.float32)
    return policy.argmax(dim=-1).numpy()


def epsilon_greedy(q_values: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """argmax_a Q per row, replaced by a uniform action with probability epsilon."""
    greedy = q_values.argmax(axis=-1)
    explore = rng.random(q_values.shape[0]) < epsilon
    return np.where(explore, rng.integers(0, q_values.shape[-1], q_values.shape[0]), greedy)
