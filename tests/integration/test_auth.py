"""Authentication and TLS against a real server: a shared token checked on every call (health exempt),
TLS verified by the workers, the token never shown, and the safe default for exposed addresses."""
import hashlib
import json
import os
import subprocess
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ps.api.convert import layout_to_proto
from ps.api.v1 import parameter_server_pb2 as pb
from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
from tests.conftest import cli, kill, start_server, start_worker

TOKEN = "tok-3f9a1c77e2b54d0d9c6a8e1f"


def _real_model():
    """The layout and initial weights a CartPole worker of this run offers (so real workers match it)."""
    from ps.api.spec import RunSpec
    from worker.agents import make_agent
    from worker.envs import EnvBatch
    spec = RunSpec(envs_per_worker=2)
    envs = EnvBatch(spec.env_id, spec.envs_per_worker, 0)
    agent = make_agent(spec, envs, 0)
    envs.close()
    return agent.flat.layout, agent.flat.values_bytes()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost and the token file."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    (d / "token").write_text(TOKEN + "\n")
    return d


def _channel(address, tls):
    creds = grpc.ssl_channel_credentials(root_certificates=(tls / "cert.pem").read_bytes())
    return grpc.secure_channel(address, creds)


def test_token_and_tls_guard_every_call_but_health_and_workers_with_both_train(tmp_path, tls):
    server = start_server(tmp_path / "run", "--target-return", "none", "--total-steps", "3000", "--envs", "2",
                          "--token-file", str(tls / "token"), "--tls-cert", str(tls / "cert.pem"),
                          "--tls-key", str(tls / "key.pem"), "--metrics-port", "0")
    good = (("authorization", f"Bearer {TOKEN}"),)
    workers = []
    try:
        with _channel(server.address, tls) as ch:
            stub = pb_grpc.ParameterServerStub(ch)
            # Kubernetes probes send no metadata: health answers without a token
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            reg = stub.Register(pb.RegisterRequest(host="t", pid=1), timeout=10, metadata=good)
            layout, initial = _real_model()
            n = layout.size
            stub.Pull(pb.PullRequest(worker_id=reg.worker_id, layout=layout_to_proto(layout),
                                     initial_params=pb.Tensor(data=initial, dtype="float32"),
                                     incarnation=reg.incarnation),
                      timeout=10, metadata=good)
            push = pb.PushRequest(worker_id=reg.worker_id, gradients=pb.Tensor(
                data=np.ones(n, np.float32).tobytes(), dtype="float32"), env_steps=1, incarnation=reg.incarnation)
            for metadata, words in ((None, "missing token"), ((("authorization", "Bearer nope"),), "wrong token"),
                                    ((("authorization", TOKEN),), "wrong token")):
                with pytest.raises(grpc.RpcError) as err:
                    stub.Push(push, timeout=10, metadata=metadata)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert words in err.value.details() and TOKEN not in err.value.details()
            with pytest.raises(grpc.RpcError) as err:
                stub.Status(pb.StatusRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            pulled = stub.Pull(pb.PullRequest(worker_id=reg.worker_id, layout=layout_to_proto(layout),
                                              incarnation=reg.incarnation), timeout=10, metadata=good)
            # no refused push changed anything
            assert pulled.version == 0 and hashlib.sha256(pulled.params.data).digest() == hashlib.sha256(initial).digest()
            stub.Leave(pb.LeaveRequest(worker_id=reg.worker_id, reason="done", incarnation=reg.incarnation),
                       timeout=10, metadata=good)
            status = json.loads(stub.Status(pb.StatusRequest(), timeout=10, metadata=good).status_json)
            assert status["rejected"]["unauthenticated"] == 4
        # plaintext against the TLS port does not get through
        with grpc.insecure_channel(server.address) as plain:
            with pytest.raises(grpc.RpcError):
                pb_grpc.ParameterServerStub(plain).Status(pb.StatusRequest(), timeout=3, metadata=good)
        metrics_port = int((server.run_dir / "metrics_port").read_text())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        # ps-status with the token file over TLS; without the token it says why in one line
        ok = subprocess.run([cli("ps-status"), "--ps", server.address, "--json", "--token-file", str(tls / "token"),
                             "--tls-ca", str(tls / "cert.pem")], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and json.loads(ok.stdout)["rejected"]["unauthenticated"] == 4
        denied = subprocess.run([cli("ps-status"), "--ps", server.address, "--tls-ca", str(tls / "cert.pem")],
                                capture_output=True, text=True, timeout=60)
        assert denied.returncode != 0 and "UNAUTHENTICATED" in denied.stderr

        # a worker without the token is refused in one line; one with the file, one with A3C_TOKEN, train
        stray = subprocess.run([cli("worker-run"), "--ps", server.address, "--tls-ca", str(tls / "cert.pem")],
                               capture_output=True, text=True, timeout=120)
        assert stray.returncode == 3 and "UNAUTHENTICATED" in stray.stderr and "Traceback" not in stray.stderr
        workers = [start_worker(server.address, "--token-file", str(tls / "token"), "--tls-ca", str(tls / "cert.pem"))]
        workers.append(subprocess.Popen([cli("worker-run"), "--ps", server.address, "--tls-ca", str(tls / "cert.pem")],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "A3C_TOKEN": TOKEN}))
        assert server.wait(timeout=120) == 0
        for w in workers:
            assert w.wait(timeout=30) == 0
        out = server.proc.stdout.read() + "".join(w.stdout.read() for w in workers)
    finally:
        for p in (*workers, server.proc):
            kill(p)
    summary = server.summary()
    assert summary["env_steps"] >= 3000 and summary["rejected"]["unauthenticated"] == 6
    assert "token required" in out and "TLS" in out
    for text in (out, json.dumps(summary), metrics, ok.stdout, denied.stderr, stray.stderr,
                 (server.run_dir / "pushes.csv").read_text()):
        assert TOKEN not in text


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_an_exposed_address_without_a_token_refuses_to_start_unless_insecure(tmp_path, host):
    out = subprocess.run([cli("ps-serve"), "--port", "0", "--run-dir", str(tmp_path), "--host", host],
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ps-serve: error:") and "--token-file" in last and "--insecure" in last


def test_insecure_says_the_exposure_is_intended(tmp_path):
    server = start_server(tmp_path / "run", "--host", "0.0.0.0", "--insecure")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            reply = pb_grpc.ParameterServerStub(ch).Status(pb.StatusRequest(), timeout=10)
        assert json.loads(reply.status_json)["state"] == "waiting"
    finally:
        kill(server.proc)
