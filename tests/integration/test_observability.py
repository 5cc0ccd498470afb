"""Watching a real run (a server on port 0 and 2 worker-run subprocesses): /metrics, ps-status,
TensorBoard files and the end-of-run plots all tell the same story as pushes.csv and summary.json.

One run serves every test here. Mid-run the workers are paused (SIGSTOP) so that the counters,
the status document and pushes.csv can be compared exactly, then resumed to finish the run.
"""
import csv
import json
import signal
import socket
import subprocess
import time
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import cli, kill, start_server, start_worker

TOTAL_STEPS = 100_000
TB_TAGS = ("charts/episode_return", "charts/episode_length", "charts/mean100_return", "losses/policy_loss",
           "losses/value_loss", "losses/entropy", "charts/staleness_p50", "charts/staleness_p99",
           "charts/learning_rate", "charts/steps_per_second")


def _status(address: str) -> dict:
    out = subprocess.run([cli("ps-status"), "--ps", address, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _pushes(run_dir) -> list[dict]:
    with open(run_dir / "pushes.csv", newline="") as f:
        return list(csv.DictReader(f))


def _wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _bad_pull(address: str) -> None:
    """One refused request (an unknown worker id), so the rejected counter has a labelled series."""
    from ps.api.v1 import parameter_server_pb2 as pb
    from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.ParameterServerStub(channel).Pull(pb.PullRequest(
                worker_id=999, layout=pb.Layout(tensors=[pb.TensorSpec(name="w", shape=[1])])), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("observability") / "run"
    server = start_server(run_dir, "--seed", "2", "--target-return", "none", "--total-steps", str(TOTAL_STEPS),
                          "--metrics-port", "0")
    workers = [start_worker(server.address) for _ in range(2)]
    seen = {}
    try:
        _wait_until(lambda: (s := _status(server.address))["updates"] >= 50
                    and sum(w["pushes"] > 0 for w in s["workers"]) == 2, 120, "both workers pushing")
        for w in workers:
            w.send_signal(signal.SIGSTOP)
        time.sleep(1.0)  # pushes already on the wire finish
        _bad_pull(server.address)
        seen["status"] = _wait_until(lambda: (s := _status(server.address))["updates"] == len(_pushes(run_dir)) and s,
                                     10, "pushes.csv to catch up")
        seen["rows"] = _pushes(run_dir)
        metrics_port = int((run_dir / "metrics_port").read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
            seen["metrics"] = {s.name + json.dumps(s.labels, sort_keys=True): s.value
                               for family in text_string_to_metric_families(reply.read().decode())
                               for s in family.samples}
        seen["maps"] = (open(f"/proc/{server.proc.pid}/maps").read())
        seen["screen"] = subprocess.run([cli("ps-status"), "--ps", server.address], capture_output=True,
                                        text=True, timeout=60).stdout
        watch = subprocess.Popen([cli("ps-status"), "--ps", server.address, "--watch", "--interval", "0.3"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for w in workers:
            w.send_signal(signal.SIGCONT)
        assert server.wait(timeout=180) == 0
        seen["server_output"] = server.proc.stdout.read()
        for w in workers:
            assert w.wait(timeout=30) == 0, w.stdout.read()
        assert watch.wait(timeout=30) == 0
        seen["watch_output"] = watch.stdout.read()
    finally:
        for p in (*workers, server.proc):
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
            kill(p)
    seen["run_dir"] = run_dir
    seen["summary"] = server.summary()
    return seen


def _sample(metrics: dict, name: str, **labels) -> float:
    return metrics[name + json.dumps({k: str(v) for k, v in labels.items()}, sort_keys=True)]


def test_staleness_histogram_count_equals_updates_counter_and_pushes_csv(run):
    m, rows, status = run["metrics"], run["rows"], run["status"]
    updates = _sample(m, "a3c_ps_updates_total")
    assert updates == _sample(m, "a3c_ps_gradient_staleness_versions_count") == len(rows) == status["updates"] >= 50
    assert _sample(m, "a3c_ps_env_steps_total") == sum(int(r["env_steps"]) for r in rows) == status["env_steps"]
    staleness = [int(r["staleness"]) for r in rows]
    for le in (0, 1, 2, 4, 8, 16, 32, 64):
        assert _sample(m, "a3c_ps_gradient_staleness_versions_bucket", le=f"{le:.1f}") == sum(s <= le for s in staleness)
    assert _sample(m, "a3c_ps_gradient_staleness_versions_sum") == sum(staleness)
    assert _sample(m, "a3c_ps_push_seconds_count") == _sample(m, "a3c_ps_apply_seconds_count") == updates
    assert _sample(m, "a3c_ps_workers_connected") == 2
    assert 0 < _sample(m, "a3c_ps_learning_rate") <= status["run_spec"]["lr"]
    assert _sample(m, "a3c_ps_episode_return_mean100") > 0
    for reason, count in status["rejected"].items():
        assert _sample(m, "a3c_ps_rejected_pushes_total", reason=reason) == count
    assert status["rejected"].get("unknown_worker") == 1
    per_worker = {w["id"]: w for w in status["workers"]}
    assert len(per_worker) == 2
    for wid, w in per_worker.items():
        assert _sample(m, "a3c_ps_worker_pushes_total", worker_id=wid) == w["pushes"]
        assert _sample(m, "a3c_ps_worker_env_steps_total", worker_id=wid) == w["env_steps"]


def test_ps_status_json_carries_every_field_with_both_workers(run):
    s = run["status"]
    assert s["state"] == "running"
    assert s["run_spec"]["env_id"] == "CartPole-v1" and s["total_steps"] == TOTAL_STEPS
    assert 0 < s["env_steps"] < TOTAL_STEPS and s["version"] == s["updates"]
    assert s["rate_window_seconds"] == 10 and s["updates_per_second"] > 0 and s["env_steps_per_second"] > 0
    assert s["final_mean100"] is not None and s["episodes"] > 0
    st = s["staleness"]
    assert {"p50", "p90", "p99", "max"} <= set(st) and st["p50"] <= st["p90"] <= st["p99"] <= st["max"]
    assert list(st["histogram"]) == ["0", "1", "2", "3-4", "5-8", "9-16", "17-32", "33-64", "65+"]
    assert sum(st["histogram"].values()) == s["updates"]
    assert len(s["workers"]) == 2 and s["workers_connected"] == 2
    for w in s["workers"]:
        assert {"id", "host", "last_seen_seconds", "pushes", "env_steps", "mean_staleness", "stats"} <= set(w)
        steps_per_push = s["run_spec"]["t_max"] * s["run_spec"]["envs_per_worker"]
        assert w["pushes"] > 0 and w["env_steps"] == steps_per_push * w["pushes"]
        assert {"policy_loss", "value_loss", "entropy"} <= set(w["stats"])  # the loss terms sent with each push


def test_ps_status_screen_and_watch(run):
    screen = run["screen"]
    for text in ("run  CartPole-v1  a3c", "state running", f"/ {TOTAL_STEPS:,}", "updates/s", "mean100",
                 "p50", "p99", "3-4 |", "workers (2 connected)", "mean staleness"):
        assert text in screen, text
    assert "the run is over: total steps" in run["watch_output"]


def test_server_never_imports_torch(run):
    assert "/torch/" not in run["maps"] and "libtorch" not in run["maps"]
    assert "cygrpc" in run["maps"]  # it is the server's map: gRPC is loaded


def test_tensorboard_files_hold_the_tags(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run["run_dir"] / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert set(TB_TAGS) <= tags, set(TB_TAGS) - tags
    assert len(acc.Scalars("charts/episode_return")) == run["summary"]["episodes"]
    steps = [e.step for e in acc.Scalars("charts/mean100_return")]
    assert 0 < min(steps) and max(steps) <= run["summary"]["env_steps"]   # step = T, the global step
    # the last mean100 written is the final one (up to the order of the last concurrent pushes)
    assert acc.Scalars("charts/mean100_return")[-1].value == pytest.approx(run["summary"]["final_mean100"], abs=10)


def test_the_server_writes_the_three_plots_at_the_end(run):
    for name in ("learning_curve.png", "staleness.png", "throughput.png"):
        data = (run["run_dir"] / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
        assert name in run["server_output"]


def test_a_metrics_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([cli("ps-serve"), "--port", "0", "--run-dir", str(tmp_path / "run"),
                              "--metrics-port", str(port)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"ps-serve: error: cannot serve metrics on 127.0.0.1:{port}: Address already in use"]
    assert "Traceback" not in out.stderr
