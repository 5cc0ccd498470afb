"""Staleness bookkeeping: staleness = version at apply - version the gradient was computed from.

Exact counts per staleness value (they are small integers), so percentiles are exact, and a
histogram in the published buckets 0, 1, 2, 4, ..., 64+.
"""
from __future__ import annotations

from collections import Counter

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
