"""This project against Stable-Baselines3 with rl-baselines3-zoo's settings, env by env, judged on
evaluation episodes of the saved policies.

    python -m bench.suite                        # every case, 3 seeds, full budgets (hours: MinAtar ~30 min a run)
    python -m bench.suite --quick                # 1 seed, 5% of the budgets, 5 episodes: does it all run
    python -m bench.suite --envs Acrobot-v1 --seeds 1 2 --against dqn --budget-scale 0.5

Cases: A3C against SB3 A2C (zoo a2c.yml) on CartPole-v1, Acrobot-v1, MountainCar-v0, LunarLander-v3
and Pendulum-v1; one-step Q, one-step Sarsa and n-step Q against SB3 DQN (zoo dqn.yml) on
CartPole-v1 and Acrobot-v1; A3C on MinAtar Breakout and SpaceInvaders against the published figures
(no SB3 run: the bar is the figure, the gap is in % of it, and ours trains for the figure's steps).
Against SB3 each side trains to the budget a user gets (times --budget-scale), with no target: SB3
the zoo's n_timesteps, ours its preset's total_steps (the goals compare wall time and final quality,
not steps). Ours is ps-serve with 2 local workers and the env's preset; its
checkpoints, kept as they appear, are its snapshots; SB3 (bench/sb3_zoo.py, 1 torch thread) copies its parameters on the same
period. After training, untimed, each side plays the same number of deterministic episodes (the
most likely action; greedy for Q) with each snapshot. Times run from each process's fork.

Per env a table: final evaluation return (median of seeds), the best snapshot's, wall time, wall
time to SB3's final quality (the median of SB3's final returns), and the goals' ratios: the gap of
the finals in % of the env's return range, and our time to SB3's quality over SB3's wall time.
Written also as suite.json and suite.md under --out-dir.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import bin_path, console, fmt, fresh_run_dir, launch, median, print_table, python, stop_process
from bench.sb3_zoo import thinned, zoo_budget

Q_METHODS = ("one-step-q", "one-step-sarsa", "n-step-q")
A2C_ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3", "Pendulum-v1")
DQN_ENVS = ("CartPole-v1", "Acrobot-v1")
# MinAtar's published bars, as issue 18 quotes them: PPO at about 10M steps. Against a figure there is
# no wall time to compare, only the return, so ours trains for the figure's steps, not the family's 5M.
PUBLISHED = {"MinAtar/Breakout-v1": 28.0, "MinAtar/SpaceInvaders-v1": 131.0}
PUBLISHED_STEPS = 10_000_000
ENVS = (*A2C_ENVS, *PUBLISHED)
# The span these envs' episode returns take (their bounds where the env has them): the goals'
# "within 5% of the env's return range".
RETURN_RANGE = {"CartPole-v1": (0.0, 500.0), "Acrobot-v1": (-500.0, 0.0), "MountainCar-v0": (-200.0, 0.0),
                "LunarLander-v3": (-200.0, 300.0), "Pendulum-v1": (-1600.0, 0.0),
                **{env: (0.0, bar) for env, bar in PUBLISHED.items()}}


@dataclass
class Run:
    """One training run and its evaluations."""
    system: str                     # "ours" or "sb3"
    algo: str                       # ours: a3c or a Q method; sb3: a2c or dqn
    env_id: str
    seed: int
    wall_seconds: float | None      # fork to the end of training
    curve: list = field(default_factory=list)  # (seconds from fork, env steps, evaluation return)
    note: str = ""

    @property
    def final(self) -> float | None:
        return self.curve[-1][2] if self.curve else None

    @property
    def best(self) -> float | None:
        return max(r for _, _, r in self.curve) if self.curve else None

    def seconds_to(self, quality: float) -> float | None:
        """Seconds from fork to the first snapshot whose evaluation reached `quality`; None if none did."""
        return next((t for t, _, r in self.curve if r >= quality), None)


# --- ours -------------------------------------------------------------------------------------------
class CheckpointKeeper:
    """Hard-links every checkpoint the server writes into another folder as it appears: the server
    keeps only its last 3, the suite evaluates the whole run."""

    def __init__(self, checkpoints: Path, keep: Path, period_seconds: float = 0.2) -> None:
        self.src, self.dst, self.period = checkpoints, keep, period_seconds
        keep.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint-keeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._take()
            if self._stop.wait(self.period):
                self._take()
                return

    def _take(self) -> None:
        for path in sorted(self.src.glob("ckpt-*.a3c")) if self.src.exists() else []:
            target = self.dst / path.name
            if not target.exists():
                try:
                    os.link(path, target)
                except FileNotFoundError:
                    pass  # rotated out between listing and linking

    def close(self) -> list[Path]:
        self._stop.set()
        self._thread.join()
        return sorted(self.dst.glob("ckpt-*.a3c"))


def run_ours(env_id: str, algo: str, seed: int, steps: int, out_dir: Path, args) -> Run:
    run_dir = fresh_run_dir(out_dir / f"ours-{algo}-{env_id.replace('/', '_')}-seed{seed}")
    cmd = [bin_path("ps-serve"), "--env", env_id, "--algo", algo, "--seed", str(seed), "--port", "0",
           "--run-dir", str(run_dir), "--local-workers", "2", "--total-steps", str(steps),
           "--target-return", "none", "--checkpoint-every", str(args.snapshot_seconds), "--progress-seconds", "10"]
    launched = launch(cmd, run_dir / "log.txt")
    keeper = CheckpointKeeper(run_dir / "checkpoints", run_dir / "snapshots")
    try:
        launched.proc.wait(timeout=args.timeout)
    except Exception as err:  # a run that hangs is reported, never hangs the suite
        console.print(f"[red]ours {algo} {env_id} seed {seed}: {err}[/red]")
    finally:
        stop_process(launched.proc)
        snaps = keeper.close()
    summary = run_dir / "summary.json"
    if not summary.exists():
        return Run("ours", algo, env_id, seed, None, note=f"no summary: see {run_dir / 'log.txt'}")
    end_unix = summary.stat().st_mtime  # written at the end of training, before the plots
    points = [(s.stat().st_mtime, s) for s in snaps]
    points = thinned(points[:-1], args.eval_points - 1) + [(end_unix, run_dir / "params_final.npz")]
    steps_at = steps_by_time(run_dir / "pushes.csv")
    curve = [(unix - launched.started_unix, steps_at(unix), evaluate_ours(path, args.eval_episodes, seed))
             for unix, path in points]
    return Run("ours", algo, env_id, seed, end_unix - launched.started_unix, curve)


def evaluate_ours(path: Path, episodes: int, seed: int) -> float:
    """Mean return of a saved policy (a checkpoint or params_final.npz) over deterministic episodes."""
    from a3c_cluster import Policy
    return Policy.load(path).evaluate(episodes, deterministic=True, seed=10_000 + seed)["mean_return"]


def steps_by_time(pushes_csv: Path):
    """unix time -> global env steps T reported by then, from the run's pushes.csv."""
    import bisect
    import csv
    import itertools
    with open(pushes_csv) as f:
        rows = sorted((float(r[0]), int(r[5])) for r in list(csv.reader(f))[1:] if r)
    times, totals = [t for t, _ in rows], list(itertools.accumulate(n for _, n in rows))
    return lambda unix: totals[bisect.bisect_right(times, unix) - 1] if times and unix >= times[0] else 0


# --- SB3 --------------------------------------------------------------------------------------------
def run_sb3(env_id: str, algo: str, seed: int, scale: float, out_dir: Path, args) -> Run:
    out = out_dir / f"sb3-{algo}-{env_id}-seed{seed}.json"
    out.unlink(missing_ok=True)
    launched = launch([python(), "-m", "bench.sb3_zoo", "--algo", algo, "--env", env_id, "--seed", str(seed),
                       "--out", str(out), "--budget-scale", str(scale), "--snapshot-seconds", str(args.snapshot_seconds),
                       "--eval-episodes", str(args.eval_episodes), "--eval-points", str(args.eval_points)],
                      out.with_suffix(".log"))
    try:
        launched.proc.wait(timeout=args.timeout)
    except Exception as err:
        console.print(f"[red]sb3 {algo} {env_id} seed {seed}: {err}[/red]")
    finally:
        stop_process(launched.proc)
    try:
        r = json.loads(out.read_text())
    except (OSError, ValueError):
        return Run("sb3", algo, env_id, seed, None, note=f"no result: see {out.with_suffix('.log')}")
    curve = [(t - launched.started_unix, s, ret) for t, s, ret in r["curve"]]
    return Run("sb3", algo, env_id, seed, r["finished_unix"] - launched.started_unix, curve)


# --- report -----------------------------------------------------------------------------------------
def med(values) -> float | None:
    """Median of the values given (None = not measured, left out); None for none."""
    vals = [v for v in values if v is not None]
    return median(vals) if vals else None


def env_table(env_id: str, runs: list[Run], published: float | None = None) -> dict:
    """One env's rows: per system and method, medians over seeds, and the goals' ratios against SB3
    (or against a published figure, which has no wall time)."""
    sb3 = [r for r in runs if r.system == "sb3"]
    bar = published if published is not None else med(r.final for r in sb3)
    sb3_wall = med(r.wall_seconds for r in sb3)
    low, high = RETURN_RANGE.get(env_id, (math.nan, math.nan))
    rows = []
    for (system, algo) in dict.fromkeys((r.system, r.algo) for r in runs):
        group = [r for r in runs if (r.system, r.algo) == (system, algo)]
        final = med(r.final for r in group)
        to_bar = median(r.seconds_to(bar) for r in group) if bar is not None else None  # never = inf
        row = {"system": system, "algo": algo, "seeds": [r.seed for r in group],
               "finals": [r.final for r in group], "final": final, "best": med(r.best for r in group),
               "wall_seconds": med(r.wall_seconds for r in group), "seconds_to_sb3_final": to_bar,
               "gap_pct_of_range": None, "time_ratio": None}
        if system == "ours" and bar is not None and final is not None:
            row["gap_pct_of_range"] = 100 * (final - bar) / (high - low)
            if sb3_wall and to_bar is not None and math.isfinite(to_bar):
                row["time_ratio"] = to_bar / sb3_wall
        rows.append(row)
    return {"env_id": env_id, "sb3_final": bar, "sb3_wall_seconds": sb3_wall, "rows": rows}


COLUMNS = ["system", "method", "final eval (median)", "best eval", "wall s", "s to SB3's final",
           "final - SB3, % of range", "time to SB3's final / SB3 wall"]


def table_rows(table: dict) -> list[list[str]]:
    out = []
    for row in table["rows"]:
        gap, ratio = row["gap_pct_of_range"], row["time_ratio"]
        out.append([row["system"], row["algo"], fmt(row["final"], 1) + "  (" + " / ".join(fmt(f, 1) for f in row["finals"]) + ")",
                    fmt(row["best"], 1), fmt(row["wall_seconds"], 1), _seconds(row["seconds_to_sb3_final"]),
                    "-" if gap is None else f"{gap:+.1f}% ({'met' if gap >= -5 else 'not met'})",
                    "-" if ratio is None else f"{ratio:.2f}x ({'met' if ratio <= 0.5 else 'not met'})"])
    return out


def _seconds(value: float | None) -> str:
    return "never" if value is not None and math.isinf(value) else fmt(value, 1)


def markdown(tables: list[dict], caption: str) -> str:
    lines = [f"# bench.suite\n\n{caption}\n"]
    for table in tables:
        steps = ", ".join(f"{k} {v:,}" for k, v in table["budget_steps"].items())
        against = "the published figure" if table["sb3_algo"] == "published" else f"SB3 {table['sb3_algo'].upper()}"
        lines += [f"\n## {table['env_id']} against {against} (steps: {steps})\n", "| " + " | ".join(COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(table)]
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------------
def cases(envs: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(env, SB3 algorithm, our methods) for the envs asked for, in the suite's order."""
    out = [(e, "a2c", ("a3c",)) for e in A2C_ENVS if e in envs]
    out += [(e, "dqn", Q_METHODS) for e in DQN_ENVS if e in envs]
    return out + [(e, "published", ("a3c",)) for e in PUBLISHED if e in envs]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--budget-scale", type=float, default=None, help="the zoo's budgets times this (1; --quick 0.05)")
    p.add_argument("--against", nargs="+", default=["a2c", "dqn", "published"], choices=["a2c", "dqn", "published"],
                   help="the cases: against SB3 a2c (A3C), SB3 dqn (the Q methods), published figures (MinAtar)")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation (10; --quick 5)")
    p.add_argument("--eval-points", type=int, default=10, help="snapshots evaluated per run, the final always")
    p.add_argument("--snapshot-seconds", type=float, default=None, help="snapshot period (10; --quick 2)")
    p.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per run before it is stopped")
    p.add_argument("--quick", action="store_true", help="1 seed, 5%% of the budgets, 5 episodes, 2 s snapshots")
    p.add_argument("--out-dir", default="runs/bench-suite")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
    scale = args.budget_scale if args.budget_scale is not None else (0.05 if args.quick else 1.0)
    args.eval_episodes = args.eval_episodes or (5 if args.quick else 10)
    args.snapshot_seconds = args.snapshot_seconds or (2.0 if args.quick else 10.0)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    caption = (f"Seeds {args.seeds}; budgets: SB3 rl-zoo's, ours its preset's (against a published figure, "
               f"the figure's), each x {scale}; "
               f"{args.eval_episodes} deterministic evaluation episodes per snapshot (every "
               f"{args.snapshot_seconds:g} s, at most {args.eval_points} a run); times from each process's fork "
               f"to the end of training. Goals: final >= SB3's - 5% of the return range; SB3's final quality "
               f"in <= 0.5x SB3's wall time.")
    console.print(caption)
    tables = []
    for env_id, sb3_algo, methods in cases(args.envs):
        if sb3_algo not in args.against:
            continue
        runs: list[Run] = []
        for seed in args.seeds:  # seed by seed, each side in turn, so load on the machine hits both alike
            if sb3_algo != "published":
                runs.append(run_sb3(env_id, sb3_algo, seed, scale, out_dir, args))
            for algo in methods:
                runs.append(run_ours(env_id, algo, seed, our_budget(env_id, algo, scale), out_dir, args))
            for r in runs[-(sb3_algo != "published") - len(methods):]:
                console.print(f"{env_id} {r.system} {r.algo} seed {seed}: final {fmt(r.final, 1)}, best "
                              f"{fmt(r.best, 1)}, {fmt(r.wall_seconds, 1)} s {r.note}")
        table = env_table(env_id, runs, PUBLISHED.get(env_id) if sb3_algo == "published" else None)
        table["sb3_algo"], table["runs"] = sb3_algo, [asdict(r) for r in runs]
        table["budget_steps"] = {algo: our_budget(env_id, algo, scale) for algo in methods}
        against = f"the published {PUBLISHED.get(env_id)}"
        if sb3_algo != "published":
            table["budget_steps"] = {"sb3": budget(zoo_budget(sb3_algo, env_id), scale), **table["budget_steps"]}
            against = f"SB3 {sb3_algo.upper()} (zoo, {table['budget_steps']['sb3']:,} steps)"
        tables.append(table)
        print_table(f"{env_id}: ours (2 workers, preset, {table['budget_steps'][methods[0]]:,} steps) against "
                    f"{against}", COLUMNS, table_rows(table))
        # Written after every env, so a long run that is stopped keeps what it measured.
        (out_dir / "suite.json").write_text(json.dumps({"caption": caption, "envs": tables}, indent=2, default=str) + "\n")
        (out_dir / "suite.md").write_text(markdown(tables, caption))
    console.print(f"wrote {out_dir / 'suite.json'} and {out_dir / 'suite.md'}")
    return 0


def budget(steps: int, scale: float) -> int:
    return max(1000, round(steps * scale))


def our_budget(env_id: str, algo: str, scale: float) -> int:
    """The total_steps a user gets for this env and method (its preset's, else the family's), or a
    published figure's steps, x scale."""
    from ps.api.defaults import resolve_spec
    steps = PUBLISHED_STEPS if env_id in PUBLISHED else resolve_spec({"env_id": env_id, "algo": algo}).total_steps
    return budget(steps, scale)


if __name__ == "__main__":
    raise SystemExit(main())
