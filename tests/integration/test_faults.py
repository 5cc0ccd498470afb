"""Faults survived, with real processes and real signals: the server killed and restarted under its
workers, a worker killed, SIGTERM, and damaged checkpoints refused."""
import signal
import subprocess

import numpy as np
import pytest

from ps.records import checkpoint
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.layout import Layout
from tests.conftest import cli, kill, start_server, start_worker, wait_for_status
from ps.api.source import Push

RUN = ("--env", "CartPole-v1", "--algo", "a3c", "--seed", "1", "--target-return", "none", "--envs", "4")


_wait_for = wait_for_status


def test_server_killed_and_restarted_on_its_run_dir_and_port_resumes_and_its_workers_rejoin(tmp_path, stub_for):
    args = (*RUN, "--total-steps", "30000", "--checkpoint-every", "0.5")
    server = start_server(tmp_path / "run", *args)
    workers = [start_worker(server.address, "--connect-timeout", "120") for _ in range(2)]
    pids = sorted(w.pid for w in workers)
    try:
        stub = stub_for(server.address)
        _wait_for(stub, lambda s: s["env_steps"] >= 8000 and checkpoint.list_checkpoints(tmp_path / "run" / "checkpoints"),
                  "a checkpoint after 8000 steps")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        _, saved = checkpoint.load_latest(tmp_path / "run" / "checkpoints")
        saved_t, saved_v = saved["meta"]["global_step"], saved["meta"]["version"]

        again = start_server(tmp_path / "run", *args, "--port", str(server.port))
        seen = []
        status = _wait_for(stub, lambda s: seen.append((s["env_steps"], s["version"])) or s["state"] != "running"
                           and s["env_steps"] >= 30000, "the restarted run to finish")
        assert again.wait(timeout=60) == 0
        out = again.proc.stdout.read()
        for w in workers:
            assert w.wait(timeout=30) == 0
            log = w.stdout.read()
            assert "rejoined as worker" in log, log[-2000:]
    finally:
        for p in (*workers, server.proc):
            kill(p)
    resumed = [line for line in out.splitlines() if "resuming from" in line]
    assert len(resumed) == 1 and "checkpoints/ckpt-" in resumed[0], out[-3000:]
    assert resumed[0].endswith(f"(T {saved_t}, version {saved_v})")
    # T and version never went back past the checkpoint, and only moved forward after it
    assert all(t >= saved_t and v >= saved_v for t, v in seen)
    assert [t for t, _ in seen] == sorted(t for t, _ in seen) and [v for _, v in seen] == sorted(v for _, v in seen)
    summary = again.summary()
    assert summary["env_steps"] >= 30000 and "total steps" in summary["stop_reason"]
    # the same two worker processes (same PIDs) carried on: nothing restarted them
    assert sorted({w["pid"] for w in summary["workers"]}) == pids
    assert all(w["id"] > 2 for w in summary["workers"])  # new ids in the new incarnation
    assert status["incarnation"] != ""


def test_a_worker_killed_is_dropped_within_the_timeout_and_the_run_goes_on_with_a_newcomer(tmp_path, stub_for):
    server = start_server(tmp_path / "run", *RUN, "--total-steps", "60000", "--worker-timeout", "2")
    workers = [start_worker(server.address) for _ in range(3)]
    try:
        stub = stub_for(server.address)
        _wait_for(stub, lambda s: s["workers_connected"] == 3 and s["version"] > 10, "3 workers pushing")
        victim = workers.pop(0)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        status = _wait_for(stub, lambda s: s["workers_connected"] == 2, "the killed worker to be dropped", 30)
        assert status["state"] == "running"
        workers.append(start_worker(server.address))  # a new worker joins mid-run
        _wait_for(stub, lambda s: s["workers_connected"] == 3 or s["state"] != "running", "a newcomer")
        assert server.wait(timeout=120) == 0
        for w in workers:
            assert w.wait(timeout=30) == 0
    finally:
        for p in (*workers, server.proc):
            kill(p)
    summary = server.summary()
    assert summary["env_steps"] >= 60000 and "total steps" in summary["stop_reason"]
    dead = [w for w in summary["workers"] if w["pid"] == victim.pid]
    assert len(dead) == 1 and not dead[0]["connected"] and dead[0]["left_reason"] == ""
    assert len(summary["workers"]) == 4


def test_sigterm_writes_a_final_checkpoint_tells_workers_to_stop_and_exits_0(tmp_path, stub_for):
    server = start_server(tmp_path / "run", *RUN, "--total-steps", "10000000", "--checkpoint-every", "600")
    worker = start_worker(server.address)
    try:
        _wait_for(stub_for(server.address), lambda s: s["version"] > 20, "some pushes")
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert worker.wait(timeout=30) == 0
        out = server.proc.stdout.read()
    finally:
        kill(worker)
        kill(server.proc)
    summary = server.summary()
    assert "SIGTERM" in summary["stop_reason"], out[-2000:]
    _, state = checkpoint.load_latest(tmp_path / "run" / "checkpoints")
    assert (state["meta"]["version"], state["meta"]["global_step"]) == (summary["updates"], summary["env_steps"])


def _two_checkpoints(run_dir):
    layout = Layout.from_pairs([("w", (4, 2)), ("b", (2,))])
    core = ParameterServer(RunSpec(target_return=None), ServerConfig(run_dir=str(run_dir)))
    wid, _ = core.register("test", 1)
    core.pull(wid, layout, np.zeros(layout.size, np.float32).tobytes())
    older = checkpoint.save(checkpoint.checkpoint_dir(run_dir), core.state_dict())
    core.push(Push(worker_id=wid, base_version=0, gradient=np.ones(layout.size, np.float32).tobytes(), shape=[layout.size], env_steps=5))
    newest = checkpoint.save(checkpoint.checkpoint_dir(run_dir), core.state_dict())
    core.close()
    return older, newest


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_ps_serve_refuses_a_damaged_checkpoint_naming_it_and_an_older_good_one(tmp_path, damage):
    older, newest = _two_checkpoints(tmp_path / "run")
    blob = bytearray(newest.read_bytes())
    if damage == "truncated":
        blob = blob[:-100]
    else:
        blob[-50] ^= 0x01
    newest.write_bytes(bytes(blob))
    out = subprocess.run([cli("ps-serve"), "--port", "0", "--run-dir", str(tmp_path / "run"), "--target-return", "none"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ps-serve: error: checkpoint") and "checksum" in last
    assert str(newest) in last and str(older) in last and "--fresh" in last
    assert "Traceback" not in out.stderr


def test_a_worker_sent_sigterm_leaves_at_once(tmp_path, stub_for):
    """Scaling workers down sends SIGTERM: the worker says Leave, so it is gone before --worker-timeout."""
    server = start_server(tmp_path / "run", *RUN, "--total-steps", "10000000", "--worker-timeout", "300")
    worker = start_worker(server.address)
    try:
        stub = stub_for(server.address)
        _wait_for(stub, lambda s: s["workers_connected"] == 1 and s["version"] > 5, "the worker pushing")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 128 + signal.SIGTERM
        status = _wait_for(stub, lambda s: s["workers_connected"] == 0, "the worker to leave", 10)
        assert [w["left_reason"] for w in status["workers"]] == ["terminated"]
    finally:
        kill(worker)
        kill(server.proc)
