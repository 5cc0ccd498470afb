"""Hostile input at the stream and transport level against a real ps-serve process.

    python -m bench.fuzz                       # 100,000 inputs (200 batches of 500)
    python -m bench.fuzz --inputs 10000 --batch 500

tests/unit/test_fuzz_handlers.py fuzzes what a request *says*; this fuzzes how it *arrives*: request
streams that never end, end without a message, carry two or more messages on a unary method or are
cancelled (RST_STREAM) part-way; oversized (> 16 KiB) and odd metadata; and, on raw TCP sockets,
random bytes, a truncated HTTP/2 preface, an HTTP/1.1 request, hand-made HTTP/2 frames (random ones,
a gRPC message cut mid-frame, a stream reset mid-message, a header block of 20-60 KiB) and
connections closed mid-frame.

Every input is meant to be refused. The server runs with a token, so each gRPC input carries the
right token, none or a wrong one. Inputs go in batches sent at once (grpc.aio, one event loop);
after each batch: the process is alive, health says SERVING, Status answers, a Pull shows the
parameters, version and T exactly as before the batch (nothing refused changed them), and a
legitimate worker (worker.client.PSClient: register, pull, push ps.api.source.Push, leave) still
gets its push applied. The table counts, per input kind, the outcomes: the gRPC status the client
saw, or for raw sockets what the server answered (HTTP/2 frame types, GOAWAY's error code, closed,
nothing within the wait).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import socket
import struct
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # the client library's own log lines about refused metadata

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ps.api.framing import join_tensor
from ps.api.layout import Layout
from ps.api.source import Push
from ps.api.v1 import parameter_server_pb2 as pb
from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc

from .common import bin_path, console, launch, print_table, stop_process, wait_for_file

SERVICE = "a3c.ps.v1.ParameterServer"
METHODS = ("Register", "Pull", "Push", "Leave", "Status")
HEALTH = "/grpc.health.v1.Health/Check"
TOKEN = "fuzz-token-7f3a9c"
LAYOUT = Layout.from_pairs([("w", (250, 4)), ("b", (4,))])   # 1,004 floats
MAX_MESSAGE = 4 * 1024 * 1024                                 # the server's --max-message-bytes (its minimum)
REQUEST_TIMEOUT = 1.0                                         # the server's --request-timeout-seconds
RAW_WAIT = 0.6                                                # how long a raw socket waits for the server's answer

# --- HTTP/2 by hand (no h2 package: frames and HPACK literals are a few lines) ---------------------------
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = {DATA: "DATA", HEADERS: "HEADERS", RST_STREAM: "RST_STREAM", SETTINGS: "SETTINGS", PING: "PING",
               GOAWAY: "GOAWAY", WINDOW_UPDATE: "WINDOW_UPDATE", CONTINUATION: "CONTINUATION"}
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream & 0x7FFFFFFF) + payload


def _hpack_int(n: int, prefix_bits: int = 7) -> bytes:
    top = (1 << prefix_bits) - 1
    if n < top:
        return bytes([n])
    out, n = bytearray([top]), n - top
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def hpack(headers) -> bytes:
    """A header block of literals without indexing (no Huffman): valid HPACK for any names and values."""
    out = bytearray()
    for name, value in headers:
        name, value = (x if isinstance(x, bytes) else x.encode() for x in (name, value))
        out += b"\x00" + _hpack_int(len(name)) + name + _hpack_int(len(value)) + value
    return bytes(out)


def grpc_headers(authority: str, method: str, token: str | None = TOKEN, extra=()) -> list:
    headers = [(":method", "POST"), (":scheme", "http"), (":path", method), (":authority", authority),
               ("content-type", "application/grpc"), ("te", "trailers")]
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    return headers + list(extra)


def header_frames(stream: int, block: bytes, end_stream: bool = False, max_frame: int = 16384) -> bytes:
    """HEADERS (+ CONTINUATION frames when the block is longer than a frame)."""
    chunks = [block[i:i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
    out = bytearray()
    for i, chunk in enumerate(chunks):
        flags = (END_STREAM if end_stream and i == 0 else 0) | (END_HEADERS if i == len(chunks) - 1 else 0)
        out += frame(HEADERS if i == 0 else CONTINUATION, flags, stream, chunk)
    return bytes(out)


def grpc_message(body: bytes, claimed: int | None = None) -> bytes:
    """gRPC's length-prefixed message (uncompressed); `claimed` lies about the length."""
    return b"\x00" + struct.pack(">I", len(body) if claimed is None else claimed) + body


def parse_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, stream, payload) of every whole frame in data (what a server sent on a connection)."""
    frames, pos = [], 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        kind, stream = data[pos + 3], int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        frames.append((kind, stream, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return frames


def describe_answer(data: bytes, closed: bool) -> str:
    """What the server answered on a raw connection, as one short label."""
    if data.startswith(b"HTTP/1"):
        return "http1 " + data.split(b"\r\n", 1)[0].decode(errors="replace")[9:21].strip()
    kinds = []
    for kind, _, payload in parse_frames(data):
        if kind == HEADERS and (status := re.search(rb"grpc-status.(\d+)", payload)):
            label = f"grpc-status {int(status.group(1))}"
        elif kind == GOAWAY and len(payload) >= 8:
            label = f"GOAWAY({int.from_bytes(payload[4:8], 'big')})"
        elif kind == RST_STREAM and len(payload) >= 4:
            label = f"RST({int.from_bytes(payload[:4], 'big')})"
        elif kind in (SETTINGS, WINDOW_UPDATE, PING):
            continue  # connection housekeeping, present on every answered connection
        else:
            label = FRAME_NAMES.get(kind, f"type{kind}")
        if label not in kinds:
            kinds.append(label)
    answer = "+".join(kinds) if kinds else ("settings only" if data else "nothing")
    return answer + (", closed" if closed else ", open")


# --- the server ------------------------------------------------------------------------------------------
@dataclass
class Server:
    launched: object
    address: str
    run_dir: Path

    @property
    def pid(self) -> int:
        return self.launched.proc.pid

    def alive(self) -> bool:
        return self.launched.proc.poll() is None

    def close(self) -> None:
        stop_process(self.launched.proc)


def start_ps(run_dir: Path, *extra: str, token: str = TOKEN) -> Server:
    """A real ps-serve on a free port with a token; returns once it serves."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "token").write_text(token)
    launched = launch([bin_path("ps-serve"), "--port", "0", "--run-dir", str(run_dir / "run"),
                       "--token-file", str(run_dir / "token"), "--target-return", "none",
                       "--total-steps", "1000000000000", "--progress-seconds", "3600", "--log-level", "WARNING",
                       "--checkpoint-every", "0", *extra], run_dir / "log.txt")
    port = wait_for_file(run_dir / "run" / "port", launched.proc)
    return Server(launched, f"127.0.0.1:{port}", run_dir)


def client(address: str, token: str = TOKEN):
    from worker.client import ClientConfig, PSClient
    return PSClient(ClientConfig(address=address, token=token, connect_timeout_seconds=20, call_timeout_seconds=20))


def adopt_layout(address: str, layout: Layout = LAYOUT, seed: int = 0) -> tuple[object, int]:
    """Register an observer worker and offer the run's parameters; returns (client, worker id)."""
    c = client(address)
    reg = c.register("observer", os.getpid())
    init = np.random.default_rng(seed).standard_normal(layout.size).astype(np.float32)
    c.pull(reg.worker_id, layout, init.tobytes())
    return c, reg.worker_id


def fingerprint(observer, worker_id: int, layout: Layout = LAYOUT) -> tuple[str, int, int]:
    """(sha256 of theta, version, T) as a Pull shows them."""
    w = observer.pull(worker_id, layout)
    return hashlib.sha256(bytes(w.params)).hexdigest(), w.version, w.global_step


def legit_worker_flow(address: str, layout: Layout = LAYOUT) -> int:
    """register, pull, push (applied: the version goes up by one), leave. Returns the new version."""
    c = client(address)
    try:
        reg = c.register("legit", os.getpid())
        w = c.pull(reg.worker_id, layout)
        out = c.push(Push(reg.worker_id, w.version, np.full(layout.size, 1e-3, np.float32), 5))
        assert out.applied and out.version == w.version + 1, f"legit push not applied: {out}"
        c.leave(reg.worker_id, "fuzz check done")
        return out.version
    finally:
        c.close()


def server_answers(address: str, token: str = TOKEN) -> dict:
    """Health SERVING and Status's JSON, over a fresh channel."""
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING, health
        reply = pb_grpc.ParameterServerStub(channel).Status(
            pb.StatusRequest(), timeout=10, metadata=(("authorization", f"Bearer {token}"),))
    return json.loads(reply.status_json)


# --- the inputs ------------------------------------------------------------------------------------------
class Env:
    """What the inputs know: the address, the observer's worker id and incarnation."""

    def __init__(self, address: str, worker_id: int, incarnation: str) -> None:
        self.address, self.host, self.port = address, *address.rsplit(":", 1)
        self.port = int(self.port)
        self.worker_id, self.incarnation = worker_id, incarnation
        opts = [("grpc.max_send_message_length", 64 * 1024 * 1024), ("grpc.max_receive_message_length", -1)]
        self.options = opts
        self.channels = [grpc.aio.insecure_channel(address, options=opts + [("grpc.use_local_subchannel_pool", 1)])
                         for _ in range(8)]

    def channel(self, rng: random.Random):
        return rng.choice(self.channels)

    def fresh_channel(self):
        return grpc.aio.insecure_channel(self.address, options=self.options + [("grpc.use_local_subchannel_pool", 1)])

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()


def metadata_for(rng: random.Random) -> tuple:
    """The right token (60%), none (20%) or a wrong one (20%)."""
    r = rng.random()
    if r < 0.6:
        return (("authorization", f"Bearer {TOKEN}"),)
    if r < 0.8:
        return ()
    return (("authorization", rng.choice(["Bearer wrong", f"Bearer {TOKEN}x", TOKEN, "Bearer ", "bearer " + TOKEN])),)


def refused_request(method: str, env: Env, rng: random.Random) -> bytes:
    """A request of `method` that the server must refuse (it changes nothing)."""
    wid, inc = env.worker_id, env.incarnation
    n = LAYOUT.size
    choice = rng.randrange(4)
    if choice == 0:  # not a message at all (0x07: field 0 of wire type 7, which no parser takes)
        return b"\x07" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
    if method == "Register":
        return pb.RegisterRequest(host="x" * rng.choice([300, 10_000]), pid=rng.choice([-1, 2**40])).SerializeToString()
    if method == "Pull":
        bad = Layout.from_pairs([("w", (3, 3))])
        from ps.api.convert import layout_to_proto
        return pb.PullRequest(worker_id=wid, incarnation=rng.choice([inc, ""]),
                              layout=layout_to_proto(bad)).SerializeToString()
    if method == "Push":  # a gradient of the wrong length, or a wrong worker, or a stale incarnation, or NaN
        kind = rng.randrange(4)
        grad = np.full(n + (1 if kind == 0 else 0), np.nan if kind == 3 else 1e-3, np.float32)
        req = pb.PushRequest(worker_id=wid if kind != 1 else 10**9, base_version=0, env_steps=5,
                             incarnation=inc if kind != 2 else "0ld")
        return join_tensor(req, "gradients", grad)
    if method == "Leave":
        return pb.LeaveRequest(worker_id=wid, reason="fuzz", incarnation="0ld").SerializeToString()
    return b"\xff\xff\xff"  # Status: bytes that are not a StatusRequest


def valid_push(env: Env) -> bytes:
    req = pb.PushRequest(worker_id=env.worker_id, base_version=0, env_steps=5, incarnation=env.incarnation)
    return join_tensor(req, "gradients", np.full(LAYOUT.size, 0.5, np.float32))


def _code(err: grpc.RpcError) -> str:
    code = err.code()
    name = code.name if code is not None else "NONE"
    details = err.details() or ""
    if name == "DEADLINE_EXCEEDED" and "request-timeout" in details:
        return "DEADLINE_EXCEEDED(server)"
    if name == "RESOURCE_EXHAUSTED" and details.startswith(("server busy", "Concurrent RPC limit")):
        return "RESOURCE_EXHAUSTED(busy)"  # the gate's budget, or --max-calls
    if name == "UNAVAILABLE" and "RST_STREAM" in details:
        return "UNAVAILABLE(refused stream)"  # past the 32 streams a connection may have open
    if name == "RESOURCE_EXHAUSTED" and "metadata size" in details:
        return "RESOURCE_EXHAUSTED(metadata)"
    if name == "INTERNAL" and details in ("Invalid metadata", "Illegal header value", "Illegal header key"):
        return "client refused metadata"
    if name in ("RESOURCE_EXHAUSTED", "INTERNAL", "UNKNOWN", "UNAVAILABLE"):
        return f"{name}({' '.join(details.split())[:48]})"
    return name


async def _call(channel, method: str, requests, rng: random.Random, metadata=None, timeout: float = 5.0,
                cancel_after: float | None = None) -> str:
    call = channel.stream_unary(method)(requests, metadata=metadata if metadata is not None else metadata_for(rng),
                                        timeout=timeout)
    try:
        if cancel_after is not None:
            await asyncio.sleep(cancel_after)
            call.cancel()
        await call
        return "OK"
    except asyncio.CancelledError:
        return "CANCELLED"
    except grpc.RpcError as err:
        return _code(err)


def _method(rng: random.Random) -> str:
    return f"/{SERVICE}/{rng.choice(METHODS)}"


async def _forever():
    await asyncio.Event().wait()
    yield b""  # never reached


async def never_ending(env: Env, rng: random.Random) -> str:
    """Metadata, then nothing: no message, no half-close. Cut by the server's --request-timeout-seconds
    or the client's own deadline, whichever comes first."""
    method = HEALTH if rng.random() < 0.1 else _method(rng)
    return await _call(env.channel(rng), method, _forever(), rng, timeout=rng.uniform(0.2, 1.6))


async def never_ending_after_message(env: Env, rng: random.Random) -> str:
    """One message the server must refuse, then the stream stays open."""
    name = rng.choice(METHODS[:4])

    async def stream():
        yield refused_request(name, env, rng)
        await asyncio.Event().wait()
    return await _call(env.channel(rng), f"/{SERVICE}/{name}", stream(), rng, timeout=rng.uniform(0.5, 1.6))


async def half_closed_empty(env: Env, rng: random.Random) -> str:
    """The request stream ends (END_STREAM) without a message, at once or after a pause."""
    pause = rng.choice([0, 0, 0.05, 0.3])

    async def stream():
        if pause:
            await asyncio.sleep(pause)
        return
        yield b""
    method = HEALTH if rng.random() < 0.1 else _method(rng)
    return await _call(env.channel(rng), method, stream(), rng)


async def multi_message(env: Env, rng: random.Random) -> str:
    """Two to five messages on a unary method: the first one refused, the rest valid pushes that must
    not be applied (the server reads one message only)."""
    name = rng.choice(METHODS[:4])
    messages = [refused_request(name, env, rng)] + [valid_push(env)] * rng.randrange(1, 5)
    async def stream():
        for m in messages:
            yield m
    return await _call(env.channel(rng), f"/{SERVICE}/{name}", stream(), rng)


async def reset(env: Env, rng: random.Random) -> str:
    """Cancelled (RST_STREAM) part-way: before the message, during a large one (up to 8 MiB of
    garbage, refused anyway), or after one message of a stream that would continue."""
    variant = rng.randrange(3)
    size = rng.choice([1 << 10, 1 << 20, 6 << 20])

    async def stream():
        if variant == 1:
            yield os.urandom(16) * (size // 16)
        elif variant == 2:
            yield refused_request(rng.choice(METHODS[:4]), env, rng)
        await asyncio.Event().wait()
    return await _call(env.channel(rng), _method(rng), stream(), rng, timeout=10,
                       cancel_after=rng.uniform(0, 0.05))


async def oversized_metadata(env: Env, rng: random.Random) -> str:
    """Headers over grpc.max_metadata_size (16 KiB): one huge value, a huge token, or many keys.
    On its own connection (the server may end it)."""
    size = rng.randrange(17 * 1024, 64 * 1024)
    variant = rng.randrange(3)
    if variant == 0:
        md = (("authorization", f"Bearer {TOKEN}"), ("x-fill", "a" * size))
    elif variant == 1:
        md = (("authorization", "Bearer " + "t" * size),)
    else:
        md = (("authorization", f"Bearer {TOKEN}"),) + tuple((f"x-k{i}", "v" * 100) for i in range(size // 100))
    name = rng.choice(METHODS)
    channel = env.fresh_channel()
    try:
        outcome = await _call(channel, f"/{SERVICE}/{name}", _one(refused_request(name, env, rng)), rng, metadata=md)
    finally:
        await channel.close()
    return f"{outcome} {_bucket(size)}"


def _bucket(size: int) -> str:
    """gRPC's max_metadata_size is a soft limit; its hard limit (absolute_max_metadata_size, unset) is 1.25x."""
    return "[16-20 KiB]" if size <= 20 * 1024 else "[>20 KiB]"


async def _one(message: bytes):
    yield message


ODD_METADATA = [
    lambda r: (("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer wrong")),   # two of them
    lambda r: (("authorization", "Bearer wrong"), ("authorization", f"Bearer {TOKEN}")),
    lambda r: (("authorization-bin", os.urandom(r.randrange(1, 200))),),
    lambda r: (("authorization", f"Bearer  {TOKEN}"),),
    lambda r: (("authorization", f"Bearer {TOKEN} "),),
    lambda r: (("authorization", "Bearer " + "\t".join([TOKEN] * 3)),),
    lambda r: (("x-odd-bin", os.urandom(r.randrange(0, 4000))), ("authorization", f"Bearer {TOKEN}")),
    lambda r: tuple((f"k{i}", "v" * 30) for i in range(r.randrange(50, 200))),  # many: under 16 KiB with HPACK's 32 per entry
    lambda r: (("grpc-timeout", "1n"), ("authorization", f"Bearer {TOKEN}")),
    lambda r: (("content-type", "text/html"), ("authorization", f"Bearer {TOKEN}")),
    lambda r: (("te", "gzip"),),
    lambda r: (("user-agent", "x" * 8000), ("authorization", f"Bearer {TOKEN}")),
    lambda r: (("grpc-encoding", "gzip"), ("authorization", f"Bearer {TOKEN}")),
    lambda r: (("grpc-encoding", "nonsense"), ("authorization", f"Bearer {TOKEN}")),
    lambda r: (("Authorization", f"Bearer {TOKEN}"),),          # upper case: refused by the client library
    lambda r: (("authorization", "Bearer \x00\x01"),),          # control bytes: refused by the client library
    lambda r: (("x-\u00e9", "v"),),
]


async def odd_metadata(env: Env, rng: random.Random) -> str:
    """Duplicated, binary, padded, mis-cased, reserved or control-character metadata, with a body the
    server must refuse (or a Status, which changes nothing). On its own connection."""
    md = rng.choice(ODD_METADATA)(rng)
    name = rng.choice(METHODS)
    channel = env.fresh_channel()
    try:
        return await _call(channel, f"/{SERVICE}/{name}", _one(refused_request(name, env, rng)), rng, metadata=md)
    except (ValueError, TypeError, UnicodeError):
        return "client refused metadata"
    finally:
        await channel.close()


async def garbage_unary(env: Env, rng: random.Random) -> str:
    """One refused message on a real or an unknown method, the stream closed normally."""
    method = _method(rng) if rng.random() < 0.85 else rng.choice(
        [f"/{SERVICE}/Nope", "/x/y", "/", f"/{SERVICE}/Push/extra", "/grpc.health.v1.Health/Watch2"])
    name = method.rsplit("/", 1)[-1]
    return await _call(env.channel(rng), method, _one(refused_request(name if name in METHODS else "Status",
                                                                        env, rng)), rng)


# --- raw TCP ---------------------------------------------------------------------------------------------
async def _raw(env: Env, payload_parts, close_early: bool = False, wait: float = RAW_WAIT) -> str:
    """Send the parts (bytes, or a float: sleep that long), then read the server's answer until it
    closes or `wait` passes (or close at once when close_early: a connection closed mid-frame)."""
    try:
        reader, writer = await asyncio.open_connection(env.host, env.port)
    except OSError as err:
        return f"connect failed: {err.strerror}"
    data, closed = bytearray(), False
    try:
        for part in payload_parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                writer.write(part)
                await writer.drain()
        if close_early:
            writer.transport.abort() if random.random() < 0.5 else writer.close()  # RST or FIN
            return "closed by us"
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except asyncio.TimeoutError:
                break
            if not chunk:
                closed = True
                break
            data += chunk
    except (ConnectionError, OSError):
        closed = True
    finally:
        if not writer.is_closing():
            writer.transport.abort()
    return describe_answer(bytes(data), closed)


def _h2_start() -> bytes:
    return PREFACE + frame(SETTINGS, 0, 0)


async def tcp_random(env: Env, rng: random.Random) -> str:
    return await _raw(env, [os.urandom(rng.randrange(1, 4096))])


async def tcp_truncated_preface(env: Env, rng: random.Random) -> str:
    cut = PREFACE[:rng.randrange(1, len(PREFACE))]
    return await _raw(env, [cut], close_early=rng.random() < 0.5)


async def tcp_http1(env: Env, rng: random.Random) -> str:
    request = rng.choice([
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /a3c.ps.v1.ParameterServer/Push HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\n"
        b"Content-Length: 5\r\n\r\n\x00\x00\x00\x00\x00",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        b"OPTIONS * HTTP/1.0\r\n\r\n",
    ])
    return await _raw(env, [request])


async def tcp_mid_frame(env: Env, rng: random.Random) -> str:
    """A valid stream's headers, then a gRPC message cut inside a frame (the frame, or the message's
    own length prefix, promises more), then the connection is closed or left hanging."""
    body = refused_request("Push", env, rng) if rng.random() < 0.5 else valid_push(env)
    msg = grpc_message(body)
    cut = rng.randrange(1, len(msg))
    data = frame(DATA, 0, 1, msg)[:9 + cut] if rng.random() < 0.5 else frame(DATA, 0, 1, msg[:cut])
    parts = [_h2_start(), header_frames(1, hpack(grpc_headers(f"{env.host}:{env.port}", f"/{SERVICE}/Push"))), data]
    return await _raw(env, parts, close_early=rng.random() < 0.7)


async def tcp_reset_mid_message(env: Env, rng: random.Random) -> str:
    """A message's first bytes, RST_STREAM (CANCEL), then a second stream on the same connection with a
    message the server must refuse: the connection still answers it."""
    authority = f"{env.host}:{env.port}"
    body = valid_push(env)
    msg = grpc_message(body)
    cut = rng.randrange(1, len(msg))
    parts = [_h2_start(), frame(SETTINGS, ACK, 0),
             header_frames(1, hpack(grpc_headers(authority, f"/{SERVICE}/Push"))),
             frame(DATA, 0, 1, msg[:cut]), frame(RST_STREAM, 0, 1, struct.pack(">I", 8)),
             header_frames(3, hpack(grpc_headers(authority, f"/{SERVICE}/Leave"))),
             frame(DATA, END_STREAM, 3, grpc_message(refused_request("Leave", env, rng)))]
    return await _raw(env, parts)


async def tcp_random_frames(env: Env, rng: random.Random) -> str:
    """After a valid preface: frames of random type, flags, stream and payload (some with a length
    that lies)."""
    parts = [_h2_start()]
    for _ in range(rng.randrange(1, 6)):
        payload = os.urandom(rng.randrange(0, 300))
        f = frame(rng.randrange(0, 12), rng.randrange(256), rng.choice([0, 1, 2, 3, rng.getrandbits(31)]), payload)
        if rng.random() < 0.2:
            f = struct.pack(">I", rng.randrange(1 << 24))[1:] + f[3:]
        parts.append(f)
    return await _raw(env, parts)


async def tcp_huge_headers(env: Env, rng: random.Random) -> str:
    """A header block of 17-64 KiB (HEADERS + CONTINUATIONs), or CONTINUATIONs that never end."""
    authority = f"{env.host}:{env.port}"
    size = rng.randrange(17 * 1024, 64 * 1024)
    block = hpack(grpc_headers(authority, f"/{SERVICE}/Status", extra=[("x-fill", "b" * size)]))
    if rng.random() < 0.3:  # a block left unfinished: no END_HEADERS, ever
        chunks = header_frames(1, block)
        return await _raw(env, [_h2_start(), chunks[:-9 - (len(block) % 16384 or 16384)]]) + " (unfinished)"
    answer = await _raw(env, [_h2_start(), header_frames(1, block, end_stream=False),
                              frame(DATA, END_STREAM, 1, grpc_message(b""))])
    return f"{answer} {_bucket(size)}"


KINDS = {
    "never-ending stream": (never_ending, 10),
    "never-ending after 1 message": (never_ending_after_message, 6),
    "half-closed, no message": (half_closed_empty, 10),
    "2-5 messages on unary": (multi_message, 8),
    "reset mid-call": (reset, 10),
    "oversized metadata": (oversized_metadata, 5),
    "odd metadata": (odd_metadata, 8),
    "refused message / method": (garbage_unary, 10),
    "tcp: random bytes": (tcp_random, 6),
    "tcp: truncated preface": (tcp_truncated_preface, 5),
    "tcp: HTTP/1.1 request": (tcp_http1, 4),
    "tcp: closed mid-frame": (tcp_mid_frame, 6),
    "tcp: reset mid-message": (tcp_reset_mid_message, 4),
    "tcp: random HTTP/2 frames": (tcp_random_frames, 6),
    "tcp: huge header block": (tcp_huge_headers, 4),
}


@dataclass
class Campaign:
    """Outcomes of a fuzz campaign, and what was checked after each batch."""
    outcomes: dict = field(default_factory=lambda: defaultdict(Counter))
    batches: int = 0
    inputs: int = 0
    alive_after_every_batch: bool = True
    unchanged_after_every_batch: bool = True
    legit_ok_after_every_batch: bool = True
    failures: list = field(default_factory=list)
    applied_by_fuzz: int = 0
    seconds: float = 0.0
    status: dict = field(default_factory=dict)
    peak_rss: int = 0


async def _batch(env: Env, rng: random.Random, size: int, campaign: Campaign) -> None:
    names = list(KINDS)
    weights = [KINDS[n][1] for n in names]
    chosen = rng.choices(names, weights, k=size)

    async def one(name: str, seed: int):
        try:
            outcome = await KINDS[name][0](env, random.Random(seed))
        except Exception as err:  # the client side failed in a way we did not foresee: record it
            outcome = f"client error {type(err).__name__}"
        campaign.outcomes[name][outcome] += 1
    await asyncio.gather(*(one(n, rng.getrandbits(64)) for n in chosen))
    campaign.inputs += size


def _check(server: Server, observer, worker_id: int, before, campaign: Campaign, batch: int):
    """After a batch: alive, answering, unchanged; then a legitimate worker's push lands."""
    import psutil
    if not server.alive():
        campaign.alive_after_every_batch = False
        campaign.failures.append(f"batch {batch}: ps-serve exited {server.launched.proc.returncode}")
        return None
    campaign.peak_rss = max(campaign.peak_rss, psutil.Process(server.pid).memory_info().rss)
    try:
        campaign.status = server_answers(server.address)
    except Exception as err:
        campaign.alive_after_every_batch = False
        campaign.failures.append(f"batch {batch}: health/Status failed: {err}")
        return None
    after = fingerprint(observer, worker_id)
    if after != before:
        campaign.unchanged_after_every_batch = False
        campaign.failures.append(f"batch {batch}: parameters changed by refused input: {before} -> {after}")
    try:
        legit_worker_flow(server.address)
    except Exception as err:
        campaign.legit_ok_after_every_batch = False
        campaign.failures.append(f"batch {batch}: legitimate worker failed: {type(err).__name__}: {err}")
    return fingerprint(observer, worker_id)


async def run_campaign(server: Server, inputs: int, batch: int, seed: int = 0, progress: bool = False) -> Campaign:
    import logging
    # cancelled calls leave grpc.aio's readers of our request generators to be collected: noise only
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    campaign = Campaign()
    rng = random.Random(seed)
    observer, worker_id = await asyncio.to_thread(adopt_layout, server.address)
    env = Env(server.address, worker_id, observer.incarnation)
    start = time.monotonic()
    try:
        before = await asyncio.to_thread(fingerprint, observer, worker_id)
        while campaign.inputs < inputs:
            await _batch(env, rng, min(batch, inputs - campaign.inputs), campaign)
            campaign.batches += 1
            before = await asyncio.to_thread(_check, server, observer, worker_id, before, campaign, campaign.batches)
            if before is None:
                break
            if progress and campaign.batches % 10 == 0:
                console.print(f"  {campaign.inputs:,} inputs, {time.monotonic() - start:.0f} s")
    finally:
        campaign.seconds = time.monotonic() - start
        await env.close()
        observer.close()
    return campaign


def fuzz(inputs: int, batch: int, seed: int, workdir: Path, progress: bool = False) -> tuple[Campaign, Server]:
    """Start a server, run the campaign against it, leave the server running (the caller stops it)."""
    server = start_ps(workdir, "--max-message-bytes", str(MAX_MESSAGE),
                      "--request-timeout-seconds", str(REQUEST_TIMEOUT), "--worker-timeout", "3600")
    try:
        campaign = asyncio.run(run_campaign(server, inputs, batch, seed, progress))
    except BaseException:
        server.close()
        raise
    return campaign, server


def print_campaign(campaign: Campaign, title: str) -> None:
    rows = []
    for name in KINDS:
        counts = campaign.outcomes.get(name, Counter())
        rows.append([name, f"{sum(counts.values()):,}",
                     "; ".join(f"{k} {v:,}" for k, v in counts.most_common())])
    rows.append(["total", f"{campaign.inputs:,}", f"{campaign.batches} batches, {campaign.seconds:.0f} s"])
    print_table(title, ["input kind", "count", "outcomes (gRPC status the client saw / raw: what the server sent)"],
                rows)
    rejected = campaign.status.get("rejected", {})
    console.print(f"server alive after every batch: {campaign.alive_after_every_batch}; parameters unchanged by "
                  f"every batch of refused input: {campaign.unchanged_after_every_batch}; legitimate worker's push "
                  f"applied after every batch: {campaign.legit_ok_after_every_batch}; server peak RSS seen "
                  f"{campaign.peak_rss / 2**20:.0f} MiB")
    console.print(f"server's rejected counters: {json.dumps(rejected, sort_keys=True)}")
    for failure in campaign.failures[:20]:
        console.print(f"FAILED: {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        campaign, server = fuzz(args.inputs, args.batch, args.seed, Path(tmp), progress=True)
        try:
            alive = server.alive()
        finally:
            server.close()
    print_campaign(campaign, f"Stream- and transport-level fuzz of a real ps-serve: {campaign.inputs:,} inputs, "
                             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    console.print(f"alive at the end: {alive}")


if __name__ == "__main__":
    main()
