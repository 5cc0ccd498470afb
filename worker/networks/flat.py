"""The flat-buffer view of a network's parameters and gradients.

Every parameter (and its .grad) is a view into one flat float32 tensor in layout order, so loading
fresh weights from the wire is one memcpy and the summed gradient is read without a concatenation.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ps.api.layout import Layout


class FlatParams:
    """Re-homes a module's parameters and gradients into two flat float32 buffers, values and grads.

    `buffers` ((name, initial array) pairs) follow the parameters in the layout, marked as buffers:
    statistics the server keeps (running moments) that no gradient reaches; `buffer(name)` is a
    numpy view of one, as last loaded."""

    def __init__(self, module: nn.Module, buffers=()) -> None:
        named = list(module.named_parameters())
        buffers = list(buffers)
        self.layout = Layout.from_pairs([(name, tuple(p.shape)) for name, p in named] +
                                        [(name, tuple(v.shape), True) for name, v in buffers])
        self.values = torch.zeros(self.layout.size)
        self.grads = torch.zeros(self.layout.size)
        offsets = self.layout.offsets()
        for (name, p), (entry, start) in zip(named, offsets):
            view = slice(start, start + entry.size)
            self.values[view].copy_(p.data.reshape(-1))
            p.data = self.values[view].view(entry.shape)
            p.grad = self.grads[view].view(entry.shape)
        self._values_np = self.values.numpy()
        self._buffers = {}
        for (name, initial), (entry, start) in zip(buffers, offsets[len(named):]):
            self._buffers[name] = self._values_np[start:start + entry.size].reshape(entry.shape)
            self._buffers[name][...] = initial

    def buffer(self, name: str) -> np.ndarray:
        return self._buffers[name]

    def load(self, data: bytes | memoryview) -> None:
        """Overwrite the parameters from raw little-endian float32 bytes (one copy)."""
        np.copyto(self._values_np, np.frombuffer(data, dtype="<f4"))

    def values_bytes(self) -> bytes:
        return self._values_np.tobytes()

    def zero_grads(self) -> None:
        # In place: set_to_none would detach .grad from the flat buffer.
        self.grads.zero_()
