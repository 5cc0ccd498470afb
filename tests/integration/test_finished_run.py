"""A finished run stays finished: ps-serve started again on its run dir says so in one line, exits 0 and
rewrites nothing; and with A3C_RESTARTABLE=1 (the Kubernetes manifests) a signal interrupts the run
without ending it: the workers keep going and rejoin the next server, which resumes the run."""
from __future__ import annotations

import hashlib
import signal
import subprocess

from tests.conftest import cli, kill, start_server, start_worker, wait_for_status

RUN = ("--env", "CartPole-v1", "--algo", "a3c", "--seed", "1", "--target-return", "none", "--envs", "4")


def snapshot(run_dir) -> dict[str, tuple[str, int]]:
    """Every record in the run dir (the lock file aside): its content hash and mtime."""
    return {str(p.relative_to(run_dir)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_finished_run_is_left_as_it_is_by_a_restarted_server(tmp_path):
    run_dir = tmp_path / "run"
    args = (*RUN, "--total-steps", "2000", "--checkpoint-every", "600")
    server = start_server(run_dir, *args)
    worker = start_worker(server.address)
    try:
        assert server.wait(timeout=60) == 0
        assert worker.wait(timeout=30) == 0
    finally:
        kill(worker)
        kill(server.proc)
    summary = server.summary()
    assert "total steps" in summary["stop_reason"] and len(summary["workers"]) == 1
    before = snapshot(run_dir)
    assert "summary.json" in before and "pushes.csv" in before

    again = subprocess.run([cli("ps-serve"), "--port", "0", "--run-dir", str(run_dir), *args],
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 0, again.stderr[-2000:]
    said = [line for line in again.stderr.splitlines() if line.startswith("ps-serve:")]
    assert len(said) == 1 and "run already finished (total steps 2000 reached" in said[0], again.stderr[-2000:]
    assert snapshot(run_dir) == before  # not one record rewritten: summary.json still names its worker
    assert server.summary()["workers"] == summary["workers"]


def test_restartable_server_interrupted_by_sigterm_keeps_its_workers_for_the_next_one(tmp_path, stub_for):
    run_dir = tmp_path / "run"
    args = (*RUN, "--total-steps", "5000", "--checkpoint-every", "600", "--stop-grace-seconds", "5")
    env = {"A3C_RESTARTABLE": "1"}
    server = start_server(run_dir, *args, env=env)
    worker = start_worker(server.address, "--connect-timeout", "60")
    again = None
    try:
        first = wait_for_status(stub_for(server.address), lambda s: s["env_steps"] >= 1000, "some training")
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 128 + signal.SIGTERM  # interrupted, not over: OnFailure restarts it
        out = server.proc.stdout.read()
        assert "restartable: workers keep going" in server.summary()["stop_reason"], out[-2000:]
        assert worker.poll() is None, f"the worker stopped: {worker.stdout.read()[-2000:]}"

        again = start_server(run_dir, *args, "--port", str(server.port), env=env)
        stub = stub_for(again.address)
        wait_for_status(stub, lambda s: s["workers_connected"] == 1 and s["version"] > first["version"],
                        "the worker to rejoin the resumed run", seconds=40)
        assert again.wait(timeout=60) == 0  # the run is over: exit 0, and the worker heard 'stop'
        assert worker.wait(timeout=30) == 0
        assert "ps-serve: resuming from" in again.proc.stdout.read()
    finally:
        for p in (worker, server.proc, *([again.proc] if again else [])):
            kill(p)
    assert again.summary()["env_steps"] >= 5000
