"""Run one real cluster (ps-serve on port 0 plus worker-run subprocesses) and collect what it left.

Shared by the experiment benchmarks (staleness, robustness, sync vs async).
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.cartpole import StatusPoller
from bench.common import bin_path, console, fresh_run_dir, launch, stop_process, wait_for_file


@dataclass
class ClusterRun:
    label: str
    seed: int
    summary: dict
    curve: list = field(default_factory=list)    # (seconds since launch, env steps, mean100)
    rows: list = field(default_factory=list)     # pushes.csv as dicts
    wall_seconds: float = 0.0                    # launch to server exit

    @property
    def ok(self) -> bool:
        return bool(self.summary)

    @property
    def solved(self) -> bool:
        return bool(self.summary.get("solved"))

    def dropped_fraction(self) -> float:
        return sum(1 for r in self.rows if r["applied"] == "0") / max(1, len(self.rows))

    def steps_per_second(self) -> float:
        return self.summary.get("env_steps", 0) / max(self.summary.get("wall_seconds", 0), 1e-9)


def run_cluster(run_dir: Path, label: str, seed: int, server_args: list[str], workers: int,
                worker_args: list[str] = (), timeout: float = 600.0) -> ClusterRun:
    """ps-serve with server_args and `workers` worker-run processes; waits for the run to end."""
    fresh_run_dir(run_dir)
    server = launch([bin_path("ps-serve"), "--port", "0", "--run-dir", str(run_dir), "--seed", str(seed),
                     "--progress-seconds", "5", *server_args], run_dir / "server.log")
    procs, poller = [], None
    try:
        port = int(wait_for_file(run_dir / "port", server.proc))
        poller = StatusPoller(port, server.started_unix)
        procs = [launch([bin_path("worker-run"), "--ps", f"127.0.0.1:{port}", *worker_args],
                        run_dir / f"worker{i}.log") for i in range(workers)]
        server.proc.wait(timeout=timeout)
    except Exception as err:  # a run that fails or hangs is reported, never hangs the benchmark
        console.print(f"[red]{label} seed {seed}: {err}[/red]")
    finally:
        if poller:
            poller.close()
        for p in (*[w.proc for w in procs], server.proc):
            stop_process(p)
    wall = time.time() - server.started_unix
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    rows = []
    if (run_dir / "pushes.csv").exists():
        with open(run_dir / "pushes.csv") as f:
            rows = list(csv.DictReader(f))
    return ClusterRun(label, seed, summary, poller.curve if poller else [], rows, wall)
