"""ps-report RUN_DIR: plots and a short text summary of a finished (or running) run.

    ps-report runs/cartpole      # writes learning_curve.png, staleness.png, throughput.png into the run dir

Reads only the run's files: pushes.csv (one row per push), tb/ (the server's TensorBoard events,
for episode returns and mean100) and summary.json when the run is over. The server calls
report_at_end() once when a run ends. matplotlib is imported only when plotting (Agg, no display).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ps.service.progress import summary_lines
from ps.core.staleness import StalenessStats

log = logging.getLogger("ps.report")
PLOTS = ("learning_curve.png", "staleness.png", "throughput.png")
THROUGHPUT_BINS = 120     # points on the throughput curves, whatever the run's length
ROLLING_PUSHES = 50       # pushes per point of a worker's staleness curve
MAX_DOTS = 20_000         # dots per series; long runs are thinned evenly so plotting stays quick


@dataclass
class RunData:
    """What the run's files hold, as arrays; times in seconds since the server started."""
    push_time: np.ndarray
    worker_id: np.ndarray
    staleness: np.ndarray
    env_steps: np.ndarray
    applied: np.ndarray
    episodes: dict = field(default_factory=dict)   # tag -> (steps, seconds, values)
    summary: dict | None = None
    origin: float = 0.0


def _read_pushes(path: Path) -> dict[str, np.ndarray]:
    names = ("time_seconds", "worker_id", "staleness", "env_steps", "applied")
    rows: dict[str, list[float]] = {n: [] for n in names}
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    values = [float(row[n]) for n in names]
                except (KeyError, TypeError, ValueError):
                    continue  # a row being written right now
                for n, v in zip(names, values):
                    rows[n].append(v)
    return {n: np.asarray(v, dtype=np.float64) for n, v in rows.items()}


def _read_tensorboard(tb_dir: Path) -> tuple[float | None, dict]:
    """(wall time the newest event file was opened, {tag: (steps, wall times, values)})."""
    files = sorted(tb_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None, {}
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    origin, series = None, {}
    for event in LegacyEventFileLoader(str(files[-1])).Load():
        if origin is None:
            origin = event.wall_time   # the first event is written when the server starts
        for value in event.summary.value:
            series.setdefault(value.tag, []).append((event.step, event.wall_time, value.simple_value))
    return origin, {tag: tuple(np.asarray(col, dtype=np.float64) for col in zip(*rows))
                    for tag, rows in series.items()}


def load_run(run_dir: Path) -> RunData:
    pushes = _read_pushes(run_dir / "pushes.csv")
    origin, series = _read_tensorboard(run_dir / "tb")
    if origin is None:
        origin = float(pushes["time_seconds"][0]) if len(pushes["time_seconds"]) else 0.0
    episodes = {tag: (steps, wall - origin, values) for tag, (steps, wall, values) in series.items()}
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return RunData(pushes["time_seconds"] - origin, pushes["worker_id"].astype(int),
                   pushes["staleness"].astype(int), pushes["env_steps"].astype(int),
                   pushes["applied"].astype(bool), episodes, summary, origin)


def run_summary(data: RunData) -> dict:
    """summary.json when the run is over; otherwise the same figures from pushes.csv and tb/."""
    if data.summary is not None:
        return data.summary
    stats = StalenessStats()
    for s in data.staleness[data.applied]:
        stats.record(int(s))
    workers = []
    for wid in np.unique(data.worker_id):
        mine = data.worker_id == wid
        applied = mine & data.applied
        workers.append({"id": int(wid), "host": "?", "pushes": int(mine.sum()),
                        "env_steps": int(data.env_steps[mine].sum()),
                        "mean_staleness": round(float(data.staleness[applied].mean()), 3) if applied.any() else 0.0})
    mean100 = data.episodes.get("charts/mean100_return")
    returns = data.episodes.get("charts/episode_return")
    return {"stop_reason": "still running (figures from pushes.csv and tb/)",
            "env_steps": int(data.env_steps.sum()), "updates": int(data.applied.sum()),
            "episodes": 0 if returns is None else len(returns[2]),
            "wall_seconds": float(data.push_time[-1]) if len(data.push_time) else 0.0,
            "final_mean100": None if mean100 is None else round(float(mean100[2][-1]), 3),
            "solved": False, "staleness": stats.summary(), "workers": workers}


# --- plots ----------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_learning_curve(data: RunData, summary: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    mean100 = data.episodes.get("charts/mean100_return")
    returns = data.episodes.get("charts/episode_return")
    target = (summary.get("run_spec") or {}).get("target_return")
    for ax, col, label in ((axes[0], 0, "env steps (T)"), (axes[1], 1, "wall seconds since the server started")):
        if returns is not None:
            every = _thin(len(returns[2]))
            ax.scatter(returns[col][::every], returns[2][::every], s=5, color="tab:blue", alpha=0.25, lw=0, label="one episode's return")
        if mean100 is not None:
            ax.plot(mean100[col], mean100[2], color="tab:blue", lw=2, label="mean of last 100 episodes")
        if target is not None:
            ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target:g}")
        if summary.get("solved"):
            x = summary["steps_to_target"] if col == 0 else summary["time_to_target_seconds"]
            ax.axvline(x, color="tab:green", ls=":", lw=1.5, label=f"target reached at {x:,.0f}")
        if col == 1:
            _shade_start(ax, data)
        ax.set_xlabel(label)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("return")
    if axes[0].get_legend_handles_labels()[1]:  # a run with no episode and no target has nothing to label
        axes[0].legend(loc="upper left", fontsize=8)
    handles, labels = axes[1].get_legend_handles_labels()
    if "before the first push" in labels:
        axes[1].legend([handles[labels.index("before the first push")]], ["before the first push"],
                       loc="upper left", fontsize=8)
    m = summary.get("final_mean100")
    fig.suptitle(f"Learning curve: {summary.get('env_steps', 0):,} env steps, {summary.get('episodes', 0):,} episodes, "
                 f"final mean100 {'-' if m is None else f'{m:.1f}'}")
    _save(fig, path)


def plot_staleness(data: RunData, summary: dict, path: Path) -> None:
    plt = _pyplot()
    st = summary["staleness"]
    fig, (hist_ax, time_ax) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    labels, counts = zip(*st["histogram"].items())
    bars = hist_ax.bar(range(len(labels)), counts, color="tab:purple")
    hist_ax.bar_label(bars, labels=[_share(c, st["count"]) for c in counts], fontsize=8)
    hist_ax.set_xticks(range(len(labels)), labels)
    hist_ax.set_xlabel("staleness (versions between pull and apply)")
    hist_ax.set_ylabel("applied pushes")
    hist_ax.set_title(f"p50 {st['p50']}  p90 {st['p90']}  p99 {st['p99']}  max {st['max']}  "
                      f"({st['count']:,} pushes)", fontsize=10)
    top = 1.0   # the y range follows the rolling means and p99, so one outlier does not flatten the curves
    for wid in np.unique(data.worker_id):
        mine = (data.worker_id == wid) & data.applied
        t, s = data.push_time[mine], data.staleness[mine].astype(float)
        rolling = _rolling_mean(s, ROLLING_PUSHES)
        line, = time_ax.plot(t, rolling, lw=1.5, label=f"worker {wid}")
        every = _thin(len(s))
        time_ax.scatter(t[::every], s[::every], s=3, alpha=0.15, lw=0, color=line.get_color())
        top = max(top, float(rolling.max()) if len(rolling) else 0.0)
    base = max(top, st["p99"])
    top = st["max"] + 0.5 if st["max"] <= 4 * base else 1.3 * base + 0.5   # clip only far outliers
    above = int((data.staleness[data.applied] > top).sum())
    if above:
        time_ax.text(0.01, 0.97, f"{above:,} push{'es' if above > 1 else ''} above {top:.0f} not shown (max {st['max']})",
                     transform=time_ax.transAxes, va="top", fontsize=8)
    time_ax.set_ylim(-0.5, top)
    time_ax.set_xlabel("wall seconds since the server started")
    time_ax.set_ylabel("staleness (versions)")
    time_ax.set_title(f"per worker: mean of the last {ROLLING_PUSHES} pushes (dots: each push)", fontsize=10)
    time_ax.grid(alpha=0.3)
    if 0 < len(np.unique(data.worker_id)) <= 12:
        time_ax.legend(loc="upper right", fontsize=8, ncols=2)
    fig.suptitle("Gradient staleness")
    _save(fig, path)


def plot_throughput(data: RunData, summary: dict, path: Path) -> None:
    plt = _pyplot()
    fig, (steps_ax, updates_ax) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True)
    t = data.push_time
    if len(t):
        width = _bin_seconds(t)
        edges = np.arange(0.0, float(t.max()) + width, width)
        centers = (edges[:-1] + edges[1:]) / 2
        steps, _ = np.histogram(t, edges, weights=data.env_steps)
        updates, _ = np.histogram(t[data.applied], edges)
        for ax, y, name, color in ((steps_ax, steps / width, "env steps/s", "tab:green"),
                                   (updates_ax, updates / width, "updates/s", "tab:orange")):
            ax.plot(centers, y, color=color, lw=1.5, drawstyle="steps-mid")
            _shade_start(ax, data)
            busy = y[y > 0]
            if len(busy):
                ax.axhline(busy.mean(), color=color, ls="--", lw=1, label=f"mean while pushing {busy.mean():,.0f}")
                ax.legend(loc="lower right", fontsize=8)
            ax.set_ylabel(name)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    updates_ax.set_xlabel(f"wall seconds since the server started ({_bin_seconds(t):.2g} s bins)")
    wall = max(summary.get("wall_seconds") or 0, 1e-9)
    fig.suptitle(f"Throughput: {summary.get('env_steps', 0) / wall:,.0f} env steps/s and "
                 f"{summary.get('updates', 0) / wall:,.0f} updates/s over the whole run, "
                 f"{len(summary.get('workers', []))} workers")
    _save(fig, path)


def _shade_start(ax, data: RunData) -> None:
    """Grey out the time before the first push (workers starting), so it is not read as a stall."""
    if len(data.push_time) and data.push_time[0] > 0:
        ax.axvspan(0, data.push_time[0], color="0.92", zorder=0, label="before the first push")


def _thin(n: int) -> int:
    """Stride that keeps at most MAX_DOTS of n points."""
    return max(1, -(-n // MAX_DOTS))


def _share(count: int, total: int) -> str:
    if not count:
        return ""
    return "<1%" if count < total / 100 else f"{count / total:.0%}"


def _bin_seconds(t: np.ndarray) -> float:
    """Bins of about THROUGHPUT_BINS per run, never shorter than 0.1 s (the rates get too noisy)."""
    return max(0.1, float(t.max()) / THROUGHPUT_BINS) if len(t) else 1.0


def _rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    k = np.minimum(np.arange(1, len(x) + 1), n)
    return (c[1:] - c[np.arange(1, len(x) + 1) - k]) / k


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    tmp = path.with_name(path.stem + ".tmp.png")
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=90)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written plot keeps its space on a full disk
        raise
    finally:
        plt.close(fig)


def write_plots(run_dir: Path, data: RunData | None = None) -> list[Path]:
    data = data or load_run(run_dir)
    summary = run_summary(data)
    paths = [run_dir / name for name in PLOTS]
    for plot, path in zip((plot_learning_curve, plot_staleness, plot_throughput), paths):
        plot(data, summary, path)
    return paths


def report_at_end(run_dir: Path, faults=None) -> None:
    """The server's end-of-run call: plots if possible, one line if not, never an exception. With
    `faults` (ps/records/faults.py) a failure is counted there (kind "plots")."""
    try:
        paths = write_plots(Path(run_dir))
        print(f"ps-serve: wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    except Exception as err:  # plotting must never fail a finished run
        if faults is not None:
            faults.record("plots", err, "plots not written (ps-report RUN_DIR draws them later)")
        else:
            log.warning("plots not written: %s: %s", type(err).__name__, err)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ps-report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory written by ps-serve")
    args = p.parse_args(argv)
    if not (args.run_dir / "pushes.csv").exists():
        print(f"ps-report: error: {args.run_dir} has no pushes.csv: not a run directory of ps-serve", file=sys.stderr)
        return 2
    data = load_run(args.run_dir)
    for line in summary_lines(run_summary(data)):
        print(line)
    try:
        paths = write_plots(args.run_dir, data)
    except Exception as err:
        print(f"ps-report: error: plots not written: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
