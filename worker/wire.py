"""What the worker puts on the wire: the summed gradient as float32, or as float16 (--wire-dtype).

Half precision halves the push at Atari size (2.8 MB -> 1.4 MB). The cast saturates at float16's
largest finite value, so an unusually large summed gradient is clipped (the server clips its norm
anyway) instead of turning into Inf, which the server would refuse as non-finite.
"""
from __future__ import annotations

import numpy as np

FLOAT16_MAX = float(np.finfo(np.float16).max)


def gradient_bytes(grads: np.ndarray, dtype: str) -> bytes:
    """The flat float32 gradient as little-endian `dtype` bytes (float32: no conversion)."""
    if dtype == "float16":
        return np.clip(grads, -FLOAT16_MAX, FLOAT16_MAX).astype("<f2").tobytes()
    return grads.tobytes()
