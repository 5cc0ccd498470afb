"""The registry of workers known to this server incarnation."""
from __future__ import annotations

import time
from dataclasses import dataclass, field


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
    left_reason: str = ""
    stats: dict = field(default_factory=dict)

    def to_dict(self, now: float) -> dict:
        return {
            "id": self.worker_id, "host": self.host, "pid": self.pid, "seed": self.seed,
            "pushes": self.pushes, "env_steps": self.env_steps, "dropped": self.dropped,
            "mean_staleness": round(self.staleness_sum / (self.pushes - self.dropped), 3)
            if self.pushes > self.dropped else 0.0,
            "last_seen_seconds": round(now - self.last_seen, 3), "connected": self.connected,
            "left_reason": self.left_reason, "stats": dict(self.stats),
            # value-based methods: the worker's current exploration rate, from its last push
            **({"epsilon": self.stats["epsilon"]} if "epsilon" in self.stats else {}),
        }


class WorkerRegistry:
    """Not thread-safe: the caller holds the server lock."""

    def __init__(self) -> None:
        self.workers: dict[int, WorkerInfo] = {}
        self._next_id = 1

    def add(self, host: str, pid: int, seed_for) -> WorkerInfo:
        worker_id = self._next_id
        self._next_id += 1
        info = WorkerInfo(worker_id, host, pid, seed_for(worker_id))
        self.workers[worker_id] = info
        return info

    def get(self, worker_id: int) -> WorkerInfo | None:
        info = self.workers.get(worker_id)
        if info is not None:
            info.last_seen = time.monotonic()
            if not info.connected and not info.left_reason:
                info.connected = True  # came back after a timeout
        return info

    def expire(self, timeout_seconds: float) -> list[int]:
        """Mark workers silent for longer than the timeout as disconnected; returns their ids."""
        now = time.monotonic()
        gone = []
        for info in self.workers.values():
            if info.connected and now - info.last_seen > timeout_seconds:
                info.connected = False
                gone.append(info.worker_id)
        return gone

    @property
    def next_id(self) -> int:
        """The id the next registration gets; checkpointed so ids stay unique across restarts."""
        return self._next_id

    def continue_ids_from(self, next_id: int) -> None:
        self._next_id = max(self._next_id, int(next_id))

    @property
    def connected(self) -> list[WorkerInfo]:
        return [w for w in self.workers.values() if w.connected]
