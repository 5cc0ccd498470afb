"""Load test: 64 concurrent clients pushing valid gradients to one ps-serve on loopback.

    python -m bench.load                      # CartPole-size and a 0.7M-parameter model, 30 s each
    python -m bench.load --seconds 10 --clients 16

For each model size a fresh server is started; first ONE client pushes alone (the baseline, measured
in the same run), then all clients at once. Each client registers, pulls, and pushes a small valid
gradient in a loop with the version it last received, exactly like a worker minus the environment.
Reported: pushes/s, p50/p99 push latency (client side, round trip incl. the fresh parameters),
errors (must be 0), and the server's peak resident memory (the kernel's VmHWM for its pid).
Clients run as threads spread over a few processes (gRPC releases the GIL during a call).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

SEVEN_TENTHS_M = [("fc1.weight", (1000, 697)), ("fc1.bias", (1000,)), ("out.weight", (2, 1000)), ("out.bias", (2,))]


def cartpole_layout():
    """The layout our default CartPole worker builds (so 'CartPole-size' is the real thing)."""
    from ps.api.spec import RunSpec
    from worker.agents import make_agent
    from worker.envs import EnvBatch
    spec = RunSpec()
    envs = EnvBatch(spec.env_id, 1, 0)
    layout = make_agent(spec, envs, 0).flat.layout
    envs.close()
    return [(e.name, e.shape) for e in layout.entries]


def start_server(run_dir: Path) -> tuple[subprocess.Popen, int]:
    cmd = [str(Path(sys.executable).parent / "ps-serve"), "--port", "0", "--run-dir", str(run_dir),
           "--target-return", "none", "--total-steps", str(10**15), "--checkpoint-every", "0",
           "--progress-seconds", "3600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = run_dir / "port"
    for _ in range(600):
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text())
        if proc.poll() is not None:
            raise SystemExit(f"ps-serve exited {proc.returncode}")
        time.sleep(0.1)
    raise SystemExit("ps-serve did not start")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _client_process(address, pairs, threads, start_at, seconds, out) -> None:
    """One process running `threads` clients; puts (latencies_seconds, errors) on `out`."""
    import threading

    import grpc

    from ps.api.convert import layout_to_proto
    from ps.api.v1 import parameter_server_pb2 as pb
    from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
    from ps.api.layout import Layout
    layout = Layout.from_pairs(pairs)
    grad = np.full(layout.size, 1e-4, np.float32).tobytes()
    results = []

    def client() -> None:
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.use_local_subchannel_pool", 1)]  # one connection per client, like separate workers
        latencies, errors = [], 0
        with grpc.insecure_channel(address, options=options) as ch:
            stub = pb_grpc.ParameterServerStub(ch)
            reg = stub.Register(pb.RegisterRequest(host="load", pid=os.getpid()), timeout=30)
            reply = stub.Pull(pb.PullRequest(worker_id=reg.worker_id, layout=layout_to_proto(layout),
                                             incarnation=reg.incarnation,
                                             initial_params=pb.Tensor(data=bytes(len(grad)), dtype="float32")),
                              timeout=30)
            version = reply.version
            time.sleep(max(0.0, start_at - time.time()))
            end = time.time() + seconds
            while time.time() < end:
                t0 = time.perf_counter()
                try:
                    r = stub.Push(pb.PushRequest(worker_id=reg.worker_id, base_version=version, env_steps=5,
                                                 incarnation=reg.incarnation, gradients=pb.Tensor(
                                                     data=grad, shape=[layout.size], dtype="float32")), timeout=30)
                    version = r.version
                    latencies.append(time.perf_counter() - t0)
                except grpc.RpcError:
                    errors += 1
        results.append((latencies, errors))

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(([x for lat, _ in results for x in lat], sum(e for _, e in results)))


def measure(address: str, pairs, clients: int, seconds: float, processes: int) -> dict:
    ctx = mp.get_context("spawn")  # never fork a process that may hold gRPC state
    out = ctx.Queue()
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    per = [n for n in per if n]
    start_at = time.time() + 3.0 + 0.5 * len(per)  # all clients registered and pulled by then
    procs = [ctx.Process(target=_client_process, args=(address, pairs, n, start_at, seconds, out)) for n in per]
    for p in procs:
        p.start()
    parts = [out.get() for _ in procs]
    for p in procs:
        p.join()
    lat = np.array([x for part, _ in parts for x in part])
    return {"clients": clients, "pushes": lat.size, "pushes_per_s": lat.size / seconds,
            "p50_ms": 1e3 * float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p99_ms": 1e3 * float(np.percentile(lat, 99)) if lat.size else float("nan"),
            "errors": sum(e for _, e in parts)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=30.0, help="length of each loaded measurement (default 30)")
    p.add_argument("--baseline-seconds", type=float, default=10.0, help="length of each 1-client baseline (default 10)")
    p.add_argument("--processes", type=int, default=4, help="client processes the clients are spread over (default 4)")
    args = p.parse_args(argv)
    models = [("CartPole MLP", cartpole_layout()), ("0.7M MLP", SEVEN_TENTHS_M)]
    rows = []
    for name, pairs in models:
        size = sum(int(np.prod(s)) for _, s in pairs)
        with tempfile.TemporaryDirectory() as tmp:
            server, port = start_server(Path(tmp))
            address = f"127.0.0.1:{port}"
            try:
                base = measure(address, pairs, 1, args.baseline_seconds, 1)
                load = measure(address, pairs, args.clients, args.seconds, args.processes)
                rss = peak_rss_mib(server.pid)
            finally:
                server.terminate()
                server.wait(timeout=60)
        rows.append((name, size, base, load, rss))

    table = Table(title=f"bench.load: {args.clients} clients x {args.seconds:g} s against one ps-serve on loopback "
                        f"(baseline: 1 client x {args.baseline_seconds:g} s, same server)")
    for col in ("model", "params", "clients", "pushes/s", "x baseline", "p50 ms", "p99 ms", "p50 x baseline",
                "errors", "server peak RSS MiB"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, size, base, load, rss in rows:
        for r, is_base in ((base, True), (load, False)):
            table.add_row(name, f"{size:,}", str(r["clients"]), f"{r['pushes_per_s']:,.0f}",
                          "1.00" if is_base else f"{r['pushes_per_s'] / base['pushes_per_s']:.2f}",
                          f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                          "1.00" if is_base else f"{r['p50_ms'] / base['p50_ms']:.1f}",
                          str(r["errors"]), "" if is_base else f"{rss:,.0f}")
    Console(width=160).print(table)
    errors = sum(r["errors"] for *_, base, load, _ in rows for r in (base, load))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
