"""The parameter server's push rate against the transport's limit: a bare gRPC echo, same bytes.

    python -m bench.server                     # 1, 2, 4, 8 pushers at CartPole and Atari sizes
    python -m bench.server --pushers 8 --sizes atari --seconds 3

A real `ps-serve` process (no workers) is pushed by N pusher processes, each a real PSClient that
registers, pulls and then pushes synthetic float32 gradients as fast as the replies come back
(each reply carries the full parameters, as in training). Beside it, in the same run, a bare gRPC
echo server (one generic unary method: bytes in, the same bytes back) is called by N processes
with the same payload, so `ratio` = PS pushes/s / echo calls/s says how close the server's decode,
shared-RMSProp apply and reply come to what gRPC alone can move on this machine.
MB/s counts payload both ways (gradient in + parameters out).

A third row per cell sends the same echo over one bidirectional stream per pusher (one message in
flight): what a streaming push could save over one unary call per update, at each size.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import psutil

from .common import (bin_path, console, fmt, launch, median, percentile, print_table, start_and_collect,
                     stop_process, wait_for_file)

SIZES = {"cartpole": 9_155, "atari": 700_000}   # float32 elements: our CartPole MLP; the paper's Atari net ~0.7M
ECHO_METHOD = "/bench.Echo/Echo"
ECHO_STREAM_METHOD = "/bench.Echo/EchoStream"  # the same echo over one bidirectional stream per caller
KINDS = {"ps": "ps-serve push", "echo": "bare gRPC echo", "echo-stream": "echo, bidi stream"}
MAX_MESSAGE = 64 * 1024 * 1024


# --- the bare echo server (its own process) -----------------------------------------------------------
def echo_server_main(port_file: str, threads: int, reply_bytes: int) -> None:
    from concurrent import futures

    import grpc

    from ps.api.malloc_tuning import keep_freed_buffers
    keep_freed_buffers()  # the same process set-up as ps-serve and worker-run: only the service differs
    reply = bytes(reply_bytes)  # when the reply differs in size from the request (float16 pushes)
    def echo(request, context):
        return reply if reply_bytes else request

    def echo_stream(requests, context):
        for request in requests:
            yield echo(request, context)

    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "EchoStream": grpc.stream_stream_rpc_method_handler(echo_stream)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads),
                         options=[("grpc.max_send_message_length", MAX_MESSAGE),
                                  ("grpc.max_receive_message_length", MAX_MESSAGE)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    Path(port_file).write_text(str(port))
    server.wait_for_termination()


# --- pushers (each its own process: the bench's GIL must not be the bottleneck) ---------------------
def pusher_main(kind: str, address: str, size: int, barrier, seconds: float, offer: bool, out,
                wire_dtype: str = "float32") -> None:
    try:
        out.put(_push_for(kind, address, size, barrier, seconds, offer, wire_dtype))
    except Exception as err:  # tell the parent at once instead of leaving it waiting
        out.put(f"{kind} pusher failed: {type(err).__name__}: {err}")


def _push_for(kind: str, address: str, size: int, barrier, seconds: float, offer: bool,
              wire_dtype: str) -> list[float]:
    import numpy as np

    from ps.api.malloc_tuning import keep_freed_buffers
    keep_freed_buffers()  # as worker-run does
    rng = np.random.default_rng()
    grads = rng.standard_normal(size).astype(np.float32) * 1e-3
    wire = grads.astype(wire_dtype)  # what goes up: the gradient in the wire dtype
    payload = wire.tobytes()
    latencies: list[float] = []
    if kind == "echo":
        call = _echo_channel(address).unary_unary(ECHO_METHOD)
        send = lambda: call(payload, timeout=30)  # noqa: E731
    elif kind == "echo-stream":
        send = _stream_sender(address, payload)
    else:
        from ps.api.layout import Layout
        from ps.api.source import Push
        from worker.client import ClientConfig, PSClient
        client = PSClient(ClientConfig(address=address))
        reg = client.register("bench", 0)
        layout = Layout.from_pairs([("theta", (size,))])
        deadline = time.monotonic() + 60
        while True:  # the first pusher offers the layout; the others wait until it is adopted
            try:
                version = client.pull(reg.worker_id, layout, grads.tobytes() if offer else b"").version
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        def send():  # as worker/loop.py pushes: the gradient array framed straight onto the wire
            nonlocal version
            version = client.push(Push(reg.worker_id, version, wire, 0, wire_dtype)).version
    for _ in range(3):  # warm-up: connections, first-call costs
        send()
    barrier.wait(timeout=300)  # every pusher (and the parent) is ready: go together
    cpu_start = time.process_time()  # this process's CPU, gRPC's threads included
    end = time.perf_counter() + seconds
    while (t := time.perf_counter()) < end:
        send()
        if (done := time.perf_counter()) <= end:  # count only calls completed inside the window
            latencies.append(done - t)
    return latencies, time.process_time() - cpu_start


def _echo_channel(address: str):
    import grpc
    return grpc.insecure_channel(address, options=[("grpc.max_send_message_length", MAX_MESSAGE),
                                                   ("grpc.max_receive_message_length", MAX_MESSAGE)])


def _stream_sender(address: str, payload: bytes):
    """send() for one bidirectional stream: put a message in, wait for its echo (one in flight, as a
    worker pushing over a stream would have)."""
    import queue

    outbox = queue.SimpleQueue()
    replies = _echo_channel(address).stream_stream(ECHO_STREAM_METHOD)(iter(outbox.get, None))

    def send():
        outbox.put(payload)
        return next(replies)
    return send


def run_pushers(kind: str, address: str, size: int, count: int, seconds: float, offer: bool,
                server_pid: int, wire_dtype: str = "float32") -> dict:
    ctx = mp.get_context("spawn")  # never fork a process that may hold gRPC state
    out = ctx.Queue()
    barrier = ctx.Barrier(count + 1)  # pushers start measuring together, once all have warmed up
    procs = [ctx.Process(target=pusher_main,
                         args=(kind, address, size, barrier, seconds, offer and i == 0, out, wire_dtype))
             for i in range(count)]
    server = psutil.Process(server_pid)
    cpu = {}
    results = start_and_collect(procs, out, barrier, 120 + seconds, "a pusher",
                                on_start=lambda: cpu.setdefault("start", _cpu_seconds(server)))
    server_cpu = _cpu_seconds(server) - cpu["start"]  # a little past the window: pushers stop at its end
    lat = [x for r in results for x in r[0]]
    rate = len(lat) / seconds
    up = size * (2 if wire_dtype == "float16" else 4)
    return {"calls_per_second": rate, "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
            "mb_per_second": rate * (up + size * 4) / 1e6, "calls": len(lat),
            "server_cpu_ms": server_cpu / len(lat) * 1e3, "client_cpu_ms": sum(r[1] for r in results) / len(lat) * 1e3}


def _cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# --- the two servers under test -----------------------------------------------------------------------
class PSProcess:
    def __init__(self, tmp: Path, tag: str) -> None:
        run_dir = tmp / f"ps-{tag}"
        run_dir.mkdir(parents=True)
        self.launched = launch([bin_path("ps-serve"), "--port", "0", "--run-dir", str(run_dir),
                                "--target-return", "none", "--total-steps", "1000000000",
                                "--progress-seconds", "3600", "--log-level", "WARNING"], run_dir / "log.txt")
        self.address = f"127.0.0.1:{wait_for_file(run_dir / 'port', self.launched.proc)}"
        self.pid = self.launched.proc.pid

    def close(self) -> None:
        stop_process(self.launched.proc)


class EchoProcess:
    def __init__(self, tmp: Path, tag: str, threads: int = 16, reply_bytes: int = 0) -> None:
        port_file = tmp / f"echo-{tag}.port"
        ctx = mp.get_context("spawn")
        self.proc = ctx.Process(target=echo_server_main, args=(str(port_file), threads, reply_bytes), daemon=True)
        self.proc.start()
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError("echo server did not start")
            time.sleep(0.02)
        self.address = f"127.0.0.1:{port_file.read_text()}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.join()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pushers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    p.add_argument("--repeats", type=int, default=2,
                   help="alternate PS/echo this many times per cell; medians (run to run, the Atari-size ratio "
                        "moves by about +-0.02)")
    p.add_argument("--wire-dtype", default="float32", choices=["float32", "float16"],
                   help="dtype of the pushed gradients (the reply's parameters stay float32); the echo moves "
                        "the same bytes each way")
    args = p.parse_args(argv)
    rows, atari8 = [], None
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp_name:
        tmp = Path(tmp_name)
        for size_name in args.sizes:
            size = SIZES[size_name]
            for n in args.pushers:
                cells = {kind: [] for kind in KINDS}
                for rep in range(args.repeats):  # a fresh server per cell: layouts and queues start clean
                    for kind in KINDS:
                        tag = f"{kind}-{size_name}-{n}-{rep}"
                        half = args.wire_dtype == "float16"
                        server = PSProcess(tmp, tag) if kind == "ps" else EchoProcess(
                            tmp, tag, reply_bytes=size * 4 if half else 0)
                        try:
                            cells[kind].append(run_pushers(kind, server.address, size, n, args.seconds, True,
                                                           server.pid, args.wire_dtype))
                        finally:
                            server.close()
                res = {k: {m: median(c[m] for c in v) for m in v[0]} for k, v in cells.items()}
                ratio = res["ps"]["calls_per_second"] / res["echo"]["calls_per_second"]
                if size_name == "atari" and n == 8:
                    atari8 = ratio
                for kind in KINDS:
                    r = res[kind]
                    rows.append([f"{size_name} ({size * 4 / 1e6:.2f} MB)" if kind == "ps" else "", n, KINDS[kind],
                                 fmt(r["calls_per_second"], thousands=True), fmt(r["p50_ms"], 2),
                                 fmt(r["p99_ms"], 2), fmt(r["mb_per_second"], 0), fmt(r["server_cpu_ms"], 2),
                                 fmt(r["client_cpu_ms"], 2), f"{ratio:.2f}x" if kind == "ps" else ""])
                console.print(f"{size_name} x{n}: ps {res['ps']['calls_per_second']:,.0f}/s, "
                              f"echo {res['echo']['calls_per_second']:,.0f}/s, ratio {ratio:.2f}; "
                              f"echo over a stream {res['echo-stream']['calls_per_second']:,.0f}/s")
    print_table(f"Parameter server pushes vs bare gRPC echo (same payload, same run; gradients {args.wire_dtype})",
                ["payload", "pushers", "server", "calls/s", "p50 ms", "p99 ms", "MB/s", "server CPU ms/call",
                 "pushers' CPU ms/call", "ps/echo"], rows,
                "each push: gradient in, full parameters back; echo: the same bytes in and back. CPU: user + "
                "system seconds per call over the window (both cores: the server and pushers share them)")
    if atari8 is not None:
        console.print(f"target 3 (Atari size, 8 pushers, ps/echo >= 0.7): {atari8:.2f}x -> "
                      + ("[green]met[/green]" if atari8 >= 0.7 else "[red]not met[/red]"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
