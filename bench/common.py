"""Helpers every benchmark shares: a process tree's peak memory, timing from process start, tables.

Memory is PSS (proportional set size) summed over a process and all its descendants: shared pages
(torch's libraries mapped by two workers) count once in total, so the sum compares fairly with
a single process.
"""
from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

MIB = 1024 * 1024
_probe = Console()
console = _probe if _probe.is_terminal else Console(width=140)  # logs and READMEs: no wrapped tables


def tree_pss_bytes(pid: int) -> tuple[int, int]:
    """(PSS summed over pid and all its descendants, number of processes counted) right now."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    total, counted = 0, 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
            counted += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass  # exited between listing and reading: its memory is gone too
    return total, counted


class PeakPss:
    """Samples a process tree's PSS sum on a thread until stopped; keeps the peak.

    with PeakPss(proc.pid) as mem: ...; mem.peak_bytes
    """

    def __init__(self, pid: int, period_seconds: float = 0.2) -> None:
        self.pid = pid
        self.period = period_seconds
        self.peak_bytes = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)

    def __enter__(self) -> "PeakPss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            total, counted = tree_pss_bytes(self.pid)
            self.samples += 1
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_processes = total, counted
            if self._stop.wait(self.period):
                return

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / MIB


@dataclass
class Launched:
    """A subprocess and the wall-clock time (time.time()) just before it was started."""

    proc: subprocess.Popen
    started_unix: float
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)

    def seconds_since_start(self, unix_time: float) -> float:
        return unix_time - self.started_unix


def fresh_run_dir(run_dir: Path) -> Path:
    """run_dir, emptied and made: a checkpoint left there by an earlier run of the same bench would
    make ps-serve resume that run (finished, it stops at once) and the bench report its old pushes."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    return run_dir


def launch(cmd: list[str], log_path: Path | None = None, env: dict | None = None) -> Launched:
    """Start cmd with its output in log_path (or discarded); timing starts just before the fork."""
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if log_path:
        out.close()  # the child holds its own descriptor
    return Launched(proc, started, log_path)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate one process we started (and wait); kill it if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> str:
    """The non-empty contents of path once it appears; raises if proc exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text().strip()):
            return text
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode} before writing {path}")
        time.sleep(0.02)
    raise RuntimeError(f"{path} did not appear within {timeout:.0f} s")


def median(values) -> float:
    """Median with None (did not finish) counted as +inf, so an unsolved seed cannot look fast."""
    vals = [math.inf if v is None else v for v in values]
    return statistics.median(vals) if vals else math.nan


def percentile(values, q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; nan for no values."""
    vals = sorted(values)
    if not vals:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(vals)))
    return vals[rank - 1]


def fmt(value, digits: int = 1, thousands: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "not solved"
    if thousands:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_table(title: str, columns: list[str], rows: list[list], caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[str(c) for c in row])
    console.print(table)
    return table


def python() -> str:
    """The interpreter running the benchmark (the project's venv)."""
    import sys
    return sys.executable


def bin_path(name: str) -> str:
    """A console script installed next to this interpreter."""
    return str(Path(python()).parent / name)


def start_and_collect(procs: list, out, barrier, limit_seconds: float, what: str, on_start=None) -> list:
    """Start processes that meet at `barrier`, then each put one result (or an error string) on
    `out`; returns the results, raising the first error (a dead or hung process is one too).
    `on_start` is called as the barrier releases them (to read counters at the window's start)."""
    import queue

    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=300)
        if on_start is not None:
            on_start()
    except threading.BrokenBarrierError:
        pass  # one failed before the start: its message is in the queue
    results, deadline = [], time.monotonic() + limit_seconds
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=1.0))
        except queue.Empty:
            if time.monotonic() > deadline or not any(p.is_alive() for p in procs):
                results.append(f"{what} died or hung without a result")
                break
    for p in procs:
        p.join(timeout=10)
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        raise RuntimeError(failed[0])
    return results
