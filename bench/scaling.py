"""How the cluster scales with workers on this machine, and how many workers one server could feed.

    python -m bench.scaling                      # both parts
    python -m bench.scaling --workers 1 2 4 8 --seconds 8
    python -m bench.scaling --simulate-only --worker-rate 10

Part 1, real workers: ps-serve --local-workers N (CartPole-v1, the default run spec) for N = 1, 2, 4,
8; env steps/s and staleness p50/p99 over the steady part of each run, read from pushes.csv.

Part 2, simulated workers (no env, no torch): N pushers each push a synthetic Atari-size gradient
(~0.7M float32) at a set rate (--worker-rate, pushes/s of one real worker) to a real ps-serve. The
offered rate N x rate is raised until the server's applied rate falls below 90% of it: the last
N that kept up is how many such workers one server can feed on this machine (the pushers share
its 2 cores, so this is a lower bound for a server on its own host).
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import signal
import tempfile
import threading
import time
from pathlib import Path

from .cartpole import steady_rate
from .common import (bin_path, console, fmt, launch, percentile, print_table, start_and_collect, stop_process,
                     wait_for_file)
from .server import SIZES

KEEP_UP = 0.9


def pushes_window(pushes_csv: Path, skip_seconds: float) -> list[dict]:
    """pushes.csv rows after the first skip_seconds of pushing."""
    with open(pushes_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    time_key = next(iter(rows[0]))
    t0 = min(float(r[time_key]) for r in rows) + skip_seconds
    return [r for r in rows if float(r[time_key]) >= t0]


def run_workers(n: int, seconds: float, tmp: Path, extra: list[str]) -> dict:
    run_dir = tmp / f"workers-{n}"
    run_dir.mkdir(parents=True)
    launched = launch([bin_path("ps-serve"), "--port", "0", "--run-dir", str(run_dir), "--seed", "1",
                       "--local-workers", str(n), "--target-return", "none", "--total-steps", "100000000",
                       "--progress-seconds", "3600", *extra], run_dir / "log.txt")
    try:
        wait_for_file(run_dir / "port", launched.proc)
        pushes = run_dir / "pushes.csv"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not pushes.exists() or pushes.stat().st_size < 200):
            time.sleep(0.1)  # workers importing and registering
        time.sleep(seconds + 1.0)
        launched.proc.send_signal(signal.SIGTERM)  # ps-serve stops the run cleanly and writes its files
        launched.proc.wait(timeout=60)
    finally:
        stop_process(launched.proc)
    rows = pushes_window(pushes, 1.0)
    st = [int(r["staleness"]) for r in rows]
    return {"workers": n, "steps_per_second": steady_rate(pushes, 1.0), "pushes": len(rows),
            "staleness_p50": percentile(st, 50), "staleness_p99": percentile(st, 99)}


# --- simulated workers ------------------------------------------------------------------------------
def sim_process(address: str, size: int, threads: int, rate: float, barrier, seconds: float, out) -> None:
    """`threads` simulated workers, each with its own channel, pushing at `rate` per second."""
    try:
        import numpy as np

        from ps.api.layout import Layout
        from ps.api.source import Push
        from ps.api.malloc_tuning import keep_freed_buffers
        from worker.client import ClientConfig, PSClient
        keep_freed_buffers()  # as worker-run does
        layout = Layout.from_pairs([("theta", (size,))])
        gradients = np.random.default_rng().standard_normal(size).astype(np.float32) * 1e-3
        payload = gradients.tobytes()
        workers = []
        for _ in range(threads):
            client = PSClient(ClientConfig(address=address))
            reg = client.register("sim", 0)
            version = client.pull(reg.worker_id, layout, payload).version  # the first offer is adopted
            workers.append((client, reg.worker_id, version))
        done, lock = [], threading.Lock()

        def run(client, worker_id, version, start):
            period, n, lat = 1.0 / rate, 0, []
            end = start + seconds
            while (due := start + n * period) < end:
                if (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
                t = time.perf_counter()
                version = client.push(Push(worker_id, version, gradients, 20)).version
                lat.append(time.perf_counter() - t)
                n += 1
            with lock:  # a server that cannot keep up stretches the schedule: time it to the last reply
                done.append((lat[1:], time.perf_counter() - start))
        barrier.wait(timeout=300)
        start = time.perf_counter() + np.random.default_rng().random() / rate  # spread the phases
        ts = [threading.Thread(target=run, args=(*w, start)) for w in workers]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        out.put(done)
    except Exception as err:
        out.put(f"simulated worker failed: {type(err).__name__}: {err}")


def run_simulated(n: int, rate: float, seconds: float, size: int, tmp: Path, procs: int) -> dict:
    run_dir = tmp / f"sim-{n}"
    run_dir.mkdir(parents=True)
    launched = launch([bin_path("ps-serve"), "--port", "0", "--run-dir", str(run_dir), "--target-return", "none",
                       "--total-steps", "1000000000", "--progress-seconds", "3600", "--log-level", "WARNING"],
                      run_dir / "log.txt")
    try:
        address = f"127.0.0.1:{wait_for_file(run_dir / 'port', launched.proc)}"
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        nproc = min(n, procs)
        split = [n // nproc + (i < n % nproc) for i in range(nproc)]
        barrier = ctx.Barrier(nproc + 1)
        ps = [ctx.Process(target=sim_process, args=(address, size, k, rate, barrier, seconds, out)) for k in split]
        results = start_and_collect(ps, out, barrier, 300 + seconds, "a simulated worker")
    finally:
        stop_process(launched.proc)
    per_worker = [w for r in results for w in r]
    lat = [x for w, _ in per_worker for x in w]
    rows = pushes_window(run_dir / "pushes.csv", 0.5)
    st = [int(r["staleness"]) for r in rows]
    achieved = (len(lat) + len(per_worker)) / max(elapsed for _, elapsed in per_worker)
    return {"workers": n, "offered": n * rate, "achieved": achieved, "p50_ms": percentile(lat, 50) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3, "staleness_p50": percentile(st, 50),
            "staleness_p99": percentile(st, 99)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per setting")
    p.add_argument("--ours-args", default="", help="extra ps-serve flags for part 1, e.g. '--envs 16'")
    p.add_argument("--simulate-only", action="store_true")
    p.add_argument("--real-only", action="store_true")
    p.add_argument("--worker-rate", type=float, default=10.0,
                   help="pushes/s of one simulated worker (a real Atari worker's rate on one core)")
    p.add_argument("--sim-workers", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--sim-processes", type=int, default=4, help="processes the simulated workers are spread over")
    p.add_argument("--sim-seconds", type=float, default=4.0)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.simulate_only:
            rows, base = [], None
            for n in args.workers:
                r = run_workers(n, args.seconds, tmp, args.ours_args.split())
                base = base or r["steps_per_second"]
                console.print(f"{n} workers: {fmt(r['steps_per_second'], thousands=True)} env steps/s")
                rows.append([n, fmt(r["steps_per_second"], thousands=True),
                             f"{r['steps_per_second'] / base:.2f}x" if base and r["steps_per_second"] else "-",
                             r["staleness_p50"], r["staleness_p99"], r["pushes"]])
            print_table("Real workers on this machine (CartPole-v1, ps-serve defaults)",
                        ["workers", "env steps/s", "vs 1 worker", "staleness p50", "staleness p99", "pushes"], rows,
                        f"{args.seconds:.0f} s per setting after 1 s warm-up; all processes share this host's cores")
        if not args.real_only:
            rows, feeds = [], 0
            for n in args.sim_workers:
                r = run_simulated(n, args.worker_rate, args.sim_seconds, SIZES["atari"], tmp, args.sim_processes)
                kept = r["achieved"] >= KEEP_UP * r["offered"]
                feeds = n if kept else feeds
                console.print(f"{n} simulated workers: offered {r['offered']:.0f}/s, achieved {r['achieved']:.0f}/s")
                rows.append([n, f"{r['offered']:.0f}", f"{r['achieved']:.0f}", f"{r['achieved'] / r['offered']:.2f}",
                             fmt(r["p50_ms"], 1), fmt(r["p99_ms"], 1), r["staleness_p50"], r["staleness_p99"]])
                if not kept:
                    break
            print_table(f"Simulated Atari-size workers ({SIZES['atari']:,} float32) at {args.worker_rate:g} pushes/s each",
                        ["workers", "offered/s", "applied/s", "kept up", "p50 ms", "p99 ms", "staleness p50",
                         "staleness p99"], rows,
                        f"kept up = applied / offered; saturated below {KEEP_UP}; latency without each worker's first push")
            console.print(f"one server fed {feeds} simulated workers at {args.worker_rate:g} pushes/s each "
                          f"({feeds * args.worker_rate:.0f} pushes/s) before saturating, on this shared 2-core host")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
