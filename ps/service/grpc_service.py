"""The gRPC face of the parameter server: a thin servicer over ps.core.parameter_server.ParameterServer.

Each handler parses the request, calls one core method and builds the reply; a RequestError from
the core becomes a gRPC status with its one-line message.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
from concurrent import futures

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ps.api.convert import flat_tensor, layout_from_proto, moments_from_proto
from ps.api.framing import WireError, split_tensor
from ps.api.source import Push
from ps.api.v1 import parameter_server_pb2 as pb
from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.service.auth import TokenInterceptor, server_credentials
from ps.service.gate import Refused, RequestGate
from ps.service.reply import PushReplyBuffer
from ps.api.channel import load_token
from ps.core.errors import RequestError, invalid
from ps.core.validate import TRANSPORT_SLACK, check_layout, check_message_size, check_register, check_stats

log = logging.getLogger("ps.server")
SERVICE_NAME = "a3c.ps.v1.ParameterServer"
SYNC_THREADS = 64
MAX_METADATA_BYTES = 16 * 1024
STREAMS_PER_CONNECTION = 32  # a worker has one call at a time; more wait in the client's HTTP/2 queue


class _Abort(Exception):
    """The status a call ends with instead of a reply: (grpc.StatusCode, one-line message)."""


def _handle_errors(method):
    """Map core RequestErrors (and anything unexpected) to _Abort with a one-line message."""
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            size = len(request) if isinstance(request, bytes) else request.ByteSize()
            self._refuse_if(check_message_size, size, self.core.config.max_message_bytes)
            return method(self, request, context)
        except RequestError as err:
            raise _Abort(getattr(grpc.StatusCode, err.code), err.message) from None
        except Exception as err:  # a bug of ours: say so in one line, keep serving
            log.exception("internal error in %s", method.__name__)
            raise _Abort(grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}") from None
    return wrapper


def _in_pool(method):
    """method as a plain handler: an _Abort becomes the call's status (the threaded form, for tests)."""
    def handler(request, context):
        try:
            return method(request, context)
        except _Abort as err:
            context.abort(*err.args)
    return handler


def _gated(method, gate: RequestGate, count, pool: futures.Executor | None):
    """method as the server's handler: its request read and its reply written in a gate slot
    (ps/service/gate.py), the work run on the event loop, or in `pool` when it may block (--sync
    rounds wait for other workers). On the loop a push saves two thread hand-offs, and its work is
    serialized under the core's lock anyway."""
    async def handler(_requests, context):
        failure = raw = None
        try:
            async with gate.slot():
                raw = await gate.read(context)
                if pool is None:
                    reply = method(raw, context)
                else:
                    reply = await asyncio.get_running_loop().run_in_executor(pool, method, raw, context)
                raw = None
                await gate.write(context, reply)
        except Refused as err:
            code, reason, message = err.args
            count(reason)
            failure = (code, message)
        except _Abort as err:
            failure = err.args
        # Aborted outside the except blocks: gRPC keeps the abort's exception a while, and chained to
        # ours it would keep every frame of the call alive, the request's bytes with them.
        if failure is not None:
            raw = None  # the abort's traceback holds this frame
            await context.abort(*failure)
    return handler


class ParameterServerServicer(pb_grpc.ParameterServerServicer):
    def __init__(self, core: ParameterServer) -> None:
        self.core = core

    def _refuse_if(self, check, *args) -> None:
        """Run a ps.validate check here in the servicer; count its refusal (the core counts its own)."""
        try:
            check(*args)
        except RequestError as err:
            self.core.count_rejection(err.reason)
            raise

    @_handle_errors
    def Register(self, request, context):
        self._refuse_if(check_register, request.host, request.pid)
        worker_id, seed = self.core.register(request.host or context.peer(), request.pid, request.evaluator)
        return pb.RegisterReply(worker_id=worker_id, seed=seed, run_spec_json=self.core.spec.to_json(),
                                incarnation=self.core.incarnation, shards=self.core.sharding.addresses,
                                shard=self.core.sharding.index)

    @_handle_errors
    def Pull(self, request, context):
        self.core.check_incarnation(request.incarnation)
        self._refuse_if(check_layout, [(t.name, list(t.shape)) for t in request.layout.tensors],
                        request.initial_params.dtype if request.initial_params.data else "")
        params, version, stop, global_step = self.core.pull(
            request.worker_id, layout_from_proto(request.layout), request.initial_params.data)
        target_version, target = self.core.target_reply(request.worker_id)  # theta- (value-based methods)
        return pb.PullReply(params=flat_tensor(params), version=version, stop=stop, global_step=global_step,
                            target_version=target_version, target_params=flat_tensor(target) if target else None)

    @_handle_errors
    def Push(self, raw: bytes, context) -> bytes:
        """Raw bytes both ways (see _method_handlers): the gradient is read where it landed
        (ps/api/framing.py), and the core writes the parameters into the reply (ps/service/reply.py),
        in the update's own pass when it can."""
        try:
            request, gradient, data = split_tensor(raw, pb.PushRequest, "gradients")
        except WireError as err:
            self.core.count_rejection("malformed")
            raise invalid("malformed", f"malformed push: {err}") from None
        self.core.check_incarnation(request.incarnation)
        self._refuse_if(check_stats, request.stats)
        push = Push(request.worker_id, request.base_version, data, request.env_steps, gradient.dtype or "float32",
                    tuple(gradient.shape), tuple(request.episode_returns), tuple(request.episode_lengths),
                    dict(request.stats), request.target_version, moments_from_proto(request.moments),
                    request.grad_norm, request.run_staleness if request.HasField("run_staleness") else -1)
        reply = PushReplyBuffer(self.core.params_nbytes())
        return reply.finish(self.core.push(push, out=reply.params))

    @_handle_errors
    def Leave(self, request, context):
        self.core.check_incarnation(request.incarnation)
        self.core.leave(request.worker_id, request.reason)
        return pb.LeaveReply()

    @_handle_errors
    def Status(self, request, context):
        return pb.StatusReply(status_json=json.dumps(self.core.status()))

    @_handle_errors
    def ReportEvaluation(self, request, context):
        self.core.check_incarnation(request.incarnation)
        stop = self.core.report_evaluation(request.worker_id, request.version, tuple(request.returns),
                                           tuple(request.lengths))
        return pb.ReportEvaluationReply(stop=stop)


def _method_handlers(servicer: ParameterServerServicer, gate: RequestGate,
                     pool: futures.Executor | None) -> grpc.GenericRpcHandler:
    """The service's handlers, all reading raw bytes through the gate: Push reads its two big tensors
    in place (no protobuf copies), the others are parsed here so that bytes that are not their
    message get a counted INVALID_ARGUMENT rather than gRPC's UNKNOWN."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["ParameterServer"].methods:
        run = servicer.Push if method.name == "Push" else \
            _parsed(servicer, getattr(servicer, method.name), getattr(pb, method.input_type.name))
        serialize = None if method.name == "Push" else getattr(pb, method.output_type.name).SerializeToString
        handlers[method.name] = grpc.stream_stream_rpc_method_handler(  # one message each way, as unary
            _gated(run, gate, servicer.core.count_rejection, pool), response_serializer=serialize)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _parsed(servicer: ParameterServerServicer, method, message_type):
    def call(raw: bytes, context):
        try:
            request = message_type.FromString(raw)
        except DecodeError as err:
            servicer.core.count_rejection("malformed")
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"malformed {message_type.DESCRIPTOR.name}: {' '.join(str(err).split())}") from None
        return method(request, context)
    return call


def server_threads(cfg: ServerConfig) -> int:
    """Threads running the handlers with --sync, where every worker waiting in a round holds one:
    --max-workers, or 64. Without --sync the handlers run on the event loop and need none."""
    return cfg.max_workers or SYNC_THREADS


class ServingServer:
    """The gRPC server, an asyncio one on its own event-loop thread.

    Why asyncio: gRPC's threaded server hands a call to a pool thread as soon as it starts and the
    thread then waits for the request's bytes, so a few clients that open calls and never finish
    them hold every thread and starve the workers. Here a call waiting for its request costs a
    coroutine, not a thread; requests are read through a gate that bounds the bytes received at
    once and times out bodies that never come (ps/service/gate.py); handlers run on the loop (in
    a pool with --sync, whose rounds block). The token is checked from the call's metadata before
    any of its body is read (ps/service/auth.py).
    """

    def __init__(self, core: ParameterServer) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()
        try:
            self._server, self.port, self._health = self._run(_start(core))
        except BaseException:
            self._close_loop()
            raise

    def _run(self, coroutine, timeout: float | None = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def enter_graceful_shutdown(self) -> None:
        """Health says NOT_SERVING (probes and load balancers stop sending); calls still run."""
        self._run(self._health.enter_graceful_shutdown())

    def stop(self, grace: float) -> None:
        """Refuse new calls, give running ones `grace` seconds, then end them and the loop."""
        try:
            self._run(self._server.stop(grace), timeout=grace + 30)
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)


async def _start(core: ParameterServer):
    cfg = core.config
    # Messages up to TRANSPORT_SLACK x the limit reach the servicer, which refuses and counts those
    # over the limit; gRPC itself refuses anything bigger (RESOURCE_EXHAUSTED) before buffering it.
    options = [("grpc.max_send_message_length", cfg.max_message_bytes),
               ("grpc.max_receive_message_length", TRANSPORT_SLACK * cfg.max_message_bytes),
               ("grpc.so_reuseport", 0),
               ("grpc.max_metadata_size", MAX_METADATA_BYTES),  # oversized headers: refused by gRPC itself
               ("grpc.max_concurrent_streams", STREAMS_PER_CONNECTION),
               # Each stream's receive window stays at HTTP/2's 64 KiB until its handler reads: a call
               # waiting for a gate slot cannot make the server buffer its body (BDP probing grows them).
               ("grpc.http2.bdp_probe", 0),
               # keepalive pings: at most one a 10 s without calls, else the connection is closed
               ("grpc.http2.min_ping_interval_without_data_ms", 10_000), ("grpc.http2.max_ping_strikes", 2)]
    token = load_token(cfg.token_file)
    interceptors = [TokenInterceptor(token, core.count_rejection)] if token else []
    pool = (futures.ThreadPoolExecutor(max_workers=server_threads(cfg), thread_name_prefix="ps-handler")
            if core.spec.sync else None)
    server = grpc.aio.server(interceptors=interceptors, options=options, maximum_concurrent_rpcs=cfg.max_calls)
    gate = RequestGate(TRANSPORT_SLACK * cfg.max_message_bytes, cfg.max_inflight_bytes, cfg.request_timeout_seconds)
    handlers = _method_handlers(ParameterServerServicer(core), gate, pool)
    server.add_generic_rpc_handlers((handlers,))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"[{cfg.host}]:{cfg.port}" if ":" in cfg.host else f"{cfg.host}:{cfg.port}"
    try:
        port = (server.add_secure_port(address, server_credentials(cfg.tls_cert, cfg.tls_key)) if cfg.tls_cert
                else server.add_insecure_port(address))
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot bind {address}: is the port in use?")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on %s:%d (pid %d; %s, %s)", SERVICE_NAME, cfg.host, port, os.getpid(),
             "TLS" if cfg.tls_cert else "plaintext", "token required" if token else "no token")
    return server, port, health_servicer


def start_server(core: ParameterServer) -> ServingServer:
    """Start serving the core on config.host:config.port (the bound port: .port)."""
    return ServingServer(core)
