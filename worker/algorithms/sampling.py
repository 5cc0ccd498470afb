"""Action sampling without torch.distributions (its per-call overhead dwarfs a small MLP's forward)."""
from __future__ import annotations

import numpy as np
import torch


def sample_categorical(logits: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """One action per row of logits [B, A], by inverse-CDF sampling with the worker's own rng."""
    probs = torch.softmax(logits, dim=-1).numpy()
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1)
