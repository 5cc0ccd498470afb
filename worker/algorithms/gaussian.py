"""The Gaussian policy of the paper's continuous-action experiments, as pure functions of tensors.

A diagonal Gaussian with mean mu and variance sigma^2 per action dimension (the network's linear and
softplus outputs); dimensions are independent, so log-probabilities and entropies add up over them.
Sampling from it is in worker/algorithms/sampling.py.
"""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(a; mu, sigma^2) summed over the last dimension: -1/2 sum((a-mu)^2/sigma^2 + log sigma^2 + log 2pi)."""
    return -0.5 * ((actions - mean).pow(2) / var + var.log() + LOG_2PI).sum(-1)


def gaussian_entropy(var: torch.Tensor) -> torch.Tensor:
    """Entropy of N(mu, sigma^2) summed over the last dimension: 1/2 sum(log(2 pi e sigma^2))."""
    return 0.5 * (var.log() + LOG_2PI + 1.0).sum(-1)

