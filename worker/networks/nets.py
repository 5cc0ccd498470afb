"""The paper's networks for images, and the Gaussian policy head for continuous actions.

One module shape for every domain: a torso (conv or MLP), optionally an LSTM of 256 cells after it,
then a policy head (softmax logits, or a Gaussian's mean and variance) and a linear value head.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from .models import choose_network, mlp

LSTM_CELLS = 256
MIN_VARIANCE = 1e-4  # keeps log(sigma^2) finite when softplus underflows


def _conv_features(conv: nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(conv(torch.zeros(1, *shape)).shape[1])


def atari_torso(shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """Mnih et al. 2016 (after Mnih et al. 2013): conv 16 8x8/4, conv 32 4x4/2, dense 256, all ReLU."""
    conv = nn.Sequential(nn.Conv2d(shape[0], 16, 8, stride=4), nn.ReLU(),
                         nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(), nn.Flatten())
    return nn.Sequential(*conv, nn.Linear(_conv_features(conv, shape), 256), nn.ReLU()), 256


def minatar_torso(shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """Young & Tian 2019's MinAtar network: conv 16 3x3/1, dense 128, ReLU (10x10 images)."""
    conv = nn.Sequential(nn.Conv2d(shape[0], 16, 3, stride=1), nn.ReLU(), nn.Flatten())
    return nn.Sequential(*conv, nn.Linear(_conv_features(conv, shape), 128), nn.ReLU()), 128


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


def softmax_head(features: int, actions: int) -> nn.Linear:
    head = nn.Linear(features, actions)
    nn.init.orthogonal_(head.weight, gain=0.01)
    nn.init.zeros_(head.bias)
    return head


class PolicyValueNet(nn.Module):
    """Torso [-> LSTM] -> policy head and linear value head.

    step() acts one time step and returns the next recurrent state; unroll() recomputes a whole
    rollout [T, K] from the state it started with, zeroing each env's state after its episode ends.
    """

    def __init__(self, torso: nn.Module, features: int, head, lstm: bool, v_torso: nn.Module | None = None) -> None:
        super().__init__()
        self.torso = torso
        self.v_torso = v_torso  # a value torso of its own (vector tasks without an LSTM learn faster so)
        self.lstm = nn.LSTMCell(features, LSTM_CELLS) if lstm else None
        out = LSTM_CELLS if lstm else features
        self.pi = head(out)
        self.v = nn.Linear(out, 1)

    @property
    def recurrent(self) -> bool:
        return self.lstm is not None

    def initial_state(self, batch: int):
        if self.lstm is None:
            return None
        return torch.zeros(batch, LSTM_CELLS), torch.zeros(batch, LSTM_CELLS)

    def step(self, obs: torch.Tensor, state=None):
        """(policy output [B, ...], values [B], next state) for one observation per env."""
        h = self.torso(obs)
        if self.lstm is not None:
            state = self.lstm(h, state)
            h = state[0]
        return (*self._heads(h, obs), state)

    def unroll(self, obs: torch.Tensor, state, dones: torch.Tensor):
        """obs [T, K, ...], the state at the rollout's start, dones [T, K] -> (policy output, values) over T*K.

        The conv torso runs once over all T*K frames; only the LSTM steps through time.
        """
        steps, batch = obs.shape[:2]
        flat = obs.flatten(0, 1)
        h = self.torso(flat)
        if self.lstm is not None:
            features, outputs = h.view(steps, batch, -1), []
            for t in range(steps):
                state = self.lstm(features[t], state)
                outputs.append(state[0])
                state = reset_state(state, dones[t])
            h = torch.stack(outputs).flatten(0, 1)
        return self._heads(h, flat)

    def _heads(self, h: torch.Tensor, obs: torch.Tensor):
        hv = h if self.v_torso is None else self.v_torso(obs)
        return self.pi(h), self.v(hv).squeeze(-1)


def reset_state(state, done: torch.Tensor):
    """Zero the LSTM state of each env whose episode just ended (done [K] bool)."""
    if state is None:
        return None
    keep = (~done).to(state[0].dtype).unsqueeze(1)
    return state[0] * keep, state[1] * keep


def _flat_mlp(shape: tuple[int, ...], spec) -> nn.Module:
    torso = mlp(int(np.prod(shape)), spec.hidden_size, spec.hidden_layers)
    return torso if len(shape) == 1 else nn.Sequential(nn.Flatten(), *torso)


def build_network(spec, observation_space, action_space) -> PolicyValueNet:
    kind = choose_network(spec.network, observation_space)
    shape = tuple(observation_space.shape)
    v_torso = None
    if kind == "atari":
        torso, features = atari_torso(shape)
    elif kind == "minatar":
        torso, features = minatar_torso(shape)
    else:
        torso, features = _flat_mlp(shape, spec), spec.hidden_size
        if not spec.lstm:
            v_torso = _flat_mlp(shape, spec)
    if isinstance(action_space, spaces.Box):
        dims = int(np.prod(action_space.shape))
        return PolicyValueNet(torso, features, lambda n: GaussianHead(n, dims), spec.lstm, v_torso)
    return PolicyValueNet(torso, features, lambda n: softmax_head(n, int(action_space.n)), spec.lstm, v_torso)
