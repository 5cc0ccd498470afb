"""TensorBoard event files under <run-dir>/tb/, written by the server (no torch, no TensorFlow).

Episodes are written as they finish (charts/episode_return, charts/episode_length,
charts/mean100_return, step = global step T), and so are evaluation rounds (charts/eval_return, the
round's mean, and charts/eval_return_std, at the T they were recorded). Per-push figures are aggregated over a short
interval so the file grows with time, not with the push rate: losses/* (the mean of the loss
terms workers send in each push's `stats`), charts/staleness_p50 and _p99, charts/learning_rate,
charts/steps_per_second and charts/updates_per_second.

A failed write (a full disk ...) never reaches the apply path: the writer is dropped, the fault
counted (disk_faults "tensorboard") and a new event file tried RETRY_SECONDS later; the events in
between are lost.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter, _AsyncWriterThread

from ps.api.source import Push, PushOutcome
from ps.core.observers import Observer
from ps.core.staleness import StalenessStats
from ps.records.faults import DiskFaults

log = logging.getLogger("ps.tensorboard")

INTERVAL_SECONDS = 1.0
QUEUE_EVENTS = 4096   # the writer's queue blocks when full; keep it far from full
RETRY_SECONDS = 10.0  # after a failed write (a full disk ...), a new event file this much later


def _install_quiet_writer_threads() -> None:
    """TensorBoard's writer thread re-raises its write error (a full disk ...), which Python prints as
    a thread traceback; the error resurfaces on our next add_event, where it is counted and said in
    one line (disk_faults "tensorboard"). Other threads' exceptions go to the previous hook."""
    previous = threading.excepthook
    if getattr(previous, "_ps_quiet_tensorboard", False):
        return

    def hook(args) -> None:
        if isinstance(args.thread, _AsyncWriterThread) and isinstance(args.exc_value, Exception):
            return
        previous(args)
    hook._ps_quiet_tensorboard = True
    threading.excepthook = hook


def stat_tag(name: str) -> str:
    """Loss terms go under losses/, other worker figures (epsilon ...) under charts/."""
    return f"losses/{name}" if name.endswith("loss") or name == "entropy" else f"charts/{name}"


class _Interval:
    """What the pushes of one interval add up to."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.staleness = StalenessStats()
        self.env_steps = 0
        self.pushes = 0
        self.stat_sums: dict[str, float] = {}
        self.stat_counts: dict[str, int] = {}
        self.learning_rate: float | None = None

    def add(self, push: Push, event: PushOutcome) -> None:
        self.pushes += 1
        self.env_steps += push.env_steps
        if event.applied:
            self.staleness.record(event.staleness)
            self.learning_rate = event.learning_rate
        for name, value in push.stats.items():
            self.stat_sums[name] = self.stat_sums.get(name, 0.0) + float(value)
            self.stat_counts[name] = self.stat_counts.get(name, 0) + 1

    def scalars(self, now: float) -> dict[str, float]:
        seconds = max(now - self.start, 1e-9)
        out = {"charts/steps_per_second": self.env_steps / seconds,
               "charts/updates_per_second": self.pushes / seconds}
        if self.staleness.total:
            out["charts/staleness_p50"] = self.staleness.percentile(50)
            out["charts/staleness_p99"] = self.staleness.percentile(99)
        if self.learning_rate is not None:
            out["charts/learning_rate"] = self.learning_rate
        for name, total in self.stat_sums.items():
            out[stat_tag(name)] = total / self.stat_counts[name]
        return out


class TensorBoardWriter(Observer):
    """May run concurrently: one lock around the interval and the writer."""

    fault_kind = "tensorboard"

    def __init__(self, logdir: Path, interval_seconds: float = INTERVAL_SECONDS, clock=time.monotonic,
                 faults: DiskFaults | None = None, retry_seconds: float = RETRY_SECONDS) -> None:
        self.logdir = Path(logdir)
        self.faults = faults or DiskFaults()
        self._retry_seconds = retry_seconds
        self._interval_seconds = interval_seconds
        self._clock = clock
        self._interval = _Interval(clock())
        self._last_step = 0
        self._lock = threading.Lock()
        self._closed = False
        self._writer: EventFileWriter | None = None
        self._retry_at = 0.0
        _install_quiet_writer_threads()
        self._open()

    def _open(self) -> None:
        """A new event file (TensorBoard reads every file in the directory). A failure is a fault:
        events are dropped until a retry `retry_seconds` later succeeds."""
        try:
            self._writer = EventFileWriter(str(self.logdir), max_queue_size=QUEUE_EVENTS, flush_secs=2)
        except Exception as err:  # noqa: BLE001 - a full disk, a read-only directory ...
            self._failed(err)

    def _failed(self, err: BaseException) -> None:
        """The writer's thread died (its error resurfaces on the next call) or it could not be made:
        drop it, count the fault, try a new file later."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
        self._retry_at = self._clock() + self._retry_seconds
        self.faults.record("tensorboard", err, f"events dropped; a new event file in {self._retry_seconds:g} s")

    def on_push(self, push: Push, event: PushOutcome) -> None:
        with self._lock:
            if self._writer is None:
                if self._closed or self._clock() < self._retry_at:
                    return
                self._open()
                if self._writer is None:
                    return
            try:
                self._on_push(push, event)
            except Exception as err:  # noqa: BLE001 - never into the apply path
                self._failed(err)

    def _on_push(self, push: Push, event: PushOutcome) -> None:
        step = event.global_step
        for r in push.episode_returns:
            self._scalar("charts/episode_return", r, step, event.time)
        for n in push.episode_lengths:
            self._scalar("charts/episode_length", n, step, event.time)
        if push.episode_returns and event.mean100 is not None:
            self._scalar("charts/mean100_return", event.mean100, step, event.time)
        self._interval.add(push, event)
        self._last_step = max(self._last_step, step)
        now = self._clock()
        if now - self._interval.start >= self._interval_seconds:
            self._write_interval(now)

    def on_evaluation(self, evaluation) -> None:
        with self._lock:
            if self._writer is None:
                return  # closed or failed: the next push reopens it
            try:
                now = time.time()
                self._scalar("charts/eval_return", evaluation.mean, evaluation.global_step, now)
                self._scalar("charts/eval_return_std", evaluation.std, evaluation.global_step, now)
            except Exception as err:  # noqa: BLE001 - never into the server's call
                self._failed(err)

    def close(self) -> None:
        """Write the last interval and close the file. Never raises."""
        with self._lock:
            self._closed = True
            if self._writer is None:
                return
            try:
                if self._interval.pushes:
                    self._write_interval(self._clock())
                self._writer.close()
                self._writer = None
            except Exception as err:  # noqa: BLE001
                self._failed(err)

    def _write_interval(self, now: float) -> None:
        wall = time.time()
        for tag, value in self._interval.scalars(now).items():
            self._scalar(tag, value, self._last_step, wall)
        self._interval = _Interval(now)

    def _scalar(self, tag: str, value: float, step: int, wall_time: float) -> None:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
        self._writer.add_event(event_pb2.Event(wall_time=wall_time, step=int(step), summary=summary))
