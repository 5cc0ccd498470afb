"""The two networks the agents train: PolicyValueNet (A3C) and QNetwork (the value-based methods).

One module shape for every domain: a torso (MLP or conv), optionally an LSTM of 256 cells after it,
then the heads. Parameter names (and so the layout hash checkpoints hold): torso.*, v_torso.* (the
MLP's own value torso), lstm.*, pi.*, v.* for PolicyValueNet; torso.*, q.* for QNetwork.
"""
from __future__ import annotations

import torch
from torch import nn

from .heads import value_head
from .recurrent import LSTM_CELLS, lstm_cell, unroll_lstm, zero_state


class PolicyValueNet(nn.Module):
    """Torso [-> LSTM] -> policy head and linear value head.

    step() acts one time step and returns the next recurrent state; unroll() recomputes a whole
    rollout [T, K] from the state it started with, zeroing each env's state after its episode ends.
    Without an LSTM the state is None throughout.

    `v_torso`: the value head's own torso, reading the observation (MLP without LSTM: vector tasks
    such as CartPole learn faster and more reliably so); None = both heads share the torso (the paper).
    """

    def __init__(self, torso: nn.Module, features: int, policy_head, lstm: bool,
                 v_torso: nn.Module | None = None) -> None:
        super().__init__()
        self.torso = torso
        self.v_torso = v_torso
        self.lstm = lstm_cell(features) if lstm else None
        out = LSTM_CELLS if lstm else features
        self.pi = policy_head(out)
        self.v = value_head(out)

    @property
    def recurrent(self) -> bool:
        return self.lstm is not None

    def initial_state(self, batch: int):
        return zero_state(self.lstm, batch)

    def step(self, obs: torch.Tensor, state=None):
        """(policy output [B, ...], values [B], next state) for one observation per env."""
        h = self.torso(obs)
        if self.lstm is not None:
            state = self.lstm(h, state)
            h = state[0]
        return (*self._heads(h, obs), state)

    def unroll(self, obs: torch.Tensor, state, dones: torch.Tensor):
        """obs [T, K, ...], the state at the rollout's start, dones [T, K] -> (policy output, values) over T*K.

        The torso runs once over all T*K observations; only the LSTM steps through time.
        """
        steps, batch = obs.shape[:2]
        flat = obs.flatten(0, 1)
        h = self.torso(flat)
        if self.lstm is not None:
            h = unroll_lstm(self.lstm, h.view(steps, batch, -1), state, dones)
        return self._heads(h, flat)

    def _heads(self, h: torch.Tensor, obs: torch.Tensor):
        hv = h if self.v_torso is None else self.v_torso(obs)
        return self.pi(h), self.v(hv).squeeze(-1)


class QNetwork(nn.Module):
    """Torso -> Q(s, .) [B, A]."""

    def __init__(self, torso: nn.Module, features: int, q_head) -> None:
        super().__init__()
        self.torso = torso
        self.q = q_head(features)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q(self.torso(obs))
