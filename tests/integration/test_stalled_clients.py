"""Stalled and slow clients cannot starve the workers: calls that never finish their request hold no
server thread, the health check still answers, and a call without the token is refused from its
metadata before its body is read. Real ps-serve, real workers, real gRPC clients over loopback."""
import statistics
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.chaos import Stalled
from tests.conftest import kill, start_server

pytestmark = pytest.mark.serial  # compares push rates with and without the stalled calls


def stall(address: str, count: int, method: str, token: str = "") -> Stalled:
    return Stalled(address, count, (method,), token, timeout=120)

STALLED = 64
HEALTH, PUSH = "/grpc.health.v1.Health/Check", "/a3c.ps.v1.ParameterServer/Push"
STATUS = "/a3c.ps.v1.ParameterServer/Status"
# Push rates are medians of 3 s windows, the baseline taken before and after the stalled calls: a noisy
# window on a shared machine is not the server. All within --request-timeout-seconds (30 s).
WINDOW_SECONDS = 3.0
TOKEN = "tok-stall-4d1c9e"


def _updates(address: str) -> int:
    import json

    from ps.api.v1 import parameter_server_pb2 as pb
    from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
    with grpc.insecure_channel(address) as channel:
        reply = pb_grpc.ParameterServerStub(channel).Status(
            pb.StatusRequest(), timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))
    return json.loads(reply.status_json)["updates"]


def _rates(address: str, windows: int) -> list[float]:
    rates = []
    for _ in range(windows):
        start, t0 = _updates(address), time.monotonic()
        time.sleep(WINDOW_SECONDS)
        rates.append((_updates(address) - start) / (time.monotonic() - t0))
    return rates


@pytest.mark.timeout(240)
def test_sixty_four_stalled_calls_with_the_token_and_more_without_leave_the_workers_their_push_rate(tmp_path):
    (tmp_path / "token").write_text(TOKEN)
    server = start_server(tmp_path / "run", "--local-workers", "2", "--target-return", "none",
                          "--total-steps", "100000000", "--token-file", str(tmp_path / "token"))
    stalled = []
    try:
        _rates(server.address, 1)  # workers registered and warmed up
        before = _rates(server.address, 4)
        assert min(before) > 0
        quarter = STALLED // 4
        # 64 with the token (each holds a gate slot until --request-timeout-seconds), 32 more without
        stalled = [stall(server.address, quarter, HEALTH), stall(server.address, quarter, PUSH),
                   stall(server.address, 2 * quarter, PUSH, TOKEN), stall(server.address, 2 * quarter, STATUS, TOKEN)]
        time.sleep(1.0)
        during = statistics.median(_rates(server.address, 6))
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        unauthenticated = [c for s in stalled[:2] for c in s.calls]
        time.sleep(0.5)
        # Without the token: refused from the metadata, without waiting for a body that never comes.
        done = [c for c in unauthenticated if c.done()]
        assert len(done) == len(unauthenticated) - quarter  # all but the exempt health checks
        assert all(c.exception().code() == grpc.StatusCode.UNAUTHENTICATED for c in done)
        assert server.proc.poll() is None
        for s in stalled:
            s.close()
        normal = statistics.median(before + _rates(server.address, 4))
        print(f"push rate {normal:.0f}/s without the stalled calls, {during:.0f}/s with them")
        assert during >= 0.8 * normal, f"push rate fell from {normal:.0f}/s to {during:.0f}/s"
    finally:
        for s in stalled:
            s.close()
        kill(server.proc)
