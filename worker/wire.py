"""What the worker puts on the wire: the summed gradient as float32, or as float16 (--wire-dtype).

Half precision halves the push at Atari size (2.8 MB -> 1.4 MB). The cast saturates at float16's
largest finite value, so an unusually large summed gradient is clipped (the server clips its norm
anyway) instead of turning into Inf, which the server would refuse as non-finite.
"""
from __future__ import annotations

import numpy as np

from ps.core.optim import narrow_to_float16

FLOAT16_MAX = float(np.finfo(np.float16).max)


def wire_gradients(grads: np.ndarray, dtype: str) -> np.ndarray:
    """The flat float32 gradient as a little-endian `dtype` array: float32 as it is (no copy; the
    client's framing copies it once onto the wire), float16 saturated and cast."""
    if dtype == "float16":
        return narrow_to_float16(grads)
    return grads
