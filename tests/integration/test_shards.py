"""Gorila's sharded parameter server with real processes: `ps-serve --shards 2 --local-workers 2` (two
ps-serve shards, two worker processes, real gRPC) solves CartPole; a shard killed with SIGKILL mid-run
is restarted on its port, resumes from its checkpoint, takes the other shard's T, and the run completes
with both shards stopping at the same T and every shard's records agreeing with it; a whole run started
again resumes every shard from one consistent checkpoint tag; the shards die with their launcher."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ps.api.saved import load_policy
from tests.conftest import cli, reached

CARTPOLE = ["--env", "CartPole-v1", "--algo", "a3c", "--seed", "1", "--shards", "2", "--local-workers", "2"]


def run_sharded(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([cli("ps-serve"), "--port", "0", "--run-dir", str(root), *CARTPOLE, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, seconds: float) -> str:
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"the sharded run did not finish in {seconds:.0f} s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    return out


def running(pid: int) -> bool:
    """The process exists and has not exited (an orphan's zombie waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def rows(path: Path) -> int:
    return path.read_text().count("\n") - 1


def test_two_shards_and_two_workers_solve_cartpole_and_leave_one_policy(tmp_path):
    root = tmp_path / "run"
    out = finish(run_sharded(root, "--target-return", "475", "--total-steps", "600000"), 240)
    summary = json.loads((root / "summary.json").read_text())
    assert reached(summary, 475), out[-2000:]
    first, second = summary["shards"]
    # every push went to both shards: the same T, the same updates, the same stop, each slice half the buffer
    assert first["env_steps"] == second["env_steps"] == summary["env_steps"]
    assert first["updates"] == second["updates"] == summary["updates"]
    assert first["stop_reason"] == summary["stop_reason"] and second["stop_reason"].startswith("mean100")
    assert first["shard"]["end"] == second["shard"]["start"] and second["shard"]["end"] == summary["parameters"]
    for i in (0, 1):
        assert rows(root / f"shard-{i}" / "pushes.csv") == summary["updates"]
    # the run's staleness: each push's largest over the shards, told to shard 0 with the worker's next push
    run = summary["run_staleness"]
    assert summary["updates"] - 2 <= run["count"] < summary["updates"]
    assert run["max"] >= max(first["staleness"]["max"], second["staleness"]["max"]) - 1
    assert run["p50"] >= min(first["staleness"]["p50"], second["staleness"]["p50"])
    policy = load_policy(root)  # params_final.npz, joined from the shards' slices
    assert policy.theta.size == summary["parameters"] and np.isfinite(policy.theta).all()
    eval_out = subprocess.run([cli("ps-eval"), str(root), "--episodes", "3", "--deterministic"],
                              capture_output=True, text=True, timeout=120)
    assert eval_out.returncode == 0, eval_out.stderr
    assert json.loads((root / "eval.json").read_text())["mean_return"] > 200  # a random policy scores ~22
    # started again on the finished run: nothing to do, nothing rewritten
    again = finish(run_sharded(root, "--target-return", "475", "--total-steps", "600000"), 120)
    assert "run already finished" in again and json.loads((root / "summary.json").read_text()) == summary


@pytest.mark.timeout(300)
def test_a_shard_killed_with_sigkill_is_restarted_resumes_and_the_run_completes(tmp_path):
    root = tmp_path / "run"
    # 600k steps run about 10 s here, against 3-4 s to shard 1's second checkpoint, so that
    # the kill lands mid-run on a loaded machine too
    steps = 600_000
    proc = run_sharded(root, "--target-return", "none", "--total-steps", str(steps), "--checkpoint-every", "1")
    lock = root / "shard-1" / ".lock"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((root / "shard-1" / "checkpoints").glob("ckpt-*.a3c"))[1:]:
        time.sleep(0.2)
    status = subprocess.run([cli("ps-status"), "--ps", f"127.0.0.1:{(root / 'shard-0' / 'port').read_text().strip()}",
                             "--json"], capture_output=True, text=True, timeout=60)
    shards = json.loads(status.stdout)["shards"]  # ps-status asks every shard
    assert [s["shard"]["index"] for s in shards] == [0, 1] and all(s["state"] == "running" for s in shards), shards
    assert shards[0]["shard"]["end"] == shards[1]["shard"]["start"]
    pid = int(lock.read_text().split()[1])
    os.kill(pid, signal.SIGKILL)
    out = finish(proc, 240)

    log = (root / "shard-1.log").read_text()
    assert "resuming from" in log, log[-2000:]
    assert "restarting it on port" in out
    summary = json.loads((root / "summary.json").read_text())
    first, second = summary["shards"]
    assert first["stop_reason"] == second["stop_reason"] == f"total steps {steps} reached"
    assert first["env_steps"] == second["env_steps"] >= steps  # the restarted shard took shard 0's T
    # the restarted shard lost only the pushes since its checkpoint, and its records say so
    assert 0 <= first["updates"] - second["updates"] < first["updates"] // 4
    for i, figures in enumerate((first, second)):
        assert rows(root / f"shard-{i}" / "pushes.csv") == figures["updates"]
    resumed_at = int(log.split("resuming from")[1].split("version ")[1].split(")")[0])
    assert resumed_at <= second["updates"]


@pytest.mark.timeout(300)
def test_a_whole_run_restarted_resumes_every_shard_from_one_consistent_checkpoint_tag(tmp_path):
    """Shard 1's final checkpoint is lost: ps-serve --shards 2 on the run dir resumes both shards from
    the newest tag both have (written at the same wall-clock instant), not shard 0 from its final."""
    from ps.records.checkpoint import checkpoint_dir, list_checkpoints, load
    root = tmp_path / "run"
    proc = run_sharded(root, "--target-return", "none", "--total-steps", "5000000", "--checkpoint-every", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list_checkpoints(checkpoint_dir(root / "shard-1"))) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # the workers are told to stop; each shard writes its final checkpoint
    finish(proc, 120)
    newest = [list_checkpoints(checkpoint_dir(root / f"shard-{i}")) for i in (0, 1)]
    assert [load(p[0])["meta"]["tag"] for p in newest] == ["final", "final"]
    versions = [{load(p)["meta"]["tag"]: load(p)["meta"]["version"] for p in files[1:]} for files in newest]
    newest[1][0].unlink()  # as if shard 1 died before writing it
    tags = [load(p)["meta"]["tag"] for p in newest[0][1:]]
    assert all(t.startswith("t") for t in tags)

    (root / "shard-0" / "port").unlink()
    proc = run_sharded(root, "--target-return", "none", "--total-steps", "5000000", "--checkpoint-every", "1")
    out = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (root / "shard-0" / "port").exists():
            time.sleep(0.2)
        time.sleep(1.0)  # past shard 0's start: its SIGTERM is a clean stop
    finally:
        proc.send_signal(signal.SIGTERM)
        out = finish(proc, 120)
    chosen = next(t for t in tags if t in versions[1])
    assert f"every shard resumes from the newest they all have, {chosen}" in out
    for i, text in enumerate((out, (root / "shard-1.log").read_text())):
        (line,) = [line for line in text.splitlines() if "resuming from" in line]
        assert line.endswith(f"version {versions[i][chosen]})"), (line, versions[i])


def test_the_shards_stop_with_their_launcher_even_when_it_is_killed_with_sigkill(tmp_path):
    root = tmp_path / "run"
    proc = run_sharded(root, "--target-return", "none", "--local-workers", "0")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (root / "shard-0" / "port").exists():
            time.sleep(0.2)
        shard = int((root / "shard-1" / ".lock").read_text().split()[1])
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and running(shard):
            time.sleep(0.2)
        assert not running(shard), "shard 1 outlived its launcher"
        assert json.loads((root / "shard-1" / "summary.json").read_text())["stop_reason"] == "signal SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
