"""Stalled and slow clients cannot starve the workers: calls that never finish their request hold no
server thread, the health check still answers, and a call without the token is refused from its
metadata before its body is read. Real ps-serve, real workers, real gRPC clients over loopback."""
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.chaos import Stalled
from tests.conftest import kill, start_server


def stall(address: str, count: int, method: str, token: str = "") -> Stalled:
    return Stalled(address, count, (method,), token, timeout=120)

STALLED = 64
HEALTH, PUSH = "/grpc.health.v1.Health/Check", "/a3c.ps.v1.ParameterServer/Push"
STATUS = "/a3c.ps.v1.ParameterServer/Status"
WINDOW_SECONDS = 8.0
TOKEN = "tok-stall-4d1c9e"


def _updates(address: str) -> int:
    import json

    from ps.api.v1 import parameter_server_pb2 as pb
    from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
    with grpc.insecure_channel(address) as channel:
        reply = pb_grpc.ParameterServerStub(channel).Status(
            pb.StatusRequest(), timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))
    return json.loads(reply.status_json)["updates"]


def _rate(address: str) -> float:
    start, t0 = _updates(address), time.monotonic()
    time.sleep(WINDOW_SECONDS)
    return (_updates(address) - start) / (time.monotonic() - t0)


@pytest.mark.timeout(240)
def test_sixty_four_stalled_calls_leave_the_workers_their_push_rate(tmp_path):
    (tmp_path / "token").write_text(TOKEN)
    server = start_server(tmp_path / "run", "--local-workers", "2", "--target-return", "none",
                          "--total-steps", "100000000", "--token-file", str(tmp_path / "token"))
    stalled = []
    try:
        _rate(server.address)  # workers registered and warmed up
        before = _rate(server.address)
        assert before > 0
        quarter = STALLED // 4
        # 32 with the token (each holds a gate slot until --request-timeout-seconds), 32 without
        stalled = [stall(server.address, quarter, HEALTH), stall(server.address, quarter, PUSH),
                   stall(server.address, quarter, PUSH, TOKEN), stall(server.address, quarter, STATUS, TOKEN)]
        time.sleep(1.0)
        during = _rate(server.address)
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert during >= 0.8 * before, f"push rate fell from {before:.0f}/s to {during:.0f}/s"
        unauthenticated = [c for s in stalled[:2] for c in s.calls]
        time.sleep(0.5)
        # Without the token: refused from the metadata, without waiting for a body that never comes.
        done = [c for c in unauthenticated if c.done()]
        assert len(done) == len(unauthenticated) - quarter  # all but the exempt health checks
        assert all(c.exception().code() == grpc.StatusCode.UNAUTHENTICATED for c in done)
        assert server.proc.poll() is None
    finally:
        for s in stalled:
            s.close()
        kill(server.proc)
