"""What happened to one push inside the server: applied or dropped, at which version, at what rate."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    applied: bool
    dropped_reason: str
    version_at_apply: int
    staleness: int
    learning_rate: float
    apply_seconds: float
