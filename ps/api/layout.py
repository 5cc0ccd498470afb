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
        text = ";".join(f"{e.name}:{'x'.join(map(str, e.shape))}" for e in self.entries)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def offsets(self) -> list[tuple[TensorEntry, int]]:
        """(entry, start offset) for each tensor, in buffer order."""
        out, start = [], 0
        for e in self.entries:
            out.append((e, start))
            start += e.size
        return out

    def to_dict(self) -> list[dict]:
        return [{"name": e.name, "shape": list(e.shape)} for e in self.entries]

    @classmethod
    def from_pairs(cls, pairs) -> "Layout":
        return cls(tuple(TensorEntry(str(n), tuple(int(x) for x in s)) for n, s in pairs))
