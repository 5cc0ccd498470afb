"""Running moments (count, mean, M2) and their parallel merge, shared by server and worker.

A worker reports the moments of the values it saw since its last push; the server merges them into
the run's statistics, held as layout buffers `<group>.mean`, `<group>.var` and `<group>.count` (the
group names below). The merge is the pairwise form of Welford's update (Chan, Golub and LeVeque,
1979): exact for any split of the data, in float64. Numpy only: ps/api carries no torch.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

OBS_NORM = "obs_norm"    # the observations' moments, per element of the observation
RET_NORM = "ret_norm"    # the discounted return's moments (reward scaling), one element
VAR_EPS = 1e-8           # added to the variance under the square root (VecNormalize's epsilon)
BUFFER_SUFFIXES = ("mean", "var", "count")


class Moments(NamedTuple):
    """The moments of `count` values of one group: their mean and M2 = sum((x - mean)^2), per element."""
    name: str
    count: float
    mean: np.ndarray    # float64, flat
    m2: np.ndarray      # float64, flat


def batch_moments(name: str, values: np.ndarray) -> Moments:
    """Moments of a batch [N, *shape] of values, flattened per element."""
    x = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    mean = x.mean(axis=0)
    return Moments(name, float(len(x)), mean, ((x - mean) ** 2).sum(axis=0))


def merge(a: Moments, b: Moments) -> Moments:
    """The moments of a's values and b's together (Chan et al.'s parallel update)."""
    n = a.count + b.count
    if n == 0:
        return a
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / n)
    m2 = a.m2 + b.m2 + delta ** 2 * (a.count * b.count / n)
    return Moments(a.name, n, mean, m2)


def empty(name: str, size: int) -> Moments:
    return Moments(name, 0.0, np.zeros(size), np.zeros(size))


def buffer_entries(name: str, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """The layout buffers holding a group's statistics: mean and var of `shape`, and the count."""
    return [(f"{name}.mean", shape), (f"{name}.var", shape), (f"{name}.count", (1,))]


def initial_values(shape: tuple[int, ...]) -> list[np.ndarray]:
    """mean 0, var 1, count 0: normalising with them leaves values as they are."""
    return [np.zeros(shape, np.float32), np.ones(shape, np.float32), np.zeros(1, np.float32)]
