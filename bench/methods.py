"""The paper's four methods on CartPole-v1 in one framework: A3C (the baseline), one-step Q,
one-step Sarsa and n-step Q, each with its defaults, 3 seeds each, one run at a time.

    python -m bench.methods                      # 4 methods x 3 seeds, 1M-step budget per run (~9 min)
    python -m bench.methods --seeds 1 --budget-steps 150000   # a quick look

Each run is `ps-serve --target-return 475 --total-steps BUDGET` and 2 `worker-run` processes on
loopback (bench/runs.py; the lr anneals to 0 over the budget). Seconds count from the server's
start (worker start-up included); updates/s from the first push to the last; steps are global env
steps T. Both are read from the run's TensorBoard mean100 curve (a crossing counts once 100
episodes have finished). An unsolved seed counts as infinitely slow in the medians; the best
mean100 within the budget is shown for every method.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ps.tools.report import load_run

from .common import console, fmt, median, print_table
from .runs import run_cluster

METHODS = ("a3c", "one-step-q", "one-step-sarsa", "n-step-q")
THRESHOLDS = (195.0, 475.0)


@dataclass
class RunResult:
    method: str
    seed: int
    reached: dict            # str(threshold) -> [seconds, steps] or None
    best_mean100: float | None
    env_steps: int
    wall_seconds: float
    updates_per_second: float
    staleness_p50: int
    staleness_p99: int
    ok: bool                 # the run left a summary


def first_crossing(run_dir: Path, threshold: float) -> tuple[float, int] | None:
    """(seconds since server start, T) when mean100 of 100 finished episodes first reached threshold."""
    data = load_run(run_dir)
    curve, returns = data.episodes.get("charts/mean100_return"), data.episodes.get("charts/episode_return")
    if curve is None or returns is None:
        return None
    steps, seconds, values = curve
    episodes_by = np.searchsorted(np.sort(returns[0]), steps, side="right")
    hit = np.flatnonzero((values >= threshold) & (episodes_by >= 100))
    return None if not hit.size else (float(seconds[hit[0]]), int(steps[hit[0]]))


def updates_per_second(rows: list[dict]) -> float:
    """Applied pushes per second from the first push to the last (start-up left out: runs differ in length)."""
    times = [float(r["time_seconds"]) for r in rows if r["applied"] == "1"]
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def run_one(method: str, seed: int, budget_steps: int, out_dir: Path, wall_cap: float) -> RunResult:
    run_dir = out_dir / f"{method}-seed{seed}"
    run = run_cluster(run_dir, method, seed, ["--env", "CartPole-v1", "--algo", method, "--target-return",
                                              str(THRESHOLDS[-1]), "--total-steps", str(budget_steps), "--fresh", "true"],
                      workers=2, timeout=wall_cap)
    summary = run.summary
    if not run.ok:
        return RunResult(method, seed, {str(t): None for t in THRESHOLDS}, None, 0, run.wall_seconds, 0.0, 0, 0, False)
    st = summary["staleness"]
    return RunResult(method, seed, {str(t): first_crossing(run_dir, t) for t in THRESHOLDS},
                     summary.get("best_mean100"), summary["env_steps"], summary["wall_seconds"],
                     updates_per_second(run.rows), st["p50"], st["p99"], True)


def table(results: list[RunResult], seeds: int, budget_steps: int) -> None:
    by = {m: [r for r in results if r.method == m] for m in METHODS}
    base = {t: median(x.reached[str(t)][1] if x.reached[str(t)] else None for x in by["a3c"]) for t in THRESHOLDS}
    rows = []
    for m in METHODS:
        rs = by[m]
        if not rs:
            continue
        row = [m]
        for t in THRESHOLDS:
            got = [r.reached[str(t)] for r in rs]
            steps = median(g[1] if g else None for g in got)
            row += [f"{sum(g is not None for g in got)}/{len(rs)}",
                    fmt(median(g[0] if g else None for g in got)), fmt(steps, thousands=True),
                    fmt(steps / base[t], 2) if np.isfinite(steps) and np.isfinite(base[t]) else "-"]
        best = [r.best_mean100 for r in rs if r.best_mean100 is not None]
        row += [fmt(statistics.median(best)) if best else "-",
                fmt(statistics.median(r.updates_per_second for r in rs), 0),
                f"{statistics.median(r.staleness_p50 for r in rs):g}/{statistics.median(r.staleness_p99 for r in rs):g}"]
        rows.append(row)
    cols = ["method"]
    for t in THRESHOLDS:
        cols += [f"solved {t:g}", f"s to {t:g}", f"steps to {t:g}", "steps ratio"]
    cols += ["best mean100", "updates/s", "staleness p50/p99"]
    console.width = max(console.width, 180)  # one row per method, even when piped
    print_table(f"CartPole-v1, 2 workers over loopback gRPC, {seeds} seeds per method, budget {budget_steps:,} steps "
                f"(medians; 'not solved' = a seed missed it)", cols, rows,
                caption="steps ratio = median steps to the threshold / A3C's, measured in the same run")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.methods", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (default 3)")
    p.add_argument("--budget-steps", type=int, default=1_000_000, help="env steps per run (default 1000000)")
    p.add_argument("--wall-cap", type=float, default=400.0, help="seconds before a run is stopped (default 400)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset (default: all four)")
    p.add_argument("--out-dir", type=Path, default=None, help="where runs go (default: a temp dir)")
    args = p.parse_args(argv)
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench-methods-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = [m for m in args.methods.split(",") if m]
    results = []
    start = time.monotonic()
    for method in methods:
        for seed in range(1, args.seeds + 1):
            r = run_one(method, seed, args.budget_steps, out_dir, args.wall_cap)
            results.append(r)
            console.print(f"{method} seed {seed}: " + ", ".join(
                f"{t}: " + (f"{v[0]:.1f} s / {v[1]:,} steps" if v else "not reached") for t, v in r.reached.items())
                + f", best mean100 {fmt(r.best_mean100)}, {r.env_steps:,} steps in {r.wall_seconds:.0f} s",
                highlight=False)
    table(results, args.seeds, args.budget_steps)
    (out_dir / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    console.print(f"{len(results)} runs in {time.monotonic() - start:.0f} s; runs and results.json in {out_dir}",
                  highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
