"""Synchronous mode (--sync): rounds of one push from every live worker, their sum applied once.

A component of ParameterServer, kept apart so the core reads as the paper's asynchronous update. It
shares the server's lock (its condition waits on it), and every method runs with that lock held.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

log = logging.getLogger("ps")

# The core's side of a round: apply this summed gradient once; returns (version at apply, lr).
ApplySum = Callable[[np.ndarray], tuple[int, float]]


class SyncRound:
    """One round's barrier state. Not thread-safe by itself."""

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


class SyncRounds:
    """The rounds of one run. `live()` gives the ids of the connected workers; `apply_sum` is the core's
    single update of a round."""

    def __init__(self, size: int, timeout_seconds: float, lock: threading.Lock,
                 live: Callable[[], set[int]], apply_sum: ApplySum) -> None:
        self.round = SyncRound(size)
        self.timeout_seconds = timeout_seconds
        self._done = threading.Condition(lock)
        self._live = live
        self._apply_sum = apply_sum

    def join(self, worker_id: int, base_version: int, d: np.ndarray) -> tuple[int, float, float]:
        """Add to the round, wait until every live worker has pushed (or the timeout drops the missing
        ones), then return the round's (version at apply, lr, apply seconds)."""
        rnd = self.round
        rnd.add(worker_id, base_version, d)
        my_round = rnd.round_id
        deadline = time.monotonic() + self.timeout_seconds
        if rnd.complete(self._live()):
            self.apply()
        while rnd.round_id == my_round:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = rnd.drop_missing(self._live())
                if missing:
                    log.warning("sync round %d: no push from workers %s within %.1f s; applying without them",
                                my_round, missing, self.timeout_seconds)
                self.apply()
                break
            self._done.wait(remaining)
        return rnd.results[my_round]

    def apply(self) -> None:
        """Apply the round's summed gradient once and release its waiters."""
        start = time.perf_counter()
        version_at_apply, lr = self._apply_sum(self.round.sum)
        self.round.finish(version_at_apply, lr, time.perf_counter() - start)
        self._done.notify_all()

    def release_if_complete(self) -> None:
        """After a worker left: the round may have been waiting only for it."""
        if self.round.complete(self._live()):
            self.apply()

    def release(self) -> None:
        """At stop: apply what the round holds, so workers waiting in it hear 'stop'."""
        if self.round.members:
            self.apply()
