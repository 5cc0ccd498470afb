"""The evaluator role against real servers: `ps-serve --eval-every` with local workers gets
evaluation rounds (status, summary.json, TensorBoard) and stops on them; over real gRPC a malformed
ReportEvaluation is refused in one line, and a good one changes no parameter."""
import hashlib
import subprocess
import json
import urllib.request

import grpc
import numpy as np
import pytest

from ps.api.convert import layout_to_proto
from ps.api.layout import Layout
from ps.api.v1 import parameter_server_pb2 as pb
from tests.conftest import cli, kill, start_server, status_of, wait_for_status

RANDOM_CARTPOLE = 22.0
TARGET = 100.0


def test_a_run_judged_on_evaluation_reports_it_and_stops_on_it(tmp_path, stub_for):
    server = start_server(tmp_path / "run", "--seed", "2", "--local-workers", "2", "--eval-every", "2",
                          "--eval-episodes", "5", "--target-return", str(TARGET), "--total-steps", "400000")
    try:
        live = wait_for_status(stub_for(server.address), lambda s: s["evaluations"] >= 1, "a first evaluation", 120)
        assert live["eval_mean"] is not None and live["target_on"] == "eval"
        assert server.wait(timeout=180) == 0
    finally:
        kill(server.proc)
    summary = server.summary()
    assert summary["stop_reason"].startswith(f"eval_mean") and summary["solved"], summary["stop_reason"]
    assert summary["eval_mean"] >= TARGET > 3 * RANDOM_CARTPOLE            # greedy play, far above random
    assert summary["eval_episodes"] == 5 and 0 < summary["eval_version"] <= summary["updates"]
    assert summary["env_steps"] < 400_000                                  # measured: 40-125k (seed 2; timing varies)
    roles = {w["role"]: w for w in summary["workers"]}
    assert roles["evaluator"]["pushes"] == 0 and roles["evaluator"]["left_reason"] == "stopped"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(server.run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    evals = acc.Scalars("charts/eval_return")
    assert len(evals) == summary["evaluations"] and evals[-1].value == pytest.approx(summary["eval_mean"])


LAYOUT = Layout.from_pairs([("w", (4,))])


def test_reports_are_checked_in_one_line_and_never_change_the_parameters(tmp_path, stub_for):
    server = start_server(tmp_path / "run", "--eval-every", "1", "--metrics-port", "0")
    try:
        stub = stub_for(server.address)
        learner = stub.Register(pb.RegisterRequest(host="t", pid=1), timeout=30)
        inc = learner.incarnation
        evaluator = stub.Register(pb.RegisterRequest(host="t", pid=2, evaluator=True), timeout=30).worker_id

        def pull(wid, initial=b""):
            return stub.Pull(pb.PullRequest(worker_id=wid, layout=layout_to_proto(LAYOUT), incarnation=inc,
                                            initial_params=pb.Tensor(data=initial, shape=[4], dtype="float32")
                                            if initial else None), timeout=30)

        with pytest.raises(grpc.RpcError) as err:
            pull(evaluator)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "no parameters yet" in err.value.details()
        pull(learner.worker_id, np.arange(4, dtype=np.float32).tobytes())
        stub.Push(pb.PushRequest(worker_id=learner.worker_id, incarnation=inc, base_version=0, env_steps=1,
                                 gradients=pb.Tensor(data=np.ones(4, np.float32).tobytes(), shape=[4],
                                                     dtype="float32")), timeout=30)
        before = pull(evaluator)
        assert before.version == 1

        def report(wid=evaluator, version=1, returns=(10.0,), lengths=(10,), incarnation=inc):
            return stub.ReportEvaluation(pb.ReportEvaluationRequest(
                worker_id=wid, incarnation=incarnation, version=version, returns=returns, lengths=lengths),
                timeout=30)
        bad = {
            "NaN return": (lambda: report(returns=(float("nan"),)), grpc.StatusCode.INVALID_ARGUMENT, "NaN"),
            "no episodes": (lambda: report(returns=(), lengths=()), grpc.StatusCode.INVALID_ARGUMENT, "1..10000"),
            "too many": (lambda: report(returns=(1.0,) * 10_001, lengths=(1,) * 10_001),
                         grpc.StatusCode.INVALID_ARGUMENT, "1..10000"),
            "lengths": (lambda: report(lengths=(1, 2)), grpc.StatusCode.INVALID_ARGUMENT, "lengths"),
            "huge return": (lambda: report(returns=(1e12,)), grpc.StatusCode.INVALID_ARGUMENT, "outside"),
            "future version": (lambda: report(version=99), grpc.StatusCode.INVALID_ARGUMENT, "outside 0..1"),
            "a learner": (lambda: report(wid=learner.worker_id), grpc.StatusCode.FAILED_PRECONDITION, "learner"),
            "unknown": (lambda: report(wid=999), grpc.StatusCode.NOT_FOUND, "999"),
            "old incarnation": (lambda: report(incarnation="0ld"), grpc.StatusCode.NOT_FOUND, "incarnation"),
            "a push": (lambda: stub.Push(pb.PushRequest(
                worker_id=evaluator, incarnation=inc, base_version=1, env_steps=1,
                gradients=pb.Tensor(data=np.ones(4, np.float32).tobytes(), dtype="float32")), timeout=30),
                grpc.StatusCode.FAILED_PRECONDITION, "never pushes"),
        }
        for case, (call, code, words) in bad.items():
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == code and words in err.value.details(), case
            assert "\n" not in err.value.details() and "Traceback" not in err.value.details(), case
        assert report(returns=(10.0, 30.0), lengths=(10, 30)).stop is False
        after = pull(evaluator)
        assert after.version == before.version == 1                        # reports change nothing ...
        assert hashlib.sha256(after.params.data).digest() == hashlib.sha256(before.params.data).digest()
        status = status_of(stub)
        assert status["version"] == 1 and status["eval_mean"] == 20.0 and status["eval_std"] == 10.0
        assert status["eval_version"] == 1 and status["evaluations"] == 1
        assert status["evaluators_connected"] == 1 and status["workers_connected"] == 1
        assert status["rejected"]["non_finite"] == 1 and status["rejected"]["bad_evaluation"] == 4
        port = int((server.run_dir / "metrics_port").read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
            metrics = reply.read().decode()
        assert "a3c_ps_eval_return_mean 20.0" in metrics and "a3c_ps_evaluations_total 1.0" in metrics
    finally:
        kill(server.proc)


def test_an_evaluator_for_a_run_without_evaluation_is_one_line(tmp_path):
    server = start_server(tmp_path / "run")
    try:
        out = subprocess.run([cli("worker-run"), "--ps", server.address, "--evaluator"], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 3 and "Traceback" not in out.stderr
        errors = [line for line in out.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "--eval-every SECONDS" in errors[0], out.stderr
        out = subprocess.run([cli("worker-run"), "--ps", server.address, "--evaluator", "--processes", "2"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2
        assert out.stderr.strip() == "worker-run: error: --evaluator runs one evaluator: drop --processes"
    finally:
        kill(server.proc)
