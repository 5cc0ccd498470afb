"""The value-based methods' network: A3C's torso with one Q-value output per action.

Vector observations get A3C's MLP torso; images get the same conv torso A3C uses for them
(worker/networks.py), chosen the same way (--network, or auto from the observation shape).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .models import mlp


class QNetwork(nn.Module):
    def __init__(self, torso: nn.Module, features: int, n_actions: int) -> None:
        super().__init__()
        self.torso = torso
        self.q = nn.Linear(features, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q(s, .) [B, A]."""
        return self.q(self.torso(obs))


def build_q_network(spec, observation_space, action_space) -> QNetwork:
    shape = tuple(observation_space.shape)
    n_actions = int(action_space.n)
    if len(shape) == 1 and getattr(spec, "network", "auto") in ("auto", "mlp"):
        return QNetwork(mlp(shape[0], spec.hidden_size, spec.hidden_layers), spec.hidden_size, n_actions)
    from .models import choose_network  # image torsos: only needed off the vector path
    from .networks import atari_torso, minatar_torso
    kind = choose_network(spec.network, observation_space)
    if kind == "atari":
        return QNetwork(*atari_torso(shape), n_actions)
    if kind == "minatar":
        return QNetwork(*minatar_torso(shape), n_actions)
    flat = int(np.prod(shape))
    return QNetwork(nn.Sequential(nn.Flatten(), *mlp(flat, spec.hidden_size, spec.hidden_layers)),
                    spec.hidden_size, n_actions)
