"""What happened to one push inside the server: applied or dropped, at which version, at what rate."""
from __future__ import annotations

from typing import NamedTuple


class Outcome(NamedTuple):  # a NamedTuple: _replace() is cheap on the push path
    applied: bool
    dropped_reason: str
    version_at_apply: int
    staleness: int
    learning_rate: float
    apply_seconds: float
