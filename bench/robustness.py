"""The paper's robustness figure: final return against learning rate, for each optimizer.

    python -m bench.robustness --algo a3c --env CartPole-v1 --runs 20

For every optimizer (shared-rmsprop, rmsprop with per-worker statistics, momentum-sgd), N runs
with learning rates drawn log-uniformly from [1e-4, 1e-2] (the paper's range) and different
seeds, each with the same fixed step budget (no early stop). Prints per optimizer the fraction of
runs whose mean100 reached the threshold, and the median and best final mean100; writes a scatter
plot of final mean100 against learning rate, one colour per optimizer.
"""
from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import numpy as np

from bench.common import fmt, print_table
from bench.runs import run_cluster
from ps.core.optim import OPTIMIZERS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="a3c")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--runs", type=int, default=20, help="runs per optimizer (default 20)")
    p.add_argument("--budget", type=int, default=150_000, help="env steps per run (default 150k)")
    p.add_argument("--threshold", type=float, default=195.0, help="mean100 that counts as reached (default 195)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="seed of the learning-rate draws (default 0)")
    p.add_argument("--out", type=Path, default=Path("bench/results/robustness"))
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    lrs = 10 ** rng.uniform(-4, -2, size=args.runs)   # log-uniform on [1e-4, 1e-2]
    results: dict[str, list[tuple[float, float, float]]] = {}
    for opt in OPTIMIZERS:
        results[opt] = []
        for i, lr in enumerate(lrs):
            run = run_cluster(args.out / f"{opt}-{i:02d}", opt, 100 + i,
                              ["--env", args.env, "--algo", args.algo, "--optimizer", opt, "--lr", f"{lr:.6g}",
                               "--total-steps", str(args.budget), "--target-return", "none",
                               "--local-workers", str(args.workers)], workers=0)
            final = run.summary.get("final_mean100")
            best = run.summary.get("best_mean100")
            final = math.nan if final is None else final
            best = math.nan if best is None else best
            results[opt].append((lr, final, best))
            print(f"{opt:15s} run {i:2d} lr={lr:.2e}: final mean100={final:.1f} best={best:.1f}", flush=True)

    rows = []
    for opt, rs in results.items():
        finals = [f for _, f, _ in rs if not math.isnan(f)]
        reached = sum(1 for _, _, b in rs if not math.isnan(b) and b >= args.threshold)
        rows.append([opt, f"{reached}/{len(rs)} ({reached / max(1, len(rs)):.0%})",
                     fmt(statistics.median(finals) if finals else None), fmt(max(finals) if finals else None),
                     fmt(min(finals) if finals else None)])
    print_table(f"Robustness: {args.algo} on {args.env}, {args.runs} learning rates log-uniform in [1e-4, 1e-2], "
                f"{args.budget:,} env steps each, {args.workers} workers",
                ["optimizer", f"reached mean100 >= {args.threshold:g}", "median final mean100",
                 "best final mean100", "worst final mean100"], rows)
    plot(results, args)
    print(f"wrote {args.out / 'robustness.png'}")
    return 0


def plot(results: dict, args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for (opt, rs), color in zip(results.items(), ["tab:blue", "tab:orange", "tab:green"]):
        ax.scatter([lr for lr, _, _ in rs], [f for _, f, _ in rs], label=opt, color=color, alpha=0.8)
    ax.set_xscale("log")
    ax.axhline(args.threshold, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"final mean100 return after {args.budget:,} env steps")
    ax.set_title(f"Robustness to the learning rate: {args.algo} on {args.env}")
    ax.legend()
    ax.grid(alpha=0.3)
    args.out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out / "robustness.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
