"""Staleness policies, synchronous mode and the optimizers, with a real server and real workers."""
import csv
import json
import os
import signal
import time

import pytest

from ps.api.v1 import parameter_server_pb2 as pb
from tests.conftest import kill, reached, start_server, start_worker

RANDOM_POLICY_MEAN100 = 22


def _run(tmp_path, *args, workers=3, timeout=240):
    server = start_server(tmp_path / "run", "--seed", "2", *args)
    procs = [start_worker(server.address) for _ in range(workers)]
    try:
        assert server.wait(timeout=timeout) == 0, server.proc.stdout.read()
        outputs = [p.communicate(timeout=30)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
    finally:
        for p in (*procs, server.proc):
            kill(p)
    with open(server.run_dir / "pushes.csv") as f:
        rows = list(csv.DictReader(f))
    return server.summary(), rows, outputs


def test_max_staleness_one_drops_pushes_counts_them_and_still_learns(tmp_path):
    summary, rows, outputs = _run(tmp_path, "--max-staleness", "1", "--target-return", "150",
                                  "--total-steps", "600000")
    dropped = summary["dropped"].get("too_stale", 0)
    assert dropped > 0
    assert sum(w["dropped"] for w in summary["workers"]) == dropped
    assert sum(1 for r in rows if r["applied"] == "0") == dropped
    assert sum(1 for r in rows if r["applied"] == "1") == summary["updates"]
    assert all(float(r["learning_rate"]) == 0.0 for r in rows if r["applied"] == "0")
    assert summary["staleness"]["max"] <= 1
    assert summary["run_spec"]["max_staleness"] == 1
    assert reached(summary, 150) and 150 > 5 * RANDOM_POLICY_MEAN100
    # the workers' own counters saw the drops (they re-pulled fresh weights from the replies)
    assert sum(int(o.split("pushes (")[1].split(" dropped")[0]) for o in outputs) == dropped


def test_inverse_lr_is_logged_per_push(tmp_path):
    summary, rows, _ = _run(tmp_path, "--staleness-lr", "inverse", "--target-return", "100",
                            "--total-steps", "400000", workers=2)
    assert reached(summary, 100)
    for r in rows[:200]:
        st, lr = int(r["staleness"]), float(r["learning_rate"])
        assert lr <= summary["run_spec"]["lr"] / max(1, st) + 1e-12  # lr(T) <= lr0, divided by the staleness
    stale = [r for r in rows if int(r["staleness"]) >= 2]
    assert stale, "with 2 workers some pushes should be 2+ versions stale"


def test_sync_applies_one_update_per_round_of_three(tmp_path):
    # small pushes (the pre-issue-8 CartPole defaults), so the run lasts well over 100 rounds
    summary, rows, _ = _run(tmp_path, "--sync", "--target-return", "150", "--total-steps", "600000",
                            "--envs", "8", "--t-max", "5", "--lr", "7e-4")
    assert len(rows) == sum(w["pushes"] for w in summary["workers"])
    rounds: dict[int, list[str]] = {}
    for r in rows:
        rounds.setdefault(int(r["applied_version"]), []).append(r["worker_id"])
    assert len(rounds) == summary["updates"]          # one update per round
    versions = sorted(rounds)
    # rounds before the third worker registered are smaller; from the first full round on, every
    # round but a final partial one holds exactly one push from each of the three workers
    first_full = next(v for v in versions if len(set(rounds[v])) == 3)
    for v in versions[versions.index(first_full):-1]:
        assert sorted(rounds[v]) == sorted(set(rounds[v])) and len(rounds[v]) == 3, (v, rounds[v])
    assert len(versions) - versions.index(first_full) > 100
    assert summary["staleness"]["max"] == 0
    assert reached(summary, 150)


def test_sync_run_finishes_when_a_worker_is_killed(tmp_path, stub_for):
    server = start_server(tmp_path / "run", "--seed", "2", "--sync", "--sync-timeout", "1",
                          "--target-return", "150", "--total-steps", "600000")
    procs = [start_worker(server.address) for _ in range(3)]
    stub = stub_for(server.address)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = json.loads(stub.Status(pb.StatusRequest(), timeout=5).status_json)
            if status["updates"] >= 30:
                break
            time.sleep(0.2)
        os.kill(procs[0].pid, signal.SIGKILL)
        assert server.wait(timeout=240) == 0
        for p in procs[1:]:
            assert p.wait(timeout=30) == 0
    finally:
        for p in (*procs, server.proc):
            kill(p)
    summary = server.summary()
    assert summary["sync_round_timeouts"] >= 1
    assert reached(summary, 150)


@pytest.mark.parametrize("args", [["--optimizer", "rmsprop"],  # momentum-sgd's lr suits the small pushes below
                                  ["--optimizer", "momentum-sgd", "--lr", "0.03", "--envs", "8", "--t-max", "5"]],
                         ids=["rmsprop", "momentum-sgd"])
def test_each_optimizer_trains_past_a_random_policy(tmp_path, args):
    summary, _, _ = _run(tmp_path, *args, "--target-return", "100", "--total-steps", "600000", workers=2)
    assert summary["run_spec"]["optimizer"] == args[1]
    assert summary["best_mean100"] >= 100 > 4 * RANDOM_POLICY_MEAN100
