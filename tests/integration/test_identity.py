"""A worker id is one live worker's, with real processes: a worker stopped (SIGSTOP) past --worker-timeout
comes back, is told NOT_FOUND, registers again and carries on; a flood of registrations leaves a bounded
status and summary.json; a forged Leave reason never becomes a log line of its own."""
import json
import re
import signal
import threading
import time

import grpc
import pytest

from ps.api.v1 import parameter_server_pb2 as pb
from tests.conftest import kill, start_server, start_worker

RUN = ("--env", "CartPole-v1", "--algo", "a3c", "--seed", "3", "--target-return", "none", "--envs", "4",
       "--total-steps", "100000000")


class Drain:
    """Reads a process's output as it comes (a full pipe would block the process's logging)."""

    def __init__(self, proc) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(proc.stdout), daemon=True)
        self._thread.start()

    def text(self, timeout: float = 10.0) -> str:
        self._thread.join(timeout)
        return "".join(self.lines)


def _status(stub) -> dict:
    def no_constants(name):
        raise AssertionError(f"status is not JSON: it holds {name}")
    return json.loads(stub.Status(pb.StatusRequest(), timeout=10).status_json, parse_constant=no_constants)


def _wait_for(stub, predicate, what: str, seconds: float = 40.0) -> dict:
    deadline, last = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        last = _status(stub)
        if predicate(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}; last status: {str(last)[:2000]}")


def test_a_worker_stopped_past_the_timeout_gets_not_found_registers_again_and_carries_on(tmp_path, stub_for):
    server = start_server(tmp_path / "run", *RUN, "--worker-timeout", "2")
    server_out = Drain(server.proc)
    sleeper, other = start_worker(server.address), start_worker(server.address)
    outs = [Drain(sleeper), Drain(other)]
    try:
        stub = stub_for(server.address)
        status = _wait_for(stub, lambda s: s["workers_connected"] == 2 and all(w["pushes"] > 5 for w in s["workers"]),
                           "2 workers pushing")
        old_id = next(w["id"] for w in status["workers"] if w["pid"] == sleeper.pid)
        sleeper.send_signal(signal.SIGSTOP)
        stopped_at = _status(stub)["version"]
        _wait_for(stub, lambda s: s["workers_connected"] == 1, "the stopped worker to time out", 15)
        time.sleep(1.0)  # the other worker moves theta on: the stopped one's gradient is stale
        sleeper.send_signal(signal.SIGCONT)
        status = _wait_for(stub, lambda s: s["workers_connected"] == 2 and any(
            w["pid"] == sleeper.pid and w["connected"] and w["pushes"] > 3 for w in s["workers"]),
            "the stopped worker to rejoin and push again")
        assert status["version"] > stopped_at
        entries = {w["id"]: w for w in status["workers"] if w["pid"] == sleeper.pid}
        new_id = next(i for i, w in entries.items() if w["connected"])
        assert new_id > old_id and not entries[old_id]["connected"] and entries[old_id]["timed_out"]
        pushes_before_stop = entries[old_id]["pushes"]
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert sleeper.wait(timeout=30) == 0 and other.wait(timeout=30) == 0
    finally:
        for p in (sleeper, other, server.proc):
            if p.poll() is not None:
                continue
            p.send_signal(signal.SIGCONT)
            kill(p)
    log = outs[0].text()
    assert f"rejoined as worker {new_id}" in log, log[-3000:]
    assert "no longer registered" in log and "NOT_FOUND" in log
    exit_line = next(line for line in log.splitlines() if "server says stop" in line)
    refused = int(re.search(r"\((\d+) refused as from an unknown worker\)", exit_line).group(1))
    assert refused >= 1, exit_line  # the stale gradient was discarded, and counted by the worker
    summary = server.summary()
    assert summary["rejected"].get("expired_worker", 0) >= 1
    old = next(w for w in summary["workers"] if w["id"] == old_id)
    assert old["pushes"] == pushes_before_stop  # nothing from the old id landed after it timed out
    assert "silent for more than 2 s" in server_out.text()


FLOOD, CAP = 3_000, 256  # registrations that never call again, against the cap on live ones


def test_a_flood_of_registrations_leaves_a_bounded_status_and_summary(tmp_path, stub_for):
    server = start_server(tmp_path / "run", *RUN, "--worker-timeout", "1", "--max-registered-workers", str(CAP))
    server_out = Drain(server.proc)
    try:
        stub = stub_for(server.address)
        registered, refused, largest = [], 0, 0
        for i in range(FLOOD):
            try:
                registered.append(stub.Register(pb.RegisterRequest(host=f"flood-{i}", pid=i), timeout=10))
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
                assert "--max-registered-workers" in err.details()
                refused += 1
            if i % 500 == 499:
                status = _status(stub)
                assert status["workers_connected"] <= CAP
                largest = max(largest, len(stub.Status(pb.StatusRequest(), timeout=10).status_json))
        assert len(registered) >= CAP and len(registered) + refused == FLOOD
        assert largest < CAP * 600  # at most the cap's live workers and the last 64 departed
        # a forged Leave reason is one escaped field of one log line
        last = registered[-1]
        stub.Leave(pb.LeaveRequest(incarnation=last.incarnation, worker_id=last.worker_id,
                                   reason="bye\nps ERROR forged line\n" + "z" * 1_000_000), timeout=10)
        status = _wait_for(stub, lambda s: s["workers_connected"] == 0, "every registration to be reaped", 10)
        assert len(status["workers"]) <= 64 and status["workers_departed"] == len(registered)
        assert status["rejected"].get("too_many_workers", 0) == refused
        assert len(json.dumps(status)) < 64 * 1024
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        kill(server.proc)
    summary_bytes = (server.run_dir / "summary.json").stat().st_size
    assert summary_bytes < 64 * 1024, summary_bytes
    out = server_out.text()
    assert not any(line.startswith("ps ERROR forged") for line in out.splitlines())
    left = [line for line in out.splitlines() if f"worker {last.worker_id} left" in line]
    assert len(left) == 1 and "bye\\nps ERROR forged line\\n" in left[0] and len(left[0]) < 300
