"""What the server does with a stale gradient: apply it, damp its learning rate, or drop it.

    --max-staleness B      drop pushes with staleness > B (Gorila / Sample Factory style bound)
    --staleness-lr inverse lr for a push = lr(T) / max(1, staleness)  (Zhang et al. 2016,
                           "Staleness-aware Async-SGD")
"""
from __future__ import annotations

from dataclasses import dataclass

STALENESS_LR = ("none", "inverse")
TOO_STALE = "too_stale"


@dataclass(frozen=True)
class Decision:
    apply: bool
    learning_rate: float   # effective rate for this push (0 when dropped)
    dropped_reason: str    # "" when applied


def decide(staleness: int, lr: float, max_staleness: int, staleness_lr: str) -> Decision:
    """The policy for one push, a pure function of its staleness and the scheduled lr(T)."""
    if max_staleness > 0 and staleness > max_staleness:
        return Decision(False, 0.0, TOO_STALE)
    if staleness_lr == "inverse":
        lr = lr / max(1, staleness)
    return Decision(True, lr, "")
