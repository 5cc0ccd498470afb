"""The bytes of requests the server receives at once, bounded.

Every handler takes its request as a stream and reads it only through RequestGate.read(): until then
gRPC does not ask the client for the body, so a call waiting here holds no more than its headers.
A call reserves the largest request it may be (the transport's limit) before it reads; the
reservations never exceed --max-inflight-bytes. A call that cannot reserve within a short wait gets
RESOURCE_EXHAUSTED (workers back off and retry); one whose body does not arrive within
--request-timeout-seconds gets DEADLINE_EXCEEDED and frees its reservation. Both are counted.
"""
from __future__ import annotations

import asyncio

import grpc

WAIT_SECONDS = 2.0   # how long a call may queue for a reservation before it is told to retry
DEFAULT_SLOTS = 64   # --max-inflight-bytes 0: room for this many requests of the largest size


class Refused(Exception):
    """(grpc.StatusCode, counter reason, one-line message)."""


class RequestGate:
    """Runs on the server's event loop only (not thread-safe, and need not be)."""

    def __init__(self, max_request_bytes: int, max_inflight_bytes: int, request_timeout_seconds: float) -> None:
        self.request_bytes = max_request_bytes
        self.budget = max_inflight_bytes or DEFAULT_SLOTS * max_request_bytes
        self.timeout = request_timeout_seconds
        self._slots = asyncio.Semaphore(max(1, self.budget // max_request_bytes))

    async def read(self, context) -> bytes:
        """The call's one request message (raw bytes); raises Refused."""
        try:
            await asyncio.wait_for(self._slots.acquire(), WAIT_SECONDS)
        except TimeoutError:
            raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy",
                          f"server busy: {self.budget} bytes of requests in flight (--max-inflight-bytes); "
                          f"retry later") from None
        try:
            message = await asyncio.wait_for(context.read(), self.timeout)
        except TimeoutError:
            raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED, "slow_request",
                          f"request not received within {self.timeout:g} s (--request-timeout-seconds)") from None
        finally:
            self._slots.release()
        if message is grpc.aio.EOF:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "malformed", "the call ended without a request")
        return message
