"""The A3C LSTM (--lstm): 256 cells after the torso, and its per-env state.

The state is (h, c), each [K, 256], or None for a network without an LSTM; every function here
takes None and gives None back, so callers need not ask which kind they hold.
"""
from __future__ import annotations

import torch
from torch import nn

LSTM_CELLS = 256


def lstm_cell(features: int) -> nn.LSTMCell:
    return nn.LSTMCell(features, LSTM_CELLS)


def zero_state(lstm: nn.LSTMCell | None, batch: int):
    """The state at an episode's start for `batch` envs."""
    if lstm is None:
        return None
    return torch.zeros(batch, LSTM_CELLS), torch.zeros(batch, LSTM_CELLS)


def reset_state(state, done: torch.Tensor):
    """Zero the LSTM state of each env whose episode just ended (done [K] bool)."""
    if state is None:
        return None
    keep = (~done).to(state[0].dtype).unsqueeze(1)
    return state[0] * keep, state[1] * keep


def unroll_lstm(lstm: nn.LSTMCell, features: torch.Tensor, state, dones: torch.Tensor) -> torch.Tensor:
    """features [T, K, F] from the state at the rollout's start -> outputs h [T*K, 256], zeroing each
    env's state after its episode ends (dones [T, K]), exactly as acting stepped it."""
    outputs = []
    for t in range(features.shape[0]):
        state = lstm(features[t], state)
        outputs.append(state[0])
        state = reset_state(state, dones[t])
    return torch.stack(outputs).flatten(0, 1)


def row(state, k: int):
    """Env k's state (for a single observation), or None."""
    return None if state is None else (state[0][k], state[1][k])


def stack_rows(rows: list):
    """The state of a batch of envs from their rows (row()), or None."""
    return None if rows[0] is None else tuple(torch.stack(parts) for parts in zip(*rows))
