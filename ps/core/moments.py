"""The layout's buffers on the server: kept out of the optimizer's reach, and the running moments
workers report merged into them (ps/api/moments.py has the math).

The server knows no observation: a group `g` is any three buffers `g.mean`, `g.var`, `g.count`, and
a push's moments name the group they belong to. Stored in theta as float32, merged in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ps.api.layout import Layout
from ps.api.moments import BUFFER_SUFFIXES, Moments, merge
from ps.core.errors import invalid

MAX_MOMENTS_PER_PUSH = 8


@dataclass(frozen=True)
class Group:
    """Where one group's statistics sit in theta."""
    mean: slice
    var: slice
    count: int
    size: int


def _groups(buffers) -> dict[str, Group]:
    """The moments groups among (entry, offset) buffers: a group `g` is `g.mean`, `g.var` (same size)
    and `g.count` (one element); other buffers are simply left alone by the optimizer."""
    where = {e.name: (start, e) for e, start in buffers}
    groups = {}
    for name in {n.rsplit(".", 1)[0] for n in where if "." in n}:
        parts = [where.get(f"{name}.{suffix}") for suffix in BUFFER_SUFFIXES]
        if None in parts or parts[0][1].size != parts[1][1].size or parts[2][1].size != 1:
            continue
        (m, e), (v, _), (c, _) = parts
        groups[name] = Group(slice(m, m + e.size), slice(v, v + e.size), c, e.size)
    return groups


class Buffers:
    """The buffers of one layout. check() may run concurrently; hold/restore/merge need the caller's lock."""

    def __init__(self, layout: Layout, start: int = 0, end: int | None = None) -> None:
        """A shard (ps/api/shards.py) holds theta[start:end] and keeps the buffers inside it; a push's
        moments are checked against every group of the layout, and merged where the group is held."""
        end = layout.size if end is None else end
        held = [(e, at - start) for e, at in layout.buffers() if start <= at and at + e.size <= end]
        self.slices = [slice(at, at + e.size) for e, at in held]
        self.groups: dict[str, Group] = _groups(layout.buffers())   # every group: for check()
        self.held: dict[str, Group] = _groups(held)                 # the groups in this slice: for merge()

    def check(self, moments: tuple[Moments, ...], env_steps: int) -> None:
        """A push's moments against the layout and the push: one line of INVALID_ARGUMENT if wrong."""
        if len(moments) > MAX_MOMENTS_PER_PUSH:
            raise invalid("bad_moments", f"at most {MAX_MOMENTS_PER_PUSH} moments per push, got {len(moments)}")
        seen = set()
        for m in moments:
            group = self.groups.get(m.name)
            if group is None or m.name in seen:
                raise invalid("bad_moments", f"moments {m.name[:40]!r} name no buffers of the layout "
                                             f"(it has {sorted(self.groups) or 'none'}), or come twice")
            seen.add(m.name)
            if not (math.isfinite(m.count) and 0 <= m.count <= env_steps and m.count == int(m.count)):
                raise invalid("bad_moments", f"moments {m.name!r}: count {m.count} is not a whole number in "
                                             f"0..{env_steps} (the push's env steps)")
            if len(m.mean) != group.size or len(m.m2) != group.size:
                raise invalid("bad_moments", f"moments {m.name!r}: {len(m.mean)} means and {len(m.m2)} M2s, "
                                             f"the layout's buffer has {group.size}")
            if not (np.isfinite(m.mean).all() and np.isfinite(m.m2).all() and (m.m2 >= 0).all()):
                raise invalid("bad_moments", f"moments {m.name!r}: a mean or M2 is NaN or Inf, or an M2 is < 0")

    def hold(self, theta: np.ndarray) -> list[np.ndarray]:
        """The buffers' values, to put back after the optimizer's pass over all of theta."""
        return [theta[s].copy() for s in self.slices]

    def restore(self, theta: np.ndarray, held: list[np.ndarray], out: np.ndarray | None = None) -> None:
        for s, values in zip(self.slices, held):
            theta[s] = values
            if out is not None:
                out[s] = values

    def merge(self, theta: np.ndarray, moments: tuple[Moments, ...], out: np.ndarray | None = None) -> None:
        """Fold checked moments into the buffers (in theta, and in `out` when it holds a copy of theta)."""
        for m in moments:
            g = self.held.get(m.name)
            if g is None:  # another shard's
                continue
            count = float(theta[g.count])
            held = Moments(m.name, count, theta[g.mean].astype(np.float64), theta[g.var].astype(np.float64) * count)
            total = merge(held, m)
            theta[g.mean] = total.mean
            theta[g.var] = total.m2 / total.count if total.count > 0 else 1.0
            theta[g.count] = total.count
            if out is not None:
                for s in (g.mean, g.var, slice(g.count, g.count + 1)):
                    out[s] = theta[s]
