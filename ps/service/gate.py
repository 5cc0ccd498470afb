"""The bytes of calls in progress, bounded: requests being received and replies being sent.

Every handler takes its request as a stream, reads it and writes its reply inside a RequestGate
slot. Until it reads, gRPC does not ask the client for the body, so a call waiting for a slot holds
no more than its headers; and a reply's write completes only once the client has taken it, so a
client that never reads its replies holds its slot, not ever more memory. A slot is the largest
request (the transport's limit); the slots never exceed --max-inflight-bytes. A call that cannot get
a slot within a short wait gets RESOURCE_EXHAUSTED (workers back off and retry); one whose request
does not arrive, or whose reply is not taken, within --request-timeout-seconds gets
DEADLINE_EXCEEDED and frees its slot. All are counted.
"""
from __future__ import annotations

import asyncio
import contextlib

import grpc

WAIT_SECONDS = 2.0   # how long a call may queue for a slot before it is told to retry
DEFAULT_SLOTS = 128  # --max-inflight-bytes 0: room for this many calls of the largest size (64 stalled
                     # calls that hold a slot each until --request-timeout-seconds still leave half)


class Refused(Exception):
    """(grpc.StatusCode, counter reason, one-line message)."""


class RequestGate:
    """Runs on the server's event loop only (not thread-safe, and need not be)."""

    def __init__(self, max_request_bytes: int, max_inflight_bytes: int, request_timeout_seconds: float) -> None:
        self.request_bytes = max_request_bytes
        self.budget = max_inflight_bytes or DEFAULT_SLOTS * max_request_bytes
        self.timeout = request_timeout_seconds
        self._slots = asyncio.Semaphore(max(1, self.budget // max_request_bytes))

    @contextlib.asynccontextmanager
    async def slot(self):
        """Held for a call's whole exchange: its request read, its reply written."""
        try:
            await asyncio.wait_for(self._slots.acquire(), WAIT_SECONDS)
        except TimeoutError:
            raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy",
                          f"server busy: {self.budget} bytes of calls in flight (--max-inflight-bytes); "
                          f"retry later") from None
        try:
            yield
        finally:
            self._slots.release()

    async def read(self, context) -> bytes:
        """The call's one request message (raw bytes); raises Refused. Inside slot()."""
        try:
            message = await asyncio.wait_for(context.read(), self.timeout)
        except TimeoutError:
            raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED, "slow_request",
                          f"request not received within {self.timeout:g} s (--request-timeout-seconds)") from None
        if message is grpc.aio.EOF:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "malformed", "the call ended without a request")
        return message

    async def write(self, context, reply) -> None:
        """Send the reply; raises Refused if the client does not take it in time. Inside slot()."""
        try:
            await asyncio.wait_for(context.write(reply), self.timeout)
        except TimeoutError:
            raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED, "unread_reply",
                          f"reply not taken within {self.timeout:g} s (--request-timeout-seconds)") from None
