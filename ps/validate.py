"""Validation of a pushed gradient: shape, dtype, finiteness. Pure functions, no server state."""
from __future__ import annotations

import math

import numpy as np

from .errors import invalid

WIRE_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
MAX_ENV_STEPS_PER_PUSH = 10_000_000


def decode_gradient(data: bytes, dtype: str, shape: list[int], expected_size: int) -> tuple[np.ndarray, float]:
    """The flat gradient as a read-only float array, and its L2 norm; raises RequestError if malformed.

    The norm is computed in float64 by one dot product, which also catches NaN and Inf: any
    non-finite element makes the norm non-finite.
    """
    if dtype not in WIRE_DTYPES:
        raise invalid("bad_dtype", f"gradient dtype {dtype!r} is not one of {sorted(WIRE_DTYPES)}")
    itemsize = WIRE_DTYPES[dtype].itemsize
    if len(data) % itemsize:
        raise invalid("bad_length", f"gradient payload of {len(data)} bytes is not a whole number of {dtype}")
    count = len(data) // itemsize
    if count != expected_size:
        raise invalid("bad_length", f"gradient has {count} elements, the layout has {expected_size}")
    if shape and math.prod(shape) != count:
        raise invalid("bad_shape", f"gradient shape {list(shape)} does not hold {count} elements")
    d = np.frombuffer(data, dtype=WIRE_DTYPES[dtype])
    wide = d.astype(np.float64) if dtype == "float16" else d
    norm = math.sqrt(float(np.dot(wide, wide))) if dtype == "float16" else _norm32(d)
    if not math.isfinite(norm):
        raise invalid("non_finite", "gradient contains NaN or Inf values")
    return d, norm


def _norm32(d: np.ndarray) -> float:
    # float32 dot may overflow for huge-but-finite values; recheck those in float64 so that
    # only truly non-finite input is refused.
    sq = float(np.dot(d, d))
    if math.isfinite(sq):
        return math.sqrt(sq)
    if not np.isfinite(d).all():
        return math.inf
    return float(np.linalg.norm(d.astype(np.float64)))


def check_counts(env_steps: int, returns: list[float], lengths: list[int]) -> None:
    if not 0 <= env_steps <= MAX_ENV_STEPS_PER_PUSH:
        raise invalid("bad_env_steps", f"env_steps {env_steps} is outside 0..{MAX_ENV_STEPS_PER_PUSH}")
    if not all(math.isfinite(r) for r in returns):
        raise invalid("non_finite", "an episode return is NaN or Inf")
    if lengths and len(lengths) != len(returns):
        raise invalid("bad_episodes", f"{len(returns)} episode returns but {len(lengths)} lengths")
