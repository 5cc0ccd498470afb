"""Gorila's sharded parameter server: Atari-size push capacity for 1, 2 and 4 shards.

    python -m bench.shards                         # 1, 2, 4 shards; 8 simulated workers in 4 processes
    python -m bench.shards --shards 1 2 --pushers 8 --seconds 6
    python -m bench.shards --learning --seeds 1 2 3   # CartPole to 475: one server against 2 shards

`ps-serve --shards N` (every shard on this host, no local workers) is pushed by simulated workers:
no env and no torch, each a real worker's client (worker/sharded.py over gRPC: it registers with every
shard, pushes each its slice of a synthetic ~0.7M float32 gradient at once, and assembles the
replies). Per N, two loads: saturated (each pushes as fast as the replies come back: the pushes
applied per second on this host, where the pushers share the cores with the shards, so it is a floor)
and paced (--rate pushes/s in all, no core saturated: each shard's server CPU per push, its process's
CPU seconds over the window / the pushes it applied). The capacity a host with a core per shard would
have is 1 / the busiest shard's paced CPU per push. The per-call floor (the paced load with
CartPole-size pushes to one server) is what every shard pays per push whatever its slice; the CPU above
it is the part that sharding splits 1/N.

--learning: real workers instead (ps-serve --local-workers 2, CartPole-v1 to 475, per seed), one
server against --shards 2: env steps and seconds to the target, which sharding should not change
beyond the noise between seeds (the math is the same; only the order pushes land in differs).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import psutil

from .common import (bin_path, console, fmt, launch, median, print_table, start_and_collect, stop_process,
                     wait_for_file)
from .server import SIZES

HOST_CORES = 16  # the projection's host


def pusher_process(address: str, size: int, threads: int, barrier, seconds: float, out,
                   interval: float = 0.0) -> None:
    """`threads` simulated workers, each a ShardedSource with its own channels, pushing back to back, or
    each once every `interval` seconds (paced: the cores are not saturated)."""
    try:
        import threading

        import numpy as np

        from ps.api.layout import Layout
        from ps.api.malloc_tuning import keep_freed_buffers
        from ps.api.source import Push
        from worker.client import ClientConfig, PSClient
        from worker.sharded import ShardedSource
        keep_freed_buffers()
        layout = Layout.from_pairs([("theta", (size,))])
        gradient = (np.random.default_rng().standard_normal(size).astype(np.float32) * 1e-3).tobytes()
        workers = []
        for _ in range(threads):
            source = ShardedSource(PSClient(ClientConfig(address=address)),
                                   lambda a: PSClient(ClientConfig(address=a)))
            reg = source.register("sim", 0)
            version = source.pull(reg.worker_id, layout, gradient).version  # the first offer is adopted
            workers.append((source, reg.worker_id, version))
        counts, lock = [], threading.Lock()

        def run(source, worker_id, version, end, offset):
            n, due = 0, time.perf_counter() + offset
            while time.perf_counter() < end:
                if interval:
                    time.sleep(max(0.0, due - time.perf_counter()))
                    due += interval
                version = source.push(Push(worker_id, version, gradient, 20)).version
                n += 1
            with lock:
                counts.append(n)
        barrier.wait(timeout=300)
        end = time.perf_counter() + seconds
        ts = [threading.Thread(target=run, args=(*w, end, interval * i / len(workers)))
              for i, w in enumerate(workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for source, _, _ in workers:
            source.close()
        out.put(sum(counts))
    except Exception as err:  # noqa: BLE001 - reported by start_and_collect
        out.put(f"simulated worker failed: {type(err).__name__}: {err}")


def shard_pids(root: Path, count: int, launcher_pid: int) -> list[int]:
    """Each shard's process: shard 0 is the launcher itself, the others name theirs in their run dir's lock."""
    return [launcher_pid] + [int((root / f"shard-{i}" / ".lock").read_text().split()[1]) for i in range(1, count)]


def updates(root: Path, count: int) -> list[int]:
    """Pushes applied so far by each shard (its pushes.csv rows; flushed about every second)."""
    return [max(0, (root / f"shard-{i}" / "pushes.csv").read_text().count("\n") - 1)
            if (root / f"shard-{i}" / "pushes.csv").exists() else 0 for i in range(count)]


def measure(count: int, pushers: int, processes: int, seconds: float, size: int, tmp: Path,
            rate: float = 0.0) -> dict:
    """One setting: saturated (rate 0: every simulated worker pushes back to back) or paced at `rate`
    pushes/s in all."""
    root = tmp / f"shards-{count}-{size}-{rate:g}"
    cmd = [bin_path("ps-serve"), "--port", "0", "--run-dir", str(root), "--target-return", "none",
           "--total-steps", "1000000000", "--progress-seconds", "3600", "--log-level", "WARNING",
           "--checkpoint-every", "0", *(["--shards", str(count)] if count > 1 else [])]
    launched = launch(cmd, tmp / f"{root.name}.log")
    try:
        port_file = root / ("shard-0" if count > 1 else "") / "port"
        address = f"127.0.0.1:{wait_for_file(port_file, launched.proc, timeout=180)}"
        procs = [psutil.Process(pid) for pid in shard_pids(root, count, launched.proc.pid)]
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        nproc = min(pushers, processes)
        split = [pushers // nproc + (i < pushers % nproc) for i in range(nproc)]
        barrier = ctx.Barrier(nproc + 1)
        interval = pushers / rate if rate else 0.0  # each simulated worker's period
        ps = [ctx.Process(target=pusher_process, args=(address, size, k, barrier, seconds, out, interval))
              for k in split]
        start = {}

        def on_start():
            start["cpu"] = [_cpu(p) for p in procs]
            start["t"] = time.perf_counter()
        results = start_and_collect(ps, out, barrier, 300 + seconds, "a simulated worker", on_start=on_start)
        wall = time.perf_counter() - start["t"]
        cpu = [_cpu(p) - c for p, c in zip(procs, start["cpu"])]
    finally:
        stop_process(launched.proc, timeout=120)
    pushes = sum(results)
    per_shard_ms = [c / max(pushes, 1) * 1e3 for c in cpu]
    summary = json.loads((root / "summary.json").read_text()) if (root / "summary.json").exists() else {}
    return {"shards": count, "pushes_per_second": pushes / wall, "cpu_ms": per_shard_ms,
            "projected": 1e3 / max(per_shard_ms) if max(per_shard_ms) > 0 else float("nan"),
            "updates": [s["updates"] for s in summary.get("shards", [])] or [summary.get("updates")]}


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def learn(seed: int, count: int, tmp: Path, timeout: float = 600.0) -> dict:
    """One CartPole run to 475 with 2 local workers: its summary's steps and seconds to the target."""
    root = tmp / f"learn-{count}-{seed}"
    cmd = [bin_path("ps-serve"), "--env", "CartPole-v1", "--port", "0", "--run-dir", str(root), "--seed", str(seed),
           "--local-workers", "2", "--target-return", "475", "--progress-seconds", "3600",
           *(["--shards", str(count)] if count > 1 else [])]
    launched = launch(cmd, tmp / f"learn-{count}-{seed}.log")
    try:
        launched.proc.wait(timeout=timeout)
    except Exception:  # noqa: BLE001 - an unfinished run counts as not solved
        pass
    finally:
        stop_process(launched.proc, timeout=120)
    summary = json.loads((root / "summary.json").read_text()) if (root / "summary.json").exists() else {}
    return {"solved": bool(summary.get("solved")), "steps": summary.get("steps_to_target"),
            "seconds": summary.get("time_to_target_seconds")}


def learning(seeds: list[int], tmp: Path) -> None:
    rows, by_count = [], {1: [], 2: []}
    for seed in seeds:
        for count in (1, 2):
            r = learn(seed, count, tmp)
            by_count[count].append(r)
            console.print(f"seed {seed}, {count} shard(s): {'solved' if r['solved'] else 'not solved'} at "
                          f"{r['steps']} steps, {r['seconds']} s")
            rows.append([seed, count, "yes" if r["solved"] else "no", fmt(r["steps"], 0, thousands=True),
                         fmt(r["seconds"], 1)])
    for count, results in by_count.items():
        rows.append(["median", count, f"{sum(r['solved'] for r in results)}/{len(results)}",
                     fmt(median([r["steps"] for r in results]), 0, thousands=True),
                     fmt(median([r["seconds"] for r in results]), 1)])
    print_table("CartPole-v1 to 475, 2 local workers: one server against 2 shards",
                ["seed", "shards", "solved", "env steps to 475", "seconds to 475"], rows,
                "seconds from the server's start; an unsolved run counts as infinite in the median")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.shards", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--pushers", type=int, default=8, help="simulated workers pushing back to back")
    p.add_argument("--processes", type=int, default=4, help="processes the simulated workers are spread over")
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per setting")
    p.add_argument("--rate", type=float, default=40.0,
                   help="pushes/s in all for the CPU per push (paced, below what saturates a core)")
    p.add_argument("--learning", action="store_true", help="CartPole to 475, one server against 2 shards")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = p.parse_args(argv)
    if args.learning:
        with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp_name:
            learning(args.seeds, Path(tmp_name))
        return 0
    size = SIZES["atari"]
    rows, base, points = [], None, []
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp_name:
        tmp = Path(tmp_name)
        floor = max(measure(1, args.pushers, args.processes, args.seconds, SIZES["cartpole"], tmp, args.rate)["cpu_ms"])
        console.print(f"per-call floor: {floor:.2f} ms CPU per push of {SIZES['cartpole']:,} floats")
        for count in args.shards:
            full = measure(count, args.pushers, args.processes, args.seconds, size, tmp)
            paced = measure(count, args.pushers, args.processes, args.seconds, size, tmp, args.rate)
            base = base or (full, paced)
            points.append((count, max(paced["cpu_ms"])))
            console.print(f"{count} shard(s): {full['pushes_per_second']:.0f} pushes/s saturated; at "
                          f"{paced['pushes_per_second']:.0f}/s CPU per push per shard "
                          f"{', '.join(f'{c:.2f}' for c in paced['cpu_ms'])} ms")
            above, base_above = max(paced["cpu_ms"]) - floor, max(base[1]["cpu_ms"]) - floor
            rows.append([count, fmt(full["pushes_per_second"], 0),
                         f"{full['pushes_per_second'] / base[0]['pushes_per_second']:.2f}x",
                         " / ".join(f"{c:.2f}" for c in paced["cpu_ms"]),
                         f"{max(paced['cpu_ms']) / max(base[1]['cpu_ms']):.2f}",
                         f"{above:.2f} ({above / base_above:.2f})" if base_above > 0 else "-",
                         fmt(paced["projected"], 0)])
    print_table(f"Shards: Atari-size pushes ({size:,} float32) from {args.pushers} simulated workers, "
                f"{args.seconds:g} s a setting",
                ["shards", "pushes/s here, saturated", "vs 1", f"CPU ms per push, each shard, at {args.rate:g}/s",
                 "busiest vs 1 shard", "above the per-call floor (vs 1)", "capacity, a core per shard (pushes/s)"],
                rows,
                "saturated: every simulated worker pushes back to back, sharing this host's cores with the shards; "
                f"CPU per push: paced at {args.rate:g} pushes/s in all, so no core is saturated; per-call floor: "
                f"the same paced load with {SIZES['cartpole']:,}-float pushes to one server "
                f"({floor:.2f} ms), what every shard pays per push whatever its slice; "
                "capacity = 1 / the busiest shard's paced CPU per push, each shard alone on its own core")
    fixed, split = fit(points)
    console.print(f"CPU per push of the busiest shard ~ {fixed:.3f} ms + {split:.3f} ms / N (least squares over "
                  f"N = {', '.join(str(n) for n, _ in points)}); on a {HOST_CORES}-core host: " + ", ".join(
                      f"{n} shards ~{1e3 / (fixed + split / n):,.0f} pushes/s" for n in (1, 2, 4, 8) if n < HOST_CORES)
                  + f" (the other {HOST_CORES} - N cores for workers)")
    return 0


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(a, b) of cpu = a + b / N, least squares; (cpu, 0) from one point."""
    if len(points) < 2:
        return points[0][1], 0.0
    import numpy as np
    x = np.array([1 / n for n, _ in points])
    y = np.array([c for _, c in points])
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


if __name__ == "__main__":
    raise SystemExit(main())
