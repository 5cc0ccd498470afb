"""The worker's view of the parameter server over gRPC: ps.api.source's ParameterSource protocol
(register, pull, push, leave), speaking its records and hiding the wire messages.

The only worker module that imports grpc or the protobuf messages. Transient failures (UNAVAILABLE, DEADLINE_EXCEEDED,
and CANCELLED, which is what a call in flight gets when the server shuts down) are retried with exponential backoff until `connect_timeout` seconds have passed without an answer;
then ServerUnavailable names the address. Refusals (bad input, unknown worker) raise ServerRefused.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import grpc

from ps.api.convert import flat_tensor, layout_to_proto, moments_to_proto
from ps.api.framing import WireError, join_tensor, split_tensor
from ps.api.v1 import parameter_server_pb2 as pb
from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
from ps.api.channel import call_metadata, client_channel
from ps.api.layout import Layout
from ps.api import source
from ps.api.source import Push, PushOutcome, Registration, Weights
from ps.api.spec import RunSpec

log = logging.getLogger("worker.client")
SERVICE = pb.DESCRIPTOR.services_by_name["ParameterServer"].full_name
# The worker never cancels its own calls, so CANCELLED means the server ended the call while stopping.
TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
# RESOURCE_EXHAUSTED with these: the server holds all the requests (or calls) it will at once; retry
BUSY = ("server busy", "Concurrent RPC limit")


def _transient(err: grpc.RpcError) -> bool:
    return err.code() in TRANSIENT or (err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                                       and (err.details() or "").startswith(BUSY))


class ServerUnavailable(Exception):
    """The server did not answer within the connect timeout."""


class NotGrpc(ServerUnavailable):
    """Something answers at the address, but not in HTTP/2: no retry will make it a parameter server."""


# What gRPC says when the peer answers in anything but HTTP/2 (an HTTP/1 server, a database ...).
NOT_HTTP2 = ("Failed parsing HTTP/2", "http1.x")


class ServerRefused(Exception):
    """The server answered with an error status; `code` is the grpc.StatusCode."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class UnknownWorker(ServerRefused, source.UnknownWorker):
    """NOT_FOUND: this worker id is not known to the server's current incarnation (it restarted)."""


class NoParameters(ServerRefused):
    """FAILED_PRECONDITION to an evaluator's pull: no learner has offered the first parameters yet."""


@dataclass(frozen=True)
class ClientConfig:
    address: str
    """host:port of the parameter server."""
    connect_timeout_seconds: float = 60.0
    """How long to keep retrying an unreachable server before giving up."""
    call_timeout_seconds: float = 30.0
    """Deadline of each call."""
    max_message_bytes: int = 64 * 1024 * 1024
    """Largest gRPC message either way."""
    backoff_initial_seconds: float = 0.1
    backoff_max_seconds: float = 5.0
    token: str = ""
    """Shared token sent as call metadata (ps/api/channel.py); empty when the server needs none."""
    tls_ca: str = ""
    """CA certificate (PEM file) to verify a TLS server with; empty = plaintext."""


class PSClient:
    """ps.api.source.ParameterSource over gRPC, with retries (see the module's docstring)."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        options = [("grpc.max_send_message_length", config.max_message_bytes),
                   ("grpc.max_receive_message_length", config.max_message_bytes),
                   # reconnect as fast as we retry, so a restarted server is found within seconds
                   ("grpc.initial_reconnect_backoff_ms", int(config.backoff_initial_seconds * 1000)),
                   ("grpc.max_reconnect_backoff_ms", int(config.backoff_max_seconds * 1000))]
        self._channel = client_channel(config.address, config.tls_ca, options)
        self._stub = pb_grpc.ParameterServerStub(self._channel)
        # Push moves raw bytes, framed by ps/api/framing.py: no protobuf copies of the two tensors.
        self._push = self._channel.unary_unary(f"/{SERVICE}/Push")
        self._metadata = call_metadata(config.token)
        self.incarnation = ""  # the server's, from the last Register; sent with every later call

    def register(self, host: str, pid: int, evaluator: bool = False) -> Registration:
        reply = self._call(self._stub.Register, pb.RegisterRequest(host=host, pid=pid, evaluator=evaluator))
        self.incarnation = reply.incarnation
        return Registration(reply.worker_id, reply.seed, RunSpec.from_json(reply.run_spec_json), reply.incarnation,
                            tuple(reply.shards), reply.shard)

    def pull(self, worker_id: int, layout: Layout, initial: bytes = b"") -> Weights:
        reply = self._call(self._stub.Pull, pb.PullRequest(
            worker_id=worker_id, layout=layout_to_proto(layout), incarnation=self.incarnation,
            initial_params=flat_tensor(initial) if initial else None))
        return Weights(reply.params.data, reply.version, reply.stop, reply.global_step,
                       reply.target_version, reply.target_params.data)

    def push(self, push: Push) -> PushOutcome:
        """Send one push, its gradient (a flat buffer of push.dtype) framed as the request's tensor; the
        outcome's params are a view into the received reply (no copy).

        One attempt only: a push that failed in flight may or may not have been applied, and its
        gradient is stale by then anyway; the caller re-pulls instead of re-sending it."""
        request = pb.PushRequest(worker_id=push.worker_id, base_version=push.base_version, env_steps=push.env_steps,
                                 episode_returns=push.episode_returns, episode_lengths=push.episode_lengths,
                                 stats=push.stats, target_version=push.target_version,
                                 incarnation=self.incarnation, moments=moments_to_proto(push.moments),
                                 grad_norm=push.grad_norm,
                                 run_staleness=push.run_staleness if push.run_staleness >= 0 else None)
        raw = self._call(self._push, join_tensor(request, "gradients", push.gradient, push.dtype), retry=False)
        try:
            reply, _, params = split_tensor(raw, pb.PushReply, "params")
        except WireError as err:
            raise ServerRefused(grpc.StatusCode.INTERNAL, f"unreadable push reply: {err}") from None
        return PushOutcome(reply.applied, reply.dropped_reason, reply.version, reply.staleness, reply.stop,
                           reply.global_step, reply.learning_rate, params, reply.target_version,
                           reply.target_params.data)

    def leave(self, worker_id: int, reason: str) -> None:
        try:
            self._stub.Leave(pb.LeaveRequest(worker_id=worker_id, reason=reason, incarnation=self.incarnation),
                             timeout=2.0,
                             metadata=self._metadata)
        except grpc.RpcError:
            pass  # the server may already be gone; leaving is a courtesy

    def report_evaluation(self, worker_id: int, version: int, returns: tuple[float, ...],
                          lengths: tuple[int, ...]) -> bool:
        """Retried like a pull: a round recorded twice is the same round."""
        reply = self._call(self._stub.ReportEvaluation, pb.ReportEvaluationRequest(
            worker_id=worker_id, incarnation=self.incarnation, version=version, returns=returns, lengths=lengths))
        return reply.stop

    def close(self) -> None:
        self._channel.close()

    def _call(self, method, request, retry: bool = True):
        cfg = self.config
        first_failure = None
        delay = cfg.backoff_initial_seconds
        while True:
            try:
                return method(request, timeout=cfg.call_timeout_seconds, metadata=self._metadata)
            except grpc.RpcError as err:
                code = err.code()
                if any(words in (err.details() or "") for words in NOT_HTTP2):
                    raise NotGrpc(f"{cfg.address} does not speak gRPC ({err.details()}): "
                                  f"is --ps the parameter server's host:port?") from None
                if not _transient(err):
                    refused = (UnknownWorker if code == grpc.StatusCode.NOT_FOUND else NoParameters
                               if code == grpc.StatusCode.FAILED_PRECONDITION
                               and (err.details() or "").startswith("no parameters yet") else ServerRefused)
                    raise refused(code, err.details() or "") from None
                now = time.monotonic()
                first_failure = first_failure or now
                waited = now - first_failure
                if not retry or waited >= cfg.connect_timeout_seconds:
                    raise ServerUnavailable(
                        f"parameter server at {cfg.address} unreachable for {waited:.0f} s "
                        f"({code.name}: {err.details()})") from None
                if waited == 0:
                    log.warning("parameter server at %s: %s; retrying for up to %.0f s",
                                cfg.address, code.name, cfg.connect_timeout_seconds)
                time.sleep(min(delay * (0.5 + random.random()), cfg.connect_timeout_seconds - waited))
                delay = min(delay * 2, cfg.backoff_max_seconds)
