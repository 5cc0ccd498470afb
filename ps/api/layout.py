"""The model's layout: named tensors, their shapes and their places in the one flat buffer.

Shared by the server (which checks it) and the workers (which build it from their network), so
both compute the same hash from the same names and shapes.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TensorEntry:
    name: str
    shape: tuple[int, ...]
    buffer: bool = False
    """A statistic the optimizer never moves (running moments, ps/api/moments.py), not a weight."""

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Layout:
    entries: tuple[TensorEntry, ...]

    @property
    def size(self) -> int:
        """Number of float32 elements in the flat buffer."""
        return sum(e.size for e in self.entries)

    @property
    def hash(self) -> str:
        text = ";".join(f"{e.name}:{'x'.join(map(str, e.shape))}{':buffer' if e.buffer else ''}" for e in self.entries)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def offsets(self) -> list[tuple[TensorEntry, int]]:
        """(entry, start offset) for each tensor, in buffer order."""
        out, start = [], 0
        for e in self.entries:
            out.append((e, start))
            start += e.size
        return out

    def buffers(self) -> list[tuple[TensorEntry, int]]:
        """(entry, start offset) of the buffers, in buffer order."""
        return [(e, start) for e, start in self.offsets() if e.buffer]

    def to_dict(self) -> list[dict]:
        return [{"name": e.name, "shape": list(e.shape), **({"buffer": True} if e.buffer else {})}
                for e in self.entries]

    @classmethod
    def from_dict(cls, entries: list[dict]) -> "Layout":
        return cls.from_pairs((e["name"], e["shape"], "buffer" in e and e["buffer"]) for e in entries)

    @classmethod
    def from_pairs(cls, pairs) -> "Layout":
        """From (name, shape) or (name, shape, buffer) tuples."""
        return cls(tuple(TensorEntry(str(p[0]), tuple(int(x) for x in p[1]), bool(p[2]) if len(p) > 2 else False)
                         for p in pairs))
