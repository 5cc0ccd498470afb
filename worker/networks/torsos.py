"""Torsos: observations -> features. The MLP for vectors, the paper's conv net for Atari frames, a small
conv net for MinAtar, and the one place that picks among them (choose_network)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

ATARI_DENSE, MINATAR_DENSE = 256, 128  # the published dense widths, which --dense-size 0 keeps


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


def build_torso(kind: str, shape: tuple[int, ...], spec) -> tuple[nn.Module, int]:
    """(torso, its feature count) of a network kind (choose_network's answer) for observations of `shape`."""
    if kind == "atari":
        return atari_torso(shape, spec.dense_size or ATARI_DENSE)  # 0: the published width
    if kind == "minatar":
        return minatar_torso(shape, spec.dense_size or MINATAR_DENSE)
    return flat_mlp(shape, spec.hidden_size, spec.hidden_layers), spec.hidden_size


def mlp(in_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """`layers` tanh layers of `hidden` units."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.Tanh()]
    return nn.Sequential(*mods)


def flat_mlp(shape: tuple[int, ...], hidden: int, layers: int) -> nn.Sequential:
    """The MLP over observations of any shape: vectors as they are, anything else flattened first."""
    torso = mlp(int(np.prod(shape)), hidden, layers)
    return torso if len(shape) == 1 else nn.Sequential(nn.Flatten(), *torso)


def atari_torso(shape: tuple[int, ...], dense: int = ATARI_DENSE) -> tuple[nn.Module, int]:
    """Mnih et al. 2016 (after Mnih et al. 2013): conv 16 8x8/4, conv 32 4x4/2, dense 256, all ReLU."""
    conv = nn.Sequential(nn.Conv2d(shape[0], 16, 8, stride=4), nn.ReLU(),
                         nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(), nn.Flatten())
    return _with_dense(conv, shape, dense)


def minatar_torso(shape: tuple[int, ...], dense: int = MINATAR_DENSE) -> tuple[nn.Module, int]:
    """Young & Tian 2019's MinAtar network: conv 16 3x3/1, dense 128, ReLU (10x10 images)."""
    conv = nn.Sequential(nn.Conv2d(shape[0], 16, 3, stride=1), nn.ReLU(), nn.Flatten())
    return _with_dense(conv, shape, dense)


def _with_dense(conv: nn.Sequential, shape: tuple[int, ...], dense: int) -> tuple[nn.Module, int]:
    """The conv layers, then one dense ReLU layer of `dense` units: (torso, dense)."""
    return nn.Sequential(*conv, nn.Linear(_conv_features(conv, shape), dense), nn.ReLU()), dense


def _conv_features(conv: nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(conv(torch.zeros(1, *shape)).shape[1])
