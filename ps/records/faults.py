"""Disk faults of the run's records: counted, logged at most once a minute per kind, never raised.

A full disk, a read-only remount or an I/O error while writing pushes.csv, TensorBoard events,
checkpoints or plots must not stop training: each writer catches its own error, records it here and
tries again later. The counts are in the status document (`disk_faults`, by kind), hence in
summary.json and ps-status, and in Prometheus (`a3c_ps_disk_faults_total{kind}`).
"""
from __future__ import annotations

import logging
import threading
import time

from ps.core.observers import Observer

log = logging.getLogger("ps.records")
LOG_EVERY_SECONDS = 60.0


def describe(err: BaseException) -> str:
    """One line for an exception: an OSError's strerror and file, else its type and message."""
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename else ""
        return f"[Errno {err.errno}] {err.strerror}{where}"
    return f"{type(err).__name__}: {err}".splitlines()[0][:300]


class DiskFaults(Observer):
    """Thread-safe counts of failed writes by kind; an Observer only for its status field."""

    def __init__(self, log_every_seconds: float = LOG_EVERY_SECONDS, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._listeners: list = []
        self._every = log_every_seconds
        self._clock = clock

    def record(self, kind: str, err: BaseException | str, action: str = "", count: int = 1) -> None:
        """Count `count` faults of `kind`; log one line unless this kind logged one in the last minute.
        Never raises."""
        try:
            with self._lock:
                self._counts[kind] = self._counts.get(kind, 0) + count
                now = self._clock()
                last = self._last_logged.get(kind)
                speak = last is None or now - last >= self._every
                if speak:
                    self._last_logged[kind] = now
                    suppressed, self._suppressed[kind] = self._suppressed.get(kind, 0), 0
                else:
                    self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                listeners = list(self._listeners)
            if speak:
                text = err if isinstance(err, str) else describe(err)
                more = f"; {suppressed} more since the last message" if suppressed else ""
                log.error("%s: %s%s%s (disk_faults %s: %d; at most one such line a minute)",
                          kind, text, f"; {action}" if action else "", more, kind, self.count(kind))
            for listener in listeners:
                listener(kind, count)
        except Exception:  # noqa: BLE001 - counting a fault must never become one
            pass
        if isinstance(err, BaseException):
            # A writer may keep its exception (TensorBoard's thread does): its traceback's frames would
            # keep the push's buffers alive (the reply's parameter region among them). Drop them.
            err.__traceback__ = None

    def count(self, kind: str) -> int:
        return self._counts.get(kind, 0)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def subscribe(self, listener) -> None:
        """listener(kind, n) is called after each record (e.g. a Prometheus counter); it first hears
        the counts so far."""
        with self._lock:
            self._listeners.append(listener)
            so_far = dict(self._counts)
        for kind, n in so_far.items():
            listener(kind, n)

    def status_fields(self) -> dict:
        return {"disk_faults": self.counts()}
