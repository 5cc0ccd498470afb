"""Errors the server's core raises for bad requests; the gRPC layer maps them to status codes."""
from __future__ import annotations


class RequestError(Exception):
    """A request the server refuses. `code` is a grpc.StatusCode name, `reason` a short counter label."""

    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def invalid(reason: str, message: str) -> RequestError:
    return RequestError("INVALID_ARGUMENT", reason, message)


def precondition(reason: str, message: str) -> RequestError:
    return RequestError("FAILED_PRECONDITION", reason, message)


def unknown_worker(worker_id: int) -> RequestError:
    return RequestError("NOT_FOUND", "unknown_worker",
                        f"worker {worker_id} is not registered with this server incarnation; register again")


def expired_worker(worker_id: int, why: str | None) -> RequestError:
    """A worker this incarnation registered but has since reaped (it left or timed out): its id is gone."""
    return RequestError("NOT_FOUND", "expired_worker",
                        f"worker {worker_id} is no longer registered ({why or 'it left or timed out'}); "
                        f"its request is discarded: register again")
