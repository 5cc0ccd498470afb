"""Networks, and the flat-buffer view of their parameters and gradients.

Every parameter (and its .grad) is a view into one flat float32 tensor in layout order, so loading
fresh weights from the wire is one memcpy and the summed gradient is read without a concatenation.
"""
from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from ps.api.layout import Layout


def mlp(in_dim: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.Tanh()]
    return nn.Sequential(*mods)


class ActorCritic(nn.Module):
    """Softmax policy and linear value heads over MLP torsos.

    `shared=True` is the paper's layout (one torso, two heads); the default gives policy and value
    their own torso, which learns vector tasks such as CartPole faster and more reliably.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: int, layers: int, shared: bool = False) -> None:
        super().__init__()
        self.pi_torso = mlp(obs_dim, hidden, layers)
        self.v_torso = None if shared else mlp(obs_dim, hidden, layers)
        self.pi = nn.Linear(hidden, n_actions)
        self.v = nn.Linear(hidden, 1)
        nn.init.orthogonal_(self.pi.weight, gain=0.01)
        nn.init.zeros_(self.pi.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(policy logits [B, A], values [B])."""
        h = self.pi_torso(obs)
        hv = h if self.v_torso is None else self.v_torso(obs)
        return self.pi(h), self.v(hv).squeeze(-1)

    # The agent's interface, shared with PolicyValueNet: no recurrent state here.
    recurrent = False

    def initial_state(self, batch: int) -> None:
        return None

    def step(self, obs: torch.Tensor, state=None):
        logits, values = self(obs)
        return logits, values, None

    def unroll(self, obs: torch.Tensor, state, dones: torch.Tensor):
        """obs [T, K, ...] -> (logits [T*K, A], values [T*K])."""
        return self(obs.flatten(0, 1))


class FlatParams:
    """Re-homes a module's parameters and gradients into two flat float32 buffers."""

    def __init__(self, module: nn.Module) -> None:
        named = list(module.named_parameters())
        self.layout = Layout.from_pairs((name, tuple(p.shape)) for name, p in named)
        self.values = torch.zeros(self.layout.size)
        self.grads = torch.zeros(self.layout.size)
        for (name, p), (entry, start) in zip(named, self.layout.offsets()):
            view = slice(start, start + entry.size)
            self.values[view].copy_(p.data.reshape(-1))
            p.data = self.values[view].view(entry.shape)
            p.grad = self.grads[view].view(entry.shape)
        self._values_np = self.values.numpy()
        self._grads_np = self.grads.numpy()

    def load(self, data: bytes) -> None:
        """Overwrite the parameters from raw little-endian float32 bytes (one copy)."""
        np.copyto(self._values_np, np.frombuffer(data, dtype="<f4"))

    def values_bytes(self) -> bytes:
        return self._values_np.tobytes()

    def zero_grads(self) -> None:
        # In place: set_to_none would detach .grad from the flat buffer.
        self.grads.zero_()

    def grads_bytes(self, dtype: str = "float32") -> bytes:
        if dtype == "float16":
            return self._grads_np.astype("<f2").tobytes()
        return self._grads_np.tobytes()

    def grad_norm(self) -> float:
        return float(np.linalg.norm(self._grads_np))


def build_model(spec, observation_space, action_space) -> nn.Module:
    """The network for this run: chosen from the observation space unless spec.network names one."""
    from .networks import build_network
    if (not spec.lstm and isinstance(action_space, spaces.Discrete) and len(observation_space.shape) == 1
            and choose_network(spec.network, observation_space) == "mlp"):
        # Vector observations, discrete actions: the two-torso MLP that solves CartPole in seconds.
        obs_dim = int(np.prod(observation_space.shape))
        return ActorCritic(obs_dim, int(action_space.n), spec.hidden_size, spec.hidden_layers)
    return build_network(spec, observation_space, action_space)


def choose_network(network: str, observation_space) -> str:
    """auto: vectors get the MLP; images (C, H, W) the paper's conv net if it fits (>= 36 px), else MinAtar's."""
    if network != "auto":
        return network
    shape = observation_space.shape
    if len(shape) == 1:
        return "mlp"
    if len(shape) == 3:
        return "atari" if min(shape[1:]) >= 36 else "minatar"
    raise ValueError(f"no network for observations of shape {shape}: expected a vector or a (C, H, W) image")
