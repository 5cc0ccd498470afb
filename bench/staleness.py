"""Act on staleness: does a bound or a staleness-aware learning rate help when staleness is high?

    python -m bench.staleness                 # 8 workers with injected delay, 4 variants x 3 seeds
    python -m bench.staleness --seeds 1 --budget 200000

CartPole-v1, A3C. Each worker sleeps before every push (worker-run --inject-delay-ms), so the
8 workers are all waiting-bound rather than fighting for 2 cores. In steady state a worker's
staleness is about the number of OTHER workers' pushes during one of its cycles, so with N alike
workers it centres on N - 1 whatever the delay; the jitter spreads it (p99 ~ 2-3x the median). Prints, per variant: runs that reached mean100
>= 475, median env steps and wall seconds to it, best mean100 within the budget, staleness p50/p99
and the fraction of pushes dropped; writes one learning-curve PNG with every variant.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench.common import fmt, median, print_table
from bench.runs import run_cluster

VARIANTS = {
    "none": [],
    "max-staleness 8": ["--max-staleness", "8"],
    "max-staleness 4": ["--max-staleness", "4"],
    "staleness-lr inverse": ["--staleness-lr", "inverse"],
}
TARGET = 475.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--delay-ms", default="30:30", help="worker-run --inject-delay-ms (default 30:30)")
    p.add_argument("--envs", type=int, default=4, help="environments per worker (default 4)")
    p.add_argument("--lr", type=float, default=7e-4, help="learning rate (default 7e-4, for 4 envs x t_max 5)")
    p.add_argument("--budget", type=int, default=400_000, help="env steps per run (default 400k)")
    p.add_argument("--out", type=Path, default=Path("bench/results/staleness"))
    args = p.parse_args(argv)

    runs = {name: [] for name in VARIANTS}
    for seed in range(1, args.seeds + 1):
        for name, extra in VARIANTS.items():
            run = run_cluster(args.out / f"{name.replace(' ', '_')}-seed{seed}", name, seed,
                              ["--env", "CartPole-v1", "--algo", "a3c", "--envs", str(args.envs),
                               "--t-max", "5", "--lr", str(args.lr),
                               "--total-steps", str(args.budget), "--target-return", str(TARGET), *extra],
                              args.workers, ["--inject-delay-ms", args.delay_ms])
            runs[name].append(run)
            s = run.summary
            print(f"{name:22s} seed {seed}: solved={run.solved} steps={s.get('env_steps')} "
                  f"best={s.get('best_mean100')} staleness p50/p99={s.get('staleness', {}).get('p50')}/"
                  f"{s.get('staleness', {}).get('p99')} dropped={run.dropped_fraction():.1%}", flush=True)

    rows = []
    for name, rs in runs.items():
        ok = [r for r in rs if r.ok]
        rows.append([
            name, f"{sum(r.solved for r in rs)}/{len(rs)}",
            fmt(median([r.summary["steps_to_target"] if r.solved else None for r in ok]), thousands=True),
            fmt(median([r.summary["time_to_target_seconds"] if r.solved else None for r in ok])),
            fmt(statistics.median([r.summary.get("best_mean100") or 0.0 for r in ok]) if ok else None),
            fmt(statistics.median([r.summary["staleness"]["p50"] for r in ok]) if ok else None),
            fmt(statistics.median([r.summary["staleness"]["p99"] for r in ok]) if ok else None),
            f"{statistics.mean([r.dropped_fraction() for r in ok]):.1%}" if ok else "-",
            fmt(statistics.median([r.steps_per_second() for r in ok]) if ok else None, thousands=True),
        ])
    print_table(f"Staleness policies: CartPole-v1 A3C, {args.workers} workers x {args.envs} envs, "
                f"delay {args.delay_ms} ms before each push, budget {args.budget:,} steps, {args.seeds} seeds",
                ["variant", "solved", "steps to 475 (median)", "seconds to 475", "best mean100 (median)",
                 "staleness p50", "staleness p99", "pushes dropped", "env steps/s"], rows,
                caption="median over seeds; an unsolved seed counts as 'not solved' (+inf) in the medians")
    plot(runs, args.out / "staleness_curves.png", args)
    print(f"wrote {args.out / 'staleness_curves.png'}")
    return 0


def plot(runs: dict, path: Path, args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for color, (name, rs) in zip(colors, runs.items()):
        for i, r in enumerate(rs):
            if r.curve:
                ax.plot([c[1] for c in r.curve], [c[2] for c in r.curve], color=color, alpha=0.8,
                        label=name if i == 0 else None)
    ax.axhline(TARGET, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean return of the last 100 episodes")
    ax.set_title(f"Staleness policies, {args.workers} workers, delay {args.delay_ms} ms (one line per seed)")
    ax.legend()
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
