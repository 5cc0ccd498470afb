"""pushes.csv: one row per push, written by a background thread and flushed at least every second.

The apply path only appends a tuple to a list under the server lock; file I/O happens elsewhere.
"""
from __future__ import annotations

import csv
import threading
from pathlib import Path

from ps.api.source import Push, PushOutcome

COLUMNS = ("time_seconds", "worker_id", "base_version", "applied_version", "staleness",
           "env_steps", "grad_norm", "learning_rate", "applied")


def row(push: Push, outcome: PushOutcome) -> tuple:
    """One push's row, in COLUMNS' order."""
    return (round(outcome.time, 4), push.worker_id, push.base_version, outcome.version_at_apply, outcome.staleness,
            push.env_steps, round(outcome.grad_norm, 6), outcome.learning_rate, int(outcome.applied))


class PushLog:
    def __init__(self, path: Path, flush_seconds: float = 0.5) -> None:
        self._path = path
        self._rows: list[tuple] = []
        self._lock = threading.Lock()
        self._file = open(path, "a", newline="")  # appends on resume; a fresh run moved the old file aside
        self._writer = csv.writer(self._file)
        if self._file.tell() == 0:
            self._writer.writerow(COLUMNS)
        self._flush_seconds = flush_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pushlog", daemon=True)
        self._thread.start()

    def append(self, push: Push, outcome: PushOutcome) -> None:
        """May run concurrently."""
        with self._lock:
            self._rows.append(row(push, outcome))

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            if rows:
                self._writer.writerows(rows)
            self._file.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
        self._file.close()
