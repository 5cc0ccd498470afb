"""Staleness: its measure, its record, and what the server does with a stale gradient.

staleness = version at apply - version the gradient was computed from. Every push's is recorded
(StalenessStats): exact counts per value (they are small integers), so percentiles are exact, and a
histogram in the published buckets 0, 1, 2, 4, ..., 64+. The policy (decide) applies a stale push,
damps its learning rate, or drops it:

    --max-staleness B      drop pushes with staleness > B (Gorila / Sample Factory style bound)
    --staleness-lr inverse lr for a push = lr(T) / max(1, staleness)  (Zhang et al. 2016,
                           "Staleness-aware Async-SGD")
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64)
"""Upper bounds of the histogram buckets; the last one is open (64+)."""


def staleness(version_at_apply: int, base_version: int) -> int:
    """How many updates landed between the pull a gradient was computed on and its apply."""
    return version_at_apply - base_version


class StalenessStats:
    """Counts of every recorded staleness. Not thread-safe: the caller holds the server lock."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0

    def record(self, value: int) -> None:
        self.counts[value] += 1
        self.total += 1

    def state(self) -> dict[str, int]:
        """For a checkpoint's meta (JSON keys are strings)."""
        return {str(k): v for k, v in self.counts.items()}

    def load_state(self, state: dict[str, int]) -> None:
        self.counts.update({int(k): int(v) for k, v in state.items()})
        self.total = sum(self.counts.values())

    def percentile(self, q: float) -> int:
        """The smallest recorded value v with at least q% of records <= v (0 when empty)."""
        if self.total == 0:
            return 0
        rank = max(1, -(-self.total * q // 100))  # ceil(total * q / 100), at least the first
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        return max(self.counts)

    def max(self) -> int:
        return max(self.counts) if self.counts else 0

    def mean(self) -> float:
        if self.total == 0:
            return 0.0
        return sum(v * c for v, c in self.counts.items()) / self.total

    def histogram(self) -> dict[str, int]:
        """Counts per bucket, labelled "0", "1", "2", "3-4", ..., "64+"."""
        out: dict[str, int] = {}
        lower = 0
        for upper in BUCKETS:
            label = str(upper) if upper == lower else f"{lower}-{upper}"
            out[label] = sum(c for v, c in self.counts.items() if lower <= v <= upper)
            lower = upper + 1
        out[f"{lower}+"] = sum(c for v, c in self.counts.items() if v >= lower)
        return out

    def summary(self) -> dict:
        return {"p50": self.percentile(50), "p90": self.percentile(90), "p99": self.percentile(99),
                "max": self.max(), "mean": round(self.mean(), 3), "count": self.total,
                "histogram": self.histogram()}


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
