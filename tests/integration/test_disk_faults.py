"""Disk faults never stop training, and the records never lie, with real processes on a real full disk
(a 2 MiB tmpfs, filled to the last byte while the server runs) and a real kill -9.

Needs root (mount); skipped with the reason otherwise."""
import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ps.records import checkpoint
from bench.chaos import fill, unmount
from tests.conftest import kill, start_server, start_worker, status_of, wait_for_status

RUN = ("--env", "CartPole-v1", "--algo", "a3c", "--seed", "1", "--target-return", "none", "--envs", "4")


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs, unmounted after the test."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {out.stderr.strip() or out.returncode}")
    try:
        yield mnt
    finally:
        unmount(mnt)


def _wait_for(stub, predicate, what: str, seconds: float = 40.0) -> dict:
    return wait_for_status(stub, predicate, what, seconds)


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _temps(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if re.search(r"\.tmp(\.npz|\.png)?$", p.name)]


def test_a_full_disk_never_stops_training_and_pushes_csv_catches_up_when_room_returns(tmpfs, stub_for):
    run_dir = tmpfs / "run"
    server = start_server(run_dir, *RUN, "--total-steps", "30000", "--checkpoint-every", "1", "--metrics-port", "0")
    workers = [start_worker(server.address) for _ in range(2)]
    try:
        stub = stub_for(server.address)
        _wait_for(stub, lambda s: s["updates"] >= 100, "training to start")
        filler = fill(tmpfs)
        full_at = status_of(stub)["updates"]
        status = _wait_for(stub, lambda s: {"pushes_csv", "checkpoint", "tensorboard"} <= set(s["disk_faults"])
                           and s["updates"] >= full_at + 300, "disk faults counted while training goes on")
        metrics_port = int((run_dir / "metrics_port").read_text())
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        for kind in ("pushes_csv", "checkpoint", "tensorboard"):
            assert re.search(rf'a3c_ps_disk_faults_total{{kind="{kind}"}} [1-9]', scrape), kind
        assert status["state"] == "running"
        filler.unlink()  # room again: the rows kept in memory are written
        assert server.wait(timeout=60) == 0
        for w in workers:
            assert w.wait(timeout=30) == 0, w.stdout.read()
        out = server.proc.stdout.read()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["env_steps"] >= 30000
        assert len(csv_rows(run_dir / "pushes.csv")) == summary["updates"]  # no row lost to the full disk
        assert summary["disk_faults"]["pushes_csv"] >= 1 and summary["disk_faults"]["checkpoint"] >= 1
        assert "pushes_csv_dropped_rows" not in summary["disk_faults"]
        # each kind said at most once a minute (the run is shorter than a minute)
        for kind in ("pushes_csv", "checkpoint", "tensorboard"):
            assert len(re.findall(rf"ERROR {kind}: ", out)) == 1, out[-3000:]
        assert "Traceback" not in out
        assert (run_dir / "params_final.npz").exists() and checkpoint.list_checkpoints(run_dir / "checkpoints")
        assert _temps(run_dir) == []
    finally:
        for p in (server.proc, *workers):
            kill(p)


def test_sigterm_on_a_full_disk_attempts_every_final_write_leaves_no_temp_and_resumes_honestly(tmpfs, stub_for):
    run_dir = tmpfs / "run"
    args = (*RUN, "--total-steps", "100000000", "--checkpoint-every", "1")
    server = start_server(run_dir, *args)
    worker = start_worker(server.address)
    try:
        stub = stub_for(server.address)
        _wait_for(stub, lambda s: s["updates"] >= 200 and len(checkpoint.list_checkpoints(run_dir / "checkpoints")) >= 2,
                  "two checkpoints")
        filler = fill(tmpfs)
        time.sleep(1.5)  # a periodic checkpoint or two fail too
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        out = server.proc.stdout.read()
        assert worker.wait(timeout=30) == 0
        # every final write was attempted on its own, in order, each failure one line (the final
        # checkpoint's may be folded into the periodic one's line: one line per kind a minute)
        said = [m.group(1) for m in re.finditer(r"ERROR (checkpoint|params_final|summary): ", out)]
        assert "checkpoint" in said and said.index("checkpoint") < said.index("params_final") < said.index("summary"), \
            out[-3000:]
        assert "Traceback" not in out
        assert _temps(run_dir) == []  # no half-written temp file keeps its space
        assert not (run_dir / "summary.json").exists()

        filler.unlink()
        again = start_server(run_dir, *args)
        again.proc.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0
        out = again.proc.stdout.read()
        assert "ps-serve: resuming from" in out
        summary = json.loads((run_dir / "summary.json").read_text())
        rows = csv_rows(run_dir / "pushes.csv")
        assert len(rows) == summary["updates"] > 0
        assert sorted(int(r["applied_version"]) for r in rows) == list(range(summary["updates"]))
    finally:
        kill(server.proc)
        kill(worker)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def test_kill_9_and_resume_leave_exactly_one_row_per_update(tmp_path, stub_for):
    """kill -9 mid-run (server and its local workers: a host going down), restart with the same flags:
    pushes.csv holds one row per update, versions 0..updates-1 each once."""
    run_dir = tmp_path / "run"
    args = (*RUN, "--total-steps", "24000", "--checkpoint-every", "1", "--local-workers", "2")
    for target in (6000, 14000):
        server = start_server(run_dir, *args)
        stub = stub_for(server.address)
        try:
            _wait_for(stub, lambda s: s["env_steps"] >= target, f"T {target}", seconds=50)
            family = _descendants(server.proc.pid)
            server.proc.send_signal(signal.SIGKILL)
            for pid in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            server.proc.wait(timeout=10)
        finally:
            kill(server.proc)
    server = start_server(run_dir, *args)
    try:
        assert server.wait(timeout=60) == 0
        out = server.proc.stdout.read()
        assert "ps-serve: resuming from" in out
        summary = json.loads((run_dir / "summary.json").read_text())
        rows = csv_rows(run_dir / "pushes.csv")
        assert summary["env_steps"] >= 24000
        assert len(rows) == summary["updates"]
        assert sorted(int(r["applied_version"]) for r in rows) == list(range(summary["updates"]))
        assert all(len(r) == 9 and None not in r.values() for r in rows)  # no half row from a kill
    finally:
        kill(server.proc)
