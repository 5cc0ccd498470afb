"""The value-based methods' network: A3C's MLP torso with one Q-value output per action."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .models import mlp


class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.torso = mlp(obs_dim, hidden, layers)
        self.q = nn.Linear(hidden, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q(s, .) [B, A]."""
        return self.q(self.torso(obs))


def build_q_network(spec, observation_space, action_space) -> QNetwork:
    obs_dim = int(np.prod(observation_space.shape))
    return QNetwork(obs_dim, int(action_space.n), spec.hidden_size, spec.hidden_layers)
