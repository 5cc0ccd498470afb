"""Validation of a pushed gradient: shape, dtype, finiteness. Pure functions, no server state."""
from __future__ import annotations

import math

import numpy as np

from ps.core.errors import RequestError, invalid
from ps.core.optim import sum_of_squares, widen_float16

WIRE_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
MAX_ENV_STEPS_PER_PUSH = 10_000_000


def decode_gradient(data: bytes, dtype: str, shape: list[int], expected_size: int) -> tuple[np.ndarray, float]:
    """The flat gradient as a float32 array (the wire buffer itself for float32, read-only; a widened
    copy for float16), and its L2 norm; raises RequestError if malformed.

    The norm is summed in float64 in one pass, which also catches NaN and Inf: any non-finite
    element makes the norm non-finite, and no finite one can overflow it.
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
    if dtype == "float16":  # widened once here, for the norm and the apply alike
        d = widen_float16(d)
    norm = math.sqrt(sum_of_squares(d))
    if not math.isfinite(norm):
        raise invalid("non_finite", "gradient contains NaN or Inf values")
    return d, norm


def check_counts(env_steps: int, returns, lengths, max_env_steps: int = MAX_ENV_STEPS_PER_PUSH,
                 steps_why: str = "") -> None:
    """A push's env steps and finished episodes, against what one push of the run can hold.

    The cheap bounds come first, so a push carrying a million returns is refused before any of them
    is read: env steps at most `max_env_steps` (the run's RunSpec.max_env_steps_per_push), at most
    one finished episode per env step, returns finite and |r| <= MAX_EPISODE_RETURN."""
    if not 0 <= env_steps <= max_env_steps:
        raise invalid("bad_env_steps", f"env_steps {env_steps} is outside 0..{max_env_steps}"
                                       f"{f' ({steps_why})' if steps_why else ''}")
    if len(returns) > env_steps:  # each finished episode ended on one of this push's steps
        raise invalid("bad_episodes", f"{len(returns)} episodes finished in a push of {env_steps} env steps")
    if lengths and len(lengths) != len(returns):
        raise invalid("bad_episodes", f"{len(returns)} episode returns but {len(lengths)} lengths")
    if not all(math.isfinite(r) for r in returns):
        raise invalid("non_finite", "an episode return is NaN or Inf")
    if any(abs(r) > MAX_EPISODE_RETURN for r in returns):
        raise invalid("bad_episodes", f"an episode return is outside -{MAX_EPISODE_RETURN:g}..{MAX_EPISODE_RETURN:g}")
    if any(n < 0 or n > MAX_EPISODE_LENGTH for n in lengths):
        raise invalid("bad_episodes", f"an episode length is outside 0..{MAX_EPISODE_LENGTH}")


# --- limits on the other fields of Register, Pull and Push (hostile input gets a clear refusal) ---
MAX_EPISODE_LENGTH = 10**9
MAX_EPISODE_RETURN = 1e9      # far above any benchmark's score; keeps mean100 and every sum finite
MAX_REASON_CHARS = 100        # Leave's reason, as logged and reported
MAX_HOST_CHARS = 253          # a DNS name
MAX_PID = 2**31 - 1
MAX_TENSORS = 4096
MAX_NAME_CHARS = 256
MAX_STATS = 64
MAX_STAT_KEY_CHARS = 64
TRANSPORT_SLACK = 2           # gRPC's own cap is this multiple of --max-message-bytes


def check_register(host: str, pid: int) -> None:
    if len(host) > MAX_HOST_CHARS or not host.isprintable():
        raise invalid("bad_register", f"host must be at most {MAX_HOST_CHARS} printable characters")
    if not 0 <= pid <= MAX_PID:
        raise invalid("bad_register", f"pid {pid} is outside 0..{MAX_PID}")


def check_layout(tensors: list[tuple[str, list[int]]], initial_dtype: str) -> None:
    """A layout offered in Pull: named, non-empty tensors of positive dimensions, float32 values."""
    if initial_dtype not in ("", "float32"):
        raise invalid("bad_dtype", "initial parameters must be float32")
    if not 0 < len(tensors) <= MAX_TENSORS:
        raise invalid("bad_layout", f"a layout needs 1..{MAX_TENSORS} tensors, got {len(tensors)}")
    names = set()
    for name, shape in tensors:
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable() or name in names:
            raise invalid("bad_layout", f"tensor names must be unique, printable, 1..{MAX_NAME_CHARS} characters")
        names.add(name)
        if not 0 < len(shape) <= 8 or any(not 0 < d <= 2**31 for d in shape):
            raise invalid("bad_layout", f"tensor {name[:40]!r} has shape {list(shape)[:9]}: need 1..8 positive dimensions")


def check_stats(stats) -> None:
    if len(stats) > MAX_STATS:
        raise invalid("bad_stats", f"at most {MAX_STATS} stats per push, got {len(stats)}")
    for key, value in stats.items():
        if not key or len(key) > MAX_STAT_KEY_CHARS or not key.isprintable():
            raise invalid("bad_stats", f"stat names must be printable, 1..{MAX_STAT_KEY_CHARS} characters")
        if not math.isfinite(value):
            raise invalid("non_finite", f"stat {key!r} is NaN or Inf")


def check_message_size(nbytes: int, limit: int) -> None:
    if nbytes > limit:
        raise RequestError("RESOURCE_EXHAUSTED", "too_large",
                           f"message of {nbytes} bytes exceeds the server's --max-message-bytes {limit}")


def printable(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """Client text made safe for a log line and the status: at most `limit` characters, every
    non-printable character (newlines, escapes, other controls) written as its repr escape."""
    text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text[:limit]


def finite(doc):
    """A JSON-able document with every non-finite float (NaN, +-Inf) replaced by None, so that
    json.dumps(doc, allow_nan=False) succeeds: what Status serves and summary.json holds is JSON."""
    if isinstance(doc, (float, np.floating)):
        return float(doc) if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [finite(v) for v in doc]
    return doc
