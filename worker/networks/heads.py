"""Heads: features -> outputs. The softmax policy (logits), the paper's Gaussian policy for continuous
actions, the linear value, and the value-based methods' Q-values (one per action)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_VARIANCE = 1e-4  # keeps log(sigma^2) finite when softplus underflows


def softmax_head(features: int, actions: int) -> nn.Linear:
    """Policy logits, initialised near zero (orthogonal, gain 0.01): the first policy is near uniform."""
    head = nn.Linear(features, actions)
    nn.init.orthogonal_(head.weight, gain=0.01)
    nn.init.zeros_(head.bias)
    return head


class GaussianHead(nn.Module):
    """The paper's continuous policy: a linear mean mu and a softplus variance sigma^2 per action dimension."""

    def __init__(self, features: int, dims: int) -> None:
        super().__init__()
        self.mean = nn.Linear(features, dims)
        self.var = nn.Linear(features, dims)
        nn.init.orthogonal_(self.mean.weight, gain=0.01)
        nn.init.zeros_(self.mean.bias)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(h), F.softplus(self.var(h)) + MIN_VARIANCE


class LogStdGaussianHead(nn.Module):
    """A linear mean and a learned log-std per action dimension that does not depend on the state:
    exploration shrinks only as the policy gradient asks, not with the features (PPO/A2C practice)."""

    def __init__(self, features: int, dims: int, log_std_init: float) -> None:
        super().__init__()
        self.mean = nn.Linear(features, dims)
        self.log_std = nn.Parameter(torch.full((dims,), float(log_std_init)))
        nn.init.orthogonal_(self.mean.weight, gain=0.01)
        nn.init.zeros_(self.mean.bias)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean(h)
        return mean, (2.0 * self.log_std).exp().expand_as(mean) + MIN_VARIANCE


def value_head(features: int) -> nn.Linear:
    """V(s): one linear output (squeezed by the network)."""
    return nn.Linear(features, 1)


def q_head(features: int, actions: int) -> nn.Linear:
    """Q(s, .): one linear output per action."""
    return nn.Linear(features, actions)
