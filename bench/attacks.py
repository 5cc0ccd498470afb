"""Memory under hostile clients: each attack against a real ps-serve, its RSS sampled every 50 ms.

    python -m bench.attacks                 # every attack at full size
    python -m bench.attacks --only pushes   # attacks whose name contains "pushes"

The server runs with a token, --max-message-bytes 16 MiB and --max-inflight-bytes 256 MiB: the
request gate (ps/service/gate.py) reserves 2 x 16 MiB (gRPC's own cap on a message) per request
read, so 8 requests at once. The bound is --max-inflight-bytes; an attack passes when the server's
peak RSS stays within its steady RSS + bound + MARGIN (64 MiB: gRPC's buffers, the reply being
built, the allocator's slack). Each attack is preceded by a legitimate worker offering a 700,000-float
layout (the paper's Atari net, as bench/server.py uses) and followed by a legitimate worker's push
(worker.client.PSClient), which must be applied.

The attacks (the figures the issue measured on the old server):
- 64 clients x ~16 MiB pushes of the wrong length, with the token (old server: 1 GiB peak);
- 32 x 120 MiB pushes without a token (1.4 GiB, each read in full before UNAUTHENTICATED), and
  32 x 120 MiB pushes with the token (over gRPC's 32 MiB cap);
- 400 Pulls whose 2.8 MB replies are never read: raw HTTP/2 connections with a 64 KiB window that
  are never read from, closed after a while (96 MiB to 2.8 GiB, still held after the connections closed);
- 10,000 Registers (never reaped on the old server; now capped by --max-registered-workers and reaped
  after --worker-timeout, 5 s here);
- 200 registrations that push once each with --optimizer rmsprop on the 0.7M layout (per-worker
  RMSProp statistics; a 566 MB checkpoint and a 1.8 GB peak), on a server of its own;
- header blocks of 1 MiB from raw HTTP/2 clients that never acknowledge the server's SETTINGS
  (found by bench/fuzz.py: the 16 KiB metadata limit is then not applied), without a token.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import struct
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
import numpy as np
import psutil

from ps.api.convert import layout_to_proto
from ps.api.framing import join_tensor
from ps.api.layout import Layout
from ps.api.v1 import parameter_server_pb2 as pb

from . import fuzz as F
from .common import MIB, console, print_table

ATARI = Layout.from_pairs([("theta", (700_000,))])
MESSAGE = 16 * MIB
INFLIGHT = 256 * MIB
MARGIN = 64 * MIB
WORKER_TIMEOUT = 5.0
SETTLE_SECONDS = 10.0
SAMPLE_SECONDS = 0.05


class RssSampler:
    """A process's RSS every 50 ms on a thread: the peak over a window, and single readings."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        try:
            return self.proc.memory_info().rss
        except psutil.NoSuchProcess:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, self.rss())

    def reset_peak(self) -> None:
        self.peak = self.rss()

    def steady(self, seconds: float = 1.0) -> int:
        """The median RSS over `seconds`."""
        values = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            values.append(self.rss())
            time.sleep(SAMPLE_SECONDS)
        return int(statistics.median(values))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    name: str
    steady: int
    peak: int
    after: int
    bound: int
    codes: Counter
    worker_ok: bool
    alive: bool
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def growth(self) -> int:
        return self.peak - self.steady

    @property
    def within(self) -> bool:
        return self.growth <= self.bound + MARGIN

    @property
    def back(self) -> bool:
        """Memory came back: within the margin of the steady RSS 10 s after."""
        return self.after - self.steady <= MARGIN


# --- attacker helpers --------------------------------------------------------------------------------------
def _md(token: str | None):
    return (("authorization", f"Bearer {token}"),) if token else ()


def _channels(address: str, n: int):
    opts = [("grpc.max_send_message_length", 256 * MIB), ("grpc.max_receive_message_length", -1),
            ("grpc.use_local_subchannel_pool", 1)]
    return [grpc.aio.insecure_channel(address, options=opts) for _ in range(n)]


async def _unary_calls(address: str, method: str, bodies, token: str | None, timeout: float = 60.0,
                       channels: int = 8) -> Counter:
    """Send every body as one call at once (each on one of `channels` connections); their statuses."""
    chans = _channels(address, channels)
    codes = Counter()

    async def one(i: int, body: bytes):
        try:
            await chans[i % len(chans)].unary_unary(method)(body, metadata=_md(token), timeout=timeout)
            codes["OK"] += 1
        except grpc.RpcError as err:
            codes[F._code(err)] += 1
    try:
        await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    finally:
        for ch in chans:
            await ch.close()
    return codes


def wrong_length_push(wid: int, incarnation: str, nbytes: int) -> bytes:
    """A push whose gradient is not the layout's length: about nbytes on the wire."""
    req = pb.PushRequest(worker_id=wid, base_version=0, env_steps=5, incarnation=incarnation)
    return join_tensor(req, "gradients", np.zeros((nbytes - 64) // 4, np.float32))


def _pull_sockets(address: str, wid: int, incarnation: str, layout: Layout, connections: int,
                  streams: int, token: str) -> list[socket.socket]:
    """Raw HTTP/2 connections, each with `streams` Pulls sent, whose replies are never read: a small
    receive buffer, the default 64 KiB windows, and no recv() after the server's SETTINGS."""
    host, port = address.rsplit(":", 1)
    body = F.grpc_message(pb.PullRequest(worker_id=wid, incarnation=incarnation,
                                         layout=layout_to_proto(layout)).SerializeToString())
    socks = []
    for _ in range(connections):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.sendall(F.PREFACE + F.frame(F.SETTINGS, 0, 0))
        s.settimeout(2.0)
        try:
            s.recv(4096)  # the server's SETTINGS (acknowledged below); nothing is read after this
        except socket.timeout:
            pass
        out = bytearray(F.frame(F.SETTINGS, F.ACK, 0))
        for i in range(streams):
            sid = 1 + 2 * i
            out += F.header_frames(sid, F.hpack(F.grpc_headers(address, f"/{F.SERVICE}/Pull", token)))
            out += F.frame(F.DATA, F.END_STREAM, sid, body)
        s.sendall(out)
        socks.append(s)
    return socks


def _header_sockets(address: str, connections: int, streams: int, header_bytes: int) -> list[socket.socket]:
    """Raw HTTP/2 connections that never acknowledge the server's SETTINGS, each sending `streams`
    Status calls with a header block of header_bytes, without a token."""
    host, port = address.rsplit(":", 1)
    socks = []
    for _ in range(connections):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((host, int(port)))
        out = bytearray(F.PREFACE + F.frame(F.SETTINGS, 0, 0))
        for i in range(streams):
            sid = 1 + 2 * i
            block = F.hpack(F.grpc_headers(address, f"/{F.SERVICE}/Status", None,
                                           extra=[("x-fill", "h" * header_bytes)]))
            out += F.header_frames(sid, block) + F.frame(F.DATA, F.END_STREAM, sid, F.grpc_message(b""))
        s.setblocking(True)
        s.sendall(out)
        socks.append(s)
    return socks


def _answers(socks: list[socket.socket]) -> Counter:
    """What each raw connection got back (read now, briefly)."""
    codes = Counter()
    for s in socks:
        data, closed = bytearray(), False
        s.settimeout(0.5)
        try:
            while len(data) < 1 << 22:
                chunk = s.recv(1 << 20)
                if not chunk:
                    closed = True
                    break
                data += chunk
        except (socket.timeout, OSError):
            pass
        codes[F.describe_answer(bytes(data), closed)] += 1
    return codes


def _close(socks) -> None:
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            s.close()
        except OSError:
            pass


# --- the attacks: each returns (status codes, note) ------------------------------------------------------
@dataclass
class Scale:
    pushers: int = 64
    push_bytes: int = MESSAGE - 64 * 1024        # just under --max-message-bytes
    big: int = 32
    big_bytes: int = 120 * MIB
    pulls: int = 400
    pull_connections: int = 40
    pull_hold_seconds: float = 5.0
    registers: int = 10_000
    rmsprop_workers: int = 200
    header_connections: int = 50
    header_streams: int = 4
    header_bytes: int = MIB


def attack_wrong_length(ctx, scale: Scale):
    bodies = [wrong_length_push(ctx.wid, ctx.incarnation, scale.push_bytes)] * scale.pushers
    return asyncio.run(_unary_calls(ctx.address, f"/{F.SERVICE}/Push", bodies, F.TOKEN)), ""


def attack_big_unauthenticated(ctx, scale: Scale):
    bodies = [wrong_length_push(0, "", scale.big_bytes)] * scale.big
    return asyncio.run(_unary_calls(ctx.address, f"/{F.SERVICE}/Push", bodies, None)), ""


def attack_big_with_token(ctx, scale: Scale):
    bodies = [wrong_length_push(ctx.wid, ctx.incarnation, scale.big_bytes)] * scale.big
    return asyncio.run(_unary_calls(ctx.address, f"/{F.SERVICE}/Push", bodies, F.TOKEN)), ""


def attack_unread_pulls(ctx, scale: Scale):
    per = max(1, scale.pulls // scale.pull_connections)
    socks = _pull_sockets(ctx.address, ctx.wid, ctx.incarnation, ATARI, scale.pull_connections, per, F.TOKEN)
    time.sleep(scale.pull_hold_seconds)  # the replies wait in the server, unread
    held = ctx.sampler.rss() - ctx.steady_now
    _close(socks)
    return Counter({f"{scale.pull_connections * per} Pulls sent, replies unread, then RST": 1}), \
        f"{held / MIB:.0f} MiB above steady while held"


def attack_registers(ctx, scale: Scale):
    bodies = [pb.RegisterRequest(host="attacker", pid=i).SerializeToString() for i in range(scale.registers)]
    codes = Counter()
    for start in range(0, len(bodies), 1000):
        codes += asyncio.run(_unary_calls(ctx.address, f"/{F.SERVICE}/Register", bodies[start:start + 1000],
                                          F.TOKEN))
    status = F.server_answers(ctx.address)
    return codes, f"{status.get('workers_connected', len(status.get('workers', [])))} connected after"


def attack_rmsprop(ctx, scale: Scale):
    """`rmsprop_workers` workers register and push one valid gradient each (per-worker statistics)."""
    from ps.api.source import Push

    grad = np.full(ATARI.size, 1e-4, np.float32)
    codes = Counter()

    def one(_):
        c = F.client(ctx.address)
        try:
            reg = c.register("rmsprop-attacker", os.getpid())
            w = c.pull(reg.worker_id, ATARI)
            c.push(Push(reg.worker_id, w.version, grad, 1))
            return "OK"
        except Exception as err:
            return type(err).__name__ + (f" {err.code.name}" if hasattr(err, "code") else "")
        finally:
            c.close()
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(16) as pool:
        codes.update(pool.map(one, range(scale.rmsprop_workers)))
    time.sleep(3.0)  # at least one checkpoint (--checkpoint-every 2) with every worker's statistics
    ckpts = sorted((ctx.run_dir / "run" / "checkpoints").glob("*.a3c"))
    size = max((p.stat().st_size for p in ckpts), default=0)
    return codes, f"largest checkpoint {size / MIB:.0f} MiB"


def attack_headers_no_ack(ctx, scale: Scale):
    socks = _header_sockets(ctx.address, scale.header_connections, scale.header_streams, scale.header_bytes)
    time.sleep(2.0)
    codes = _answers(socks)
    _close(socks)
    return codes, f"{scale.header_connections * scale.header_streams} header blocks of {scale.header_bytes / MIB:g} MiB"


ATTACKS = {  # name: (function, extra ps-serve flags); each attack gets a fresh server
    "64 x ~16 MiB wrong-length pushes": (attack_wrong_length, ()),
    "32 x 120 MiB pushes, no token": (attack_big_unauthenticated, ()),
    "32 x 120 MiB pushes, with token": (attack_big_with_token, ()),
    "400 Pull replies never read": (attack_unread_pulls, ()),
    "10,000 Registers": (attack_registers, ()),
    "1 MiB headers, SETTINGS never acked": (attack_headers_no_ack, ()),
    "200 rmsprop workers, 0.7M layout": (attack_rmsprop, ("--optimizer", "rmsprop", "--checkpoint-every", "2")),
}


@dataclass
class Context:
    address: str
    run_dir: Path
    sampler: RssSampler
    wid: int = 0
    incarnation: str = ""
    steady_now: int = 0


def server_flags(message: int = MESSAGE, inflight: int = INFLIGHT) -> list[str]:
    return ["--max-message-bytes", str(message), "--max-inflight-bytes", str(inflight),
            "--worker-timeout", str(WORKER_TIMEOUT)]


def run_attack(name: str, fn, server: F.Server, scale: Scale, bound: int, sampler: RssSampler) -> Result:
    ctx = Context(server.address, server.run_dir, sampler)
    observer, ctx.wid = F.adopt_layout(server.address, ATARI)  # adopts the layout, or registers on it
    ctx.incarnation = observer.incarnation
    observer.close()
    steady = ctx.steady_now = sampler.steady(1.0)
    sampler.reset_peak()
    try:
        codes, note = fn(ctx, scale)
    except Exception as err:
        codes, note = Counter({f"attacker failed: {type(err).__name__}: {err}"[:80]: 1}), ""
    time.sleep(0.5)
    peak = max(sampler.peak, sampler.rss())
    time.sleep(SETTLE_SECONDS)
    after = sampler.rss()
    alive = server.alive()
    try:
        F.legit_worker_flow(server.address, ATARI)
        worker_ok = True
    except Exception as err:
        worker_ok, note = False, (note + f"; worker failed: {type(err).__name__}: {err}")[:200]
    return Result(name, steady, peak, after, bound, codes, worker_ok, alive, note)


def run(names, scale: Scale, workdir: Path, message: int = MESSAGE, inflight: int = INFLIGHT) -> list[Result]:
    """Each attack against a fresh server (so one attack's heap does not hide the next one's growth)."""
    results = []
    for i, name in enumerate(names):
        fn, extra = ATTACKS[name]
        server = F.start_ps(workdir / f"attack-{i}", *server_flags(message, inflight), *extra)
        sampler = RssSampler(server.pid)
        try:
            results.append(run_attack(name, fn, server, scale, inflight, sampler))
        finally:
            sampler.stop()
            server.close()
    return results


def print_results(results: list[Result], title: str) -> None:
    mib = lambda b: f"{b / MIB:,.0f}"  # noqa: E731
    rows = [[r.name, mib(r.steady), mib(r.peak), mib(r.growth), mib(r.bound),
             ("yes" if r.within else "NO") + f" (+{MARGIN // MIB})", mib(r.after) + ("" if r.back else " held"),
             ("ok" if r.worker_ok else "FAILED") + ("" if r.alive else ", server DEAD")] for r in results]
    print_table(title, ["attack", "steady MiB", "peak MiB", "peak-steady", "bound", "within bound+margin",
                        f"RSS {SETTLE_SECONDS:.0f} s after", "worker after"], rows)
    print_table("What the attackers got", ["attack", "status codes (or the server's answer on raw sockets)", "note"],
                [[r.name, "; ".join(f"{k} x{v:,}" for k, v in r.codes.most_common()), r.note] for r in results])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only the attacks whose name contains this")
    args = parser.parse_args()
    names = [n for n in ATTACKS if args.only in n]
    with tempfile.TemporaryDirectory(prefix="bench-attacks-") as tmp:
        results = run(names, Scale(), Path(tmp))
    print_results(results, f"Server RSS under attack: --max-message-bytes {MESSAGE // MIB} MiB, --max-inflight-bytes "
                           f"{INFLIGHT // MIB} MiB (8 requests of 2 x 16 MiB), margin {MARGIN // MIB} MiB, "
                           f"--worker-timeout {WORKER_TIMEOUT:g} s; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
