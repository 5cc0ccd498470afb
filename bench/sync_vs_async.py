"""Synchronous (A2C-like) rounds against the paper's asynchronous updates, same env and budget.

    python -m bench.sync_vs_async            # 2 and 4 workers, async and --sync, 3 seeds
    python -m bench.sync_vs_async --seeds 1

Prints wall seconds and env steps to mean100 >= 475, env steps/s, updates/s and staleness p50/p99.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench.common import fmt, median, print_table
from bench.runs import run_cluster

TARGET = 475.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--budget", type=int, default=600_000, help="env steps per run (default 600k)")
    p.add_argument("--out", type=Path, default=Path("bench/results/sync_vs_async"))
    args = p.parse_args(argv)

    rows = []
    for workers in (2, 4):
        for mode, extra in (("async", []), ("sync", ["--sync"])):
            runs = [run_cluster(args.out / f"{mode}-{workers}w-seed{seed}", mode, seed,
                                ["--env", "CartPole-v1", "--algo", "a3c", "--total-steps", str(args.budget),
                                 "--target-return", str(TARGET), *extra], workers)
                    for seed in range(1, args.seeds + 1)]
            ok = [r for r in runs if r.ok]
            for r in runs:
                print(f"{mode} {workers} workers seed {r.seed}: solved={r.solved} "
                      f"t={r.summary.get('time_to_target_seconds')} steps={r.summary.get('steps_to_target')}", flush=True)
            rows.append([
                mode, workers, f"{sum(r.solved for r in runs)}/{len(runs)}",
                fmt(median([r.summary["time_to_target_seconds"] if r.solved else None for r in ok])),
                fmt(median([r.summary["steps_to_target"] if r.solved else None for r in ok]), thousands=True),
                fmt(statistics.median([r.steps_per_second() for r in ok]) if ok else None, thousands=True),
                fmt(statistics.median([r.summary["updates"] / max(r.summary["wall_seconds"], 1e-9) for r in ok])
                    if ok else None, thousands=True),
                fmt(statistics.median([r.summary["staleness"]["p50"] for r in ok]) if ok else None),
                fmt(statistics.median([r.summary["staleness"]["p99"] for r in ok]) if ok else None),
            ])
    print_table(f"Sync vs async: CartPole-v1 A3C, budget {args.budget:,} env steps, {args.seeds} seeds (medians)",
                ["mode", "workers", "solved", "seconds to 475", "steps to 475", "env steps/s", "updates/s",
                 "staleness p50", "staleness p99"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
