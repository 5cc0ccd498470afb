"""The registry of workers known to this server incarnation.

Only live workers are registered. A worker that leaves, or is silent for longer than --worker-timeout,
is reaped at once: its id is gone (a later call with it gets NOT_FOUND and the worker registers
again), and a bounded summary of it is kept among the last DEPARTED_KEPT departed workers (status and
summary.json list them), with a count of all departures. Live registrations are capped, so neither
the registry nor the status document grows with the number of Registers a server has answered.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from ps.core.errors import RequestError

DEPARTED_KEPT = 64   # departed workers whose summaries are kept (status, summary.json)


@dataclass
class WorkerInfo:
    worker_id: int
    host: str
    pid: int
    seed: int
    registered_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    pushes: int = 0
    env_steps: int = 0
    staleness_sum: int = 0
    dropped: int = 0
    connected: bool = True
    left_reason: str = ""       # "" while connected and for a worker that timed out
    timed_out: bool = False
    stats: dict = field(default_factory=dict)
    evaluator: bool = False     # worker-run --evaluator: reports evaluations, never pushes; not a learner

    def to_dict(self, now: float) -> dict:
        return {
            "id": self.worker_id, "role": "evaluator" if self.evaluator else "learner",
            "host": self.host, "pid": self.pid, "seed": self.seed,
            "pushes": self.pushes, "env_steps": self.env_steps, "dropped": self.dropped,
            "mean_staleness": round(self.staleness_sum / (self.pushes - self.dropped), 3)
            if self.pushes > self.dropped else 0.0,
            "last_seen_seconds": round(now - self.last_seen, 3), "connected": self.connected,
            "left_reason": self.left_reason, "timed_out": self.timed_out, "stats": dict(self.stats),
            # value-based methods: the worker's current exploration rate, from its last push
            **({"epsilon": self.stats["epsilon"]} if "epsilon" in self.stats else {}),
        }


class WorkerRegistry:
    """Not thread-safe: the caller holds the server lock."""

    def __init__(self, max_registered: int = 1024, departed_kept: int = DEPARTED_KEPT) -> None:
        self.workers: dict[int, WorkerInfo] = {}          # live workers only
        self.departed: deque[WorkerInfo] = deque(maxlen=departed_kept)
        self.departed_total = 0
        self.max_registered = max_registered
        self._next_id = 1
        self._first_id = 1    # the first id of this incarnation (ids continue across restarts)

    def add(self, host: str, pid: int, seed_for, evaluator: bool = False) -> WorkerInfo:
        if len(self.workers) >= self.max_registered:
            raise RequestError("RESOURCE_EXHAUSTED", "too_many_workers",
                               f"{len(self.workers)} workers are registered, the server's "
                               f"--max-registered-workers; try again once some leave or time out")
        worker_id = self._next_id
        self._next_id += 1
        info = WorkerInfo(worker_id, host, pid, seed_for(worker_id), evaluator=evaluator)
        self.workers[worker_id] = info
        return info

    def get(self, worker_id: int) -> WorkerInfo | None:
        """A live worker, marked as seen now; None for an id that is not (or no longer) registered."""
        info = self.workers.get(worker_id)
        if info is not None:
            info.last_seen = time.monotonic()
        return info

    def depart(self, worker_id: int, reason: str = "", timed_out: bool = False) -> WorkerInfo | None:
        """Reap a live worker: its id is gone; its summary joins the departed. None if it was not live."""
        info = self.workers.pop(worker_id, None)
        if info is not None:
            info.connected, info.left_reason, info.timed_out = False, reason, timed_out
            self.departed.append(info)
            self.departed_total += 1
        return info

    def expire(self, timeout_seconds: float) -> list[int]:
        """Reap workers silent for longer than the timeout; returns their ids."""
        now = time.monotonic()
        gone = [w.worker_id for w in self.workers.values() if now - w.last_seen > timeout_seconds]
        for wid in gone:
            self.depart(wid, timed_out=True)
        return gone

    def departed_info(self, worker_id: int) -> WorkerInfo | None:
        """A recently departed worker's summary (None if it is not among the last kept)."""
        return next((w for w in self.departed if w.worker_id == worker_id), None)

    def issued(self, worker_id: int) -> bool:
        """Whether this incarnation gave out this id (live or departed)."""
        return self._first_id <= worker_id < self._next_id

    def summaries(self, now: float) -> list[dict]:
        """Live workers, then the last departed ones, by id: at most max_registered + DEPARTED_KEPT."""
        infos = sorted([*self.workers.values(), *self.departed], key=lambda w: w.worker_id)
        return [w.to_dict(now) for w in infos]

    @property
    def next_id(self) -> int:
        """The id the next registration gets; checkpointed so ids stay unique across restarts."""
        return self._next_id

    def continue_ids_from(self, next_id: int) -> None:
        self._next_id = max(self._next_id, int(next_id))
        if not self.workers and not self.departed:
            self._first_id = self._next_id

    @property
    def connected(self) -> list[WorkerInfo]:
        """Every live worker, evaluators included."""
        return list(self.workers.values())

    @property
    def learners(self) -> list[WorkerInfo]:
        """The live workers that push (evaluators only report evaluations)."""
        return [w for w in self.workers.values() if not w.evaluator]
