"""Time to solve CartPole-v1: this cluster (ps-serve + 2 local workers over loopback gRPC) against
Stable-Baselines3 A2C with the rl-baselines3-zoo hyper-parameters, in the same run, seed by seed.

    python -m bench.cartpole                  # 3 seeds each, plus a peak-throughput run
    python -m bench.cartpole --quick          # 1 seed each, no throughput runs
    python -m bench.cartpole --ours-args="--envs 16"   # try a setting

Times run from the fork of each top-level process (imports, worker start-up and registration
included) to the moment the mean return of the last 100 finished episodes reaches 475. Memory is
the peak PSS summed over the whole process tree. Prints one table, the targets with their ratios,
and writes a learning-curve PNG and results.json under --out-dir.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .common import (PeakPss, bin_path, console, fmt, fresh_run_dir, launch, median, print_table, python,
                     stop_process, wait_for_file)

TARGET = 475.0
POLL_SECONDS = 0.25


@dataclass
class Result:
    system: str
    seed: int
    solved: bool
    seconds_to_target: float | None      # from process start
    steps_to_target: int | None
    steps_per_second: float | None       # env steps / seconds from first step (or push) to target
    peak_pss_mib: float
    processes: int
    curve: list = field(default_factory=list)   # (seconds from start, env steps, mean100)
    note: str = ""


# --- this project ---------------------------------------------------------------------------------
class StatusPoller:
    """Polls the server's Status RPC: the learning curve, and the server's clock against ours.

    `wall_seconds` in a Status reply is time since the server's core started; the smallest
    (receive time - wall_seconds) over all polls anchors the server's clock to wall-clock time.
    """

    def __init__(self, port: int, started_unix: float) -> None:
        import grpc

        from ps.api.v1 import parameter_server_pb2 as pb
        from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
        self._pb = pb
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = pb_grpc.ParameterServerStub(self._channel)
        self._grpc = grpc
        self.started_unix = started_unix
        self.core_start_unix = math.inf
        self.curve: list[tuple[float, int, float]] = []
        self.last: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self._stub.Status(self._pb.StatusRequest(), timeout=2.0)
            except self._grpc.RpcError:
                if self._stop.wait(POLL_SECONDS):
                    break
                continue
            now = time.time()
            status = json.loads(reply.status_json)
            self.last = status
            self.core_start_unix = min(self.core_start_unix, now - status["wall_seconds"])
            if status.get("final_mean100") is not None:
                self.curve.append((now - self.started_unix, status["env_steps"], status["final_mean100"]))
            self._stop.wait(POLL_SECONDS)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._channel.close()


def first_push_unix(pushes_csv: Path) -> float | None:
    with open(pushes_csv) as f:
        reader = csv.reader(f)
        next(reader, None)
        times = [float(row[0]) for row in reader if row]
    return min(times) if times else None


def run_ours(seed: int, out_dir: Path, extra: list[str], timeout: float, workers: int = 2,
             target: float | None = TARGET, total_steps: int | None = None) -> tuple[Result, dict]:
    run_dir = out_dir / f"ours-seed{seed}"
    fresh_run_dir(run_dir)
    cmd = [bin_path("ps-serve"), "--env", "CartPole-v1", "--port", "0", "--run-dir", str(run_dir),
           "--seed", str(seed), "--local-workers", str(workers), "--progress-seconds", "5",
           "--target-return", "none" if target is None else str(target)]
    if total_steps:
        cmd += ["--total-steps", str(total_steps)]
    cmd += extra
    launched = launch(cmd, run_dir / "log.txt")
    with PeakPss(launched.proc.pid) as mem:
        poller = None
        try:
            port = int(wait_for_file(run_dir / "port", launched.proc))
            poller = StatusPoller(port, launched.started_unix)
            launched.proc.wait(timeout=timeout)
        except Exception as err:  # timeout or early exit: report it, never hang the benchmark
            console.print(f"[red]ours seed {seed}: {err}[/red]")
        finally:
            if poller:
                poller.close()
            stop_process(launched.proc)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    solved = bool(summary.get("solved"))
    seconds = steps = sps = None
    first_push = first_push_unix(run_dir / "pushes.csv") if (run_dir / "pushes.csv").exists() else None
    if solved and poller and math.isfinite(poller.core_start_unix):
        solved_unix = poller.core_start_unix + summary["time_to_target_seconds"]
        seconds = solved_unix - launched.started_unix
        steps = summary["steps_to_target"]
        if first_push:
            sps = steps / max(solved_unix - first_push, 1e-9)
    result = Result("ours", seed, solved, seconds, steps, sps, mem.peak_mib, mem.peak_processes,
                    poller.curve if poller else [], " ".join(extra))
    return result, summary


# --- the baseline ---------------------------------------------------------------------------------
def run_sb3(seed: int, out_dir: Path, timeout: float) -> Result:
    out = out_dir / f"sb3-seed{seed}.json"
    out.unlink(missing_ok=True)
    launched = launch([python(), "-m", "bench.sb3_a2c", "--seed", str(seed), "--out", str(out),
                       "--target", str(TARGET)], out_dir / f"sb3-seed{seed}.log")
    with PeakPss(launched.proc.pid) as mem:
        try:
            launched.proc.wait(timeout=timeout)
        except Exception as err:
            console.print(f"[red]sb3 seed {seed}: {err}[/red]")
        finally:
            stop_process(launched.proc)
    if not out.exists():
        return Result("sb3-a2c", seed, False, None, None, None, mem.peak_mib, mem.peak_processes, note="no result")
    r = json.loads(out.read_text())
    solved = r["solved_unix"] is not None
    end = r["solved_unix"] or r["finished_unix"]
    sps = r["env_steps"] / max(end - r["first_step_unix"], 1e-9) if r["first_step_unix"] else None
    curve = [(t - launched.started_unix, s, m) for t, s, m in r["curve"]]
    return Result("sb3-a2c", seed, solved, end - launched.started_unix if solved else None,
                  r["env_steps"] if solved else None, sps, mem.peak_mib, mem.peak_processes, curve)


# --- peak throughput -------------------------------------------------------------------------------
def steady_rate(pushes_csv: Path, skip_seconds: float = 1.0) -> float | None:
    """Env steps/s over a run's pushes, after its first skip_seconds of pushing (warm-up)."""
    with open(pushes_csv) as f:
        rows = [(float(r[0]), int(r[5])) for r in list(csv.reader(f))[1:] if r]
    if len(rows) < 10:
        return None
    rows.sort()
    t0 = rows[0][0] + skip_seconds
    kept = [(t, n) for t, n in rows if t >= t0]
    if len(kept) < 2 or kept[-1][0] <= kept[0][0]:
        return None
    return sum(n for _, n in kept[1:]) / (kept[-1][0] - kept[0][0])


def run_throughput(envs: int, out_dir: Path, steps: int, timeout: float) -> tuple[float | None, float]:
    result, _ = run_ours(0, out_dir / f"throughput-envs{envs}", ["--envs", str(envs)], timeout,
                         target=None, total_steps=steps)
    return steady_rate(out_dir / f"throughput-envs{envs}" / "ours-seed0" / "pushes.csv"), result.peak_pss_mib


# --- report -----------------------------------------------------------------------------------------
def plot_curves(results: list[Result], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"ours": "tab:blue", "sb3-a2c": "tab:orange"}
    for r in results:
        if not r.curve:
            continue
        t, s, m = zip(*r.curve)
        label = f"{'this cluster' if r.system == 'ours' else 'SB3 A2C (zoo)'} seed {r.seed}"
        style = "-" if r.system == "ours" else "--"
        ax_t.plot(t, m, style, color=colors[r.system], alpha=0.8, label=label)
        ax_s.plot(s, m, style, color=colors[r.system], alpha=0.8, label=label)
    for ax, xlabel in ((ax_t, "wall seconds from process start"), (ax_s, "env steps")):
        ax.axhline(TARGET, color="gray", lw=0.8, ls=":")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean return, last 100 episodes")
        ax.grid(alpha=0.3)
    ax_t.set_xscale("log")
    ax_s.legend(fontsize=7, loc="lower right")
    fig.suptitle("CartPole-v1: this cluster (2 workers, gRPC) vs Stable-Baselines3 A2C")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: list[Result], throughput: dict[int, tuple[float | None, float]], args) -> dict:
    rows = []
    for r in results:
        rows.append([r.system, r.seed, fmt(r.seconds_to_target, 1) if r.solved else "not solved",
                     fmt(r.steps_to_target, thousands=True), fmt(r.steps_per_second, thousands=True),
                     fmt(r.peak_pss_mib, 0), r.processes])
    ours = [r for r in results if r.system == "ours"]
    sb3 = [r for r in results if r.system == "sb3-a2c"]
    med = {}
    for name, group in (("ours", ours), ("sb3-a2c", sb3)):
        if not group:
            continue
        med[name] = {"seconds": median(r.seconds_to_target for r in group),
                     "steps": median(r.steps_to_target for r in group),
                     "sps": median(r.steps_per_second for r in group if r.steps_per_second),
                     "pss": median(r.peak_pss_mib for r in group),
                     "solved": sum(r.solved for r in group), "runs": len(group)}
        m = med[name]
        rows.append([f"[b]{name} median[/b]", f"{m['solved']}/{m['runs']} solved", fmt(m["seconds"], 1),
                     fmt(m["steps"], thousands=True), fmt(m["sps"], thousands=True), fmt(m["pss"], 0), ""])
    caption = f"our settings: ps-serve defaults {args.ours_args or ''}; SB3: rl-zoo CartPole-v1 (8 envs, ent_coef 0.0)"
    print_table("CartPole-v1 to mean100 >= 475", ["system", "seed", "seconds", "env steps", "env steps/s",
                                                  "peak PSS MiB", "procs"], rows, caption)
    for envs, (rate, pss) in sorted(throughput.items()):
        console.print(f"peak throughput, 2 workers x {envs} envs: {fmt(rate, thousands=True)} env steps/s, "
                      f"peak PSS {pss:.0f} MiB")
    targets = []
    if "ours" in med and "sb3-a2c" in med:
        o, s = med["ours"], med["sb3-a2c"]
        time_ratio = o["seconds"] / s["seconds"] if math.isfinite(s["seconds"]) else math.nan
        best = max([r for r, _ in throughput.values() if r] + [o["sps"]])
        targets = [
            ["1. time to 475, ours / SB3 (medians)", f"{time_ratio:.3f}x", "<= 0.25x",
             _ok(time_ratio <= 0.25 and o["solved"] == o["runs"])],
            ["2. peak env steps/s, ours best / SB3", f"{best / s['sps']:.1f}x", ">= 8x", _ok(best / s["sps"] >= 8)],
            ["4. peak PSS, server + 2 workers / SB3", f"{o['pss'] / s['pss']:.2f}x", "<= 1x", _ok(o["pss"] <= s["pss"])],
        ]
        print_table("Targets (ratios measured in this run)", ["target", "measured", "goal", ""], targets)
    return {"results": [asdict(r) | {"curve": None} for r in results], "medians": med,
            "throughput": {str(k): v for k, v in throughput.items()}, "targets": targets}


def sweep_envs(envs_list: list[int], seeds: list[int], out_dir: Path, extra: list[str], timeout: float) -> None:
    """Learning per env step and time to solve for several --envs values, interleaved seed by seed."""
    runs: dict[int, list[Result]] = {k: [] for k in envs_list}
    for seed in seeds:
        for k in envs_list:
            r, _ = run_ours(seed, out_dir / f"envs{k}", [*extra, "--envs", str(k)], timeout)
            runs[k].append(r)
            console.print(f"envs {k} seed {seed}: {fmt(r.seconds_to_target)} s, "
                          f"{fmt(r.steps_to_target, thousands=True)} steps, {fmt(r.steps_per_second, thousands=True)} steps/s")
    rows = [[k, f"{sum(r.solved for r in rs)}/{len(rs)}", fmt(median(r.seconds_to_target for r in rs), 1),
             fmt(median(r.steps_to_target for r in rs), thousands=True),
             fmt(median(r.steps_per_second for r in rs), thousands=True),
             " / ".join(fmt(r.steps_to_target, thousands=True) for r in rs)] for k, rs in runs.items()]
    print_table("--envs sweep (2 workers, CartPole-v1 to mean100 >= 475, medians)",
                ["envs per worker", "solved", "seconds", "env steps", "env steps/s", "steps by seed"], rows)


def _ok(passed: bool) -> str:
    return "[green]met[/green]" if passed else "[red]not met[/red]"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cartpole", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--quick", action="store_true", help="seed 1 only, no throughput runs")
    p.add_argument("--ours-args", default="", help="extra ps-serve flags for our runs, e.g. '--envs 16'")
    p.add_argument("--no-sb3", action="store_true", help="skip the baseline (for tuning our settings only)")
    p.add_argument("--throughput-envs", type=int, nargs="*", default=[64, 128, 256],
                   help="envs per worker for the peak-throughput runs (none to skip)")
    p.add_argument("--throughput-steps", type=int, default=600_000)
    p.add_argument("--timeout", type=float, default=400.0, help="seconds per run before it counts as unsolved")
    p.add_argument("--out-dir", default="runs/bench-cartpole")
    p.add_argument("--sweep-envs", type=int, nargs="*", default=[],
                   help="instead of the comparison: our time and steps to solve for each of these --envs values")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.throughput_envs = args.seeds[:1], []
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = shlex.split(args.ours_args)
    if args.sweep_envs:
        sweep_envs(args.sweep_envs, args.seeds, out_dir, extra, args.timeout)
        return 0
    results: list[Result] = []
    for seed in args.seeds:  # interleaved, so background load hits both systems alike
        r, _ = run_ours(seed, out_dir, extra, args.timeout)
        results.append(r)
        console.print(f"ours    seed {seed}: {fmt(r.seconds_to_target)} s, {fmt(r.steps_to_target, thousands=True)} "
                      f"steps, {fmt(r.steps_per_second, thousands=True)} steps/s, {r.peak_pss_mib:.0f} MiB")
        if not args.no_sb3:
            r = run_sb3(seed, out_dir, args.timeout)
            results.append(r)
            console.print(f"sb3-a2c seed {seed}: {fmt(r.seconds_to_target)} s, "
                          f"{fmt(r.steps_to_target, thousands=True)} steps, "
                          f"{fmt(r.steps_per_second, thousands=True)} steps/s, {r.peak_pss_mib:.0f} MiB")
    throughput = {k: run_throughput(k, out_dir, args.throughput_steps, args.timeout) for k in args.throughput_envs}
    doc = report(results, throughput, args)
    png = out_dir / "learning_curves.png"
    plot_curves(results, png)
    (out_dir / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    console.print(f"learning curves: {png}; results: {out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
