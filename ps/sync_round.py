"""Synchronous mode's barrier: one push from every live worker, their sum applied once.

Not thread-safe by itself: the server calls it under its lock, and waits on a condition of that lock.
"""
from __future__ import annotations

import numpy as np


class SyncRound:
    def __init__(self, size: int) -> None:
        self.sum = np.zeros(size, dtype=np.float32)
        self.members: dict[int, int] = {}   # worker id -> base version of its push in this round
        self.round_id = 0
        self.absent: set[int] = set()       # missed a round by timeout: not waited for until they push again
        self.timeouts = 0                   # workers dropped from a round by the timeout, in all
        self.results: dict[int, tuple[int, float, float]] = {}  # round id -> (version at apply, lr, seconds)

    def add(self, worker_id: int, base_version: int, d: np.ndarray) -> None:
        """Add one worker's gradient to the round (a second push from the same worker adds too)."""
        self.sum += d
        self.members[worker_id] = base_version
        self.absent.discard(worker_id)

    def complete(self, live: set[int]) -> bool:
        """Every live worker not marked absent has pushed in this round."""
        return bool(self.members) and (live - self.absent) <= set(self.members)

    def drop_missing(self, live: set[int]) -> list[int]:
        """At the timeout: live workers that did not push are marked absent; returns them."""
        missing = sorted(live - set(self.members) - self.absent)
        self.absent.update(missing)
        self.timeouts += len(missing)
        return missing

    def finish(self, version_at_apply: int, lr: float, seconds: float) -> None:
        """Record the applied round's result for its waiters and open the next round."""
        self.results[self.round_id] = (version_at_apply, lr, seconds)
        self.results.pop(self.round_id - 16, None)  # waiters read theirs long before this
        self.sum.fill(0.0)
        self.members.clear()
        self.round_id += 1
