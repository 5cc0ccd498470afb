"""pushes.csv: one row per push, written by a background thread and flushed at least every second.

The apply path only appends a tuple to a list (under this log's own small lock); file I/O happens
elsewhere and never raises into it.

Rows reach the file in version order (a push's row is held until the rows of all earlier versions
have arrived, at most HOLD_SECONDS), so a checkpoint can record how many rows belong to it: before a
checkpoint, sync_through(version) writes exactly the rows of the updates before `version`, fsyncs
them and returns their count, which the checkpoint keeps (meta "pushlog_rows") and the resume cuts
the file back to. After any crash and resume, the rows still match the updates.

A failed write (a full disk ...) keeps the unwritten bytes and rows in memory, counts a disk fault
(kind "pushes_csv") and tries again on the next flush; beyond MAX_PENDING_ROWS rows in memory new
rows are dropped and counted (kind "pushes_csv_dropped_rows").
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import threading
import time
from pathlib import Path

from ps.api.source import Push, PushOutcome
from ps.records.faults import DiskFaults

COLUMNS = ("time_seconds", "worker_id", "base_version", "applied_version", "staleness",
           "env_steps", "grad_norm", "learning_rate", "applied")
HOLD_SECONDS = 2.0          # longest a row waits for the rows of earlier versions
MAX_PENDING_ROWS = 500_000  # rows kept in memory while the disk refuses them (~100 bytes each)


def row(push: Push, outcome: PushOutcome) -> tuple:
    """One push's row, in COLUMNS' order."""
    return (round(outcome.time, 4), push.worker_id, push.base_version, outcome.version_at_apply, outcome.staleness,
            push.env_steps, round(outcome.grad_norm, 6), outcome.learning_rate, int(outcome.applied))


def _format(rows: list[tuple]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def count_rows(path: Path) -> int:
    """Data rows (complete lines after the header) in a pushes.csv."""
    lines = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(0, lines - 1)


class PushLog:
    def __init__(self, path: Path, flush_seconds: float = 0.5, faults: DiskFaults | None = None) -> None:
        self._path = Path(path)
        self.faults = faults or DiskFaults()
        self._lock = threading.Lock()        # the pending rows and the version tracker
        self._io_lock = threading.RLock()    # the file: one writer at a time, held across a checkpoint's sync
        self._pending: list[tuple] = []      # (sort key, arrival, row)
        self._next_version = 0               # every applied version below this has its row pending or written
        self._ahead: set[int] = set()        # applied versions seen past a gap
        self._tail = b""                     # formatted bytes the disk refused so far
        self._tail_rows = 0
        self._tail_header = 0                # 1 while the header line is still in _tail
        self.rows_on_disk = 0                # data rows written (not necessarily fsynced)
        self.dropped_rows = 0
        self._fd: int | None = None
        self._open()
        self._flush_seconds = flush_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pushlog", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        """Open (appending: a resume cut the file back, a fresh run moved the old one aside); write the
        header into a new file. A failure is a fault: the next flush tries again."""
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            self.faults.record("pushes_csv", err, "rows kept in memory; retrying")
            return
        size = os.fstat(fd).st_size
        self._fd = fd
        if size == 0:
            self._tail = (",".join(COLUMNS) + "\n").encode() + self._tail
            self._tail_header = 1
        else:
            self.rows_on_disk = count_rows(self._path)

    def expect_version(self, version: int) -> None:
        """The first version this server life applies (a resumed run's checkpoint version)."""
        with self._lock:
            self._next_version, self._ahead = version, {v for v in self._ahead if v > version}

    def append(self, push: Push, outcome: PushOutcome) -> None:
        """May run concurrently; never raises, never touches the disk."""
        v = outcome.version_at_apply
        with self._lock:
            if len(self._pending) + self._tail_rows >= MAX_PENDING_ROWS:
                self.dropped_rows += 1
                dropped = True
            else:
                dropped = False
                self._pending.append(((v, int(outcome.applied)), time.monotonic(), row(push, outcome)))
                if outcome.applied:
                    if v == self._next_version:
                        self._next_version += 1
                        while self._next_version in self._ahead:
                            self._ahead.remove(self._next_version)
                            self._next_version += 1
                    elif v > self._next_version:
                        self._ahead.add(v)
        if dropped:
            self.faults.record("pushes_csv_dropped_rows", f"{MAX_PENDING_ROWS} rows waiting for the disk",
                               "this row is dropped")

    def _take(self, below: int | None = None, hold: float = HOLD_SECONDS) -> list[tuple]:
        """Pending rows that may be written now, in version order: those of versions before the
        tracker's contiguous prefix (a dropped push at the prefix's version too), or waiting longer
        than `hold`; with `below`, only rows of versions before it."""
        now = time.monotonic()
        with self._lock:
            nxt = self._next_version
            if below is not None:
                ready = [p for p in self._pending if p[0][0] < below]
            else:
                ready = [p for p in self._pending
                         if p[0][0] < nxt or (p[0][1] == 0 and p[0][0] <= nxt) or now - p[1] >= hold]
            if ready:
                taken = {id(p) for p in ready}
                self._pending = [p for p in self._pending if id(p) not in taken]
        ready.sort(key=lambda p: (p[0], p[1]))
        return [p[2] for p in ready]

    def _write(self, rows: list[tuple]) -> bool:
        """Write the refused bytes so far and then `rows`; True when everything is on disk (caller
        holds the io lock). A failure keeps the rest for the next try."""
        if rows:
            self._tail += _format(rows)
            self._tail_rows += len(rows)
        if not self._tail:
            return True
        if self._fd is None:
            self._open()
            if self._fd is None:
                return False
        view = memoryview(self._tail)
        written = 0
        try:
            while written < len(view):
                written += os.write(self._fd, view[written:])
        except OSError as err:
            self.faults.record("pushes_csv", err, f"{self._tail_rows} rows kept in memory; retrying")
            return False
        finally:
            done = bytes(view[:written])
            self._tail = self._tail[written:]
            lines = done.count(b"\n")
            header_done = min(lines, self._tail_header)
            self._tail_header -= header_done
            rows_done = lines - header_done
            self.rows_on_disk += rows_done
            self._tail_rows = max(0, self._tail_rows - rows_done)
        return True

    def flush(self, hold: float = HOLD_SECONDS) -> bool:
        """Write what may be written; True when nothing is left unwritten. Never raises."""
        with self._io_lock:
            return self._write(self._take(hold=hold))

    def _fsync(self) -> bool:
        if self._fd is None:
            return False
        try:
            os.fsync(self._fd)
            return True
        except OSError as err:
            self.faults.record("pushes_csv", err, "fsync failed; retrying")
            return False

    @contextlib.contextmanager
    def checkpoint_sync(self):
        """Hold the file still around a checkpoint's state snapshot: yields sync(version), which waits
        (up to `wait` s) for the rows of every update before `version`, writes exactly those, fsyncs
        and returns the rows now on disk, or None when they could not all be written."""
        with self._io_lock:
            def sync(version: int, wait: float = 5.0) -> int | None:
                deadline = time.monotonic() + wait
                while True:
                    with self._lock:
                        if self._next_version >= version:
                            break
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.002)
                ok = self._write(self._take(below=version))
                ok = self._fsync() and ok
                return self.rows_on_disk if ok and not self._tail else None
            yield sync

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()

    def close(self) -> None:
        """Write every row left (version order), fsync, close. Rows the disk still refuses are counted
        as dropped. Never raises."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._io_lock:
            self._write(self._take(hold=0.0))
            self._fsync()
            if self._tail_rows or self._tail:
                self.dropped_rows += self._tail_rows
                self.faults.record("pushes_csv_dropped_rows", f"{self._tail_rows} rows could not be written at exit",
                                   count=max(1, self._tail_rows))
                self._tail, self._tail_rows = b"", 0
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None
