"""The live progress line and the closing summary, drawn from status snapshots."""
from __future__ import annotations

import threading
import time

from rich.console import Console


def progress_line(status: dict, prev: dict | None, dt: float) -> str:
    steps, updates = status["env_steps"], status["updates"]
    if "env_steps_per_second" in status:  # the server's own window (ps/rates.py)
        sps, ups = status["env_steps_per_second"], status["updates_per_second"]
    else:
        sps = (steps - prev["env_steps"]) / dt if prev and dt > 0 else 0.0
        ups = (updates - prev["updates"]) / dt if prev and dt > 0 else 0.0
    m = status["final_mean100"]
    st = status["staleness"]
    return (f"T={steps:>9,} ({100 * steps / status['total_steps']:4.1f}%)  {sps:8,.0f} steps/s  "
            f"mean100={'   -  ' if m is None else f'{m:6.1f}'}  updates={updates:,} ({ups:,.0f}/s)  "
            f"staleness p50/p99={st['p50']}/{st['p99']}  workers={status['workers_connected']}"
            + (f"  eval={status['eval_mean']:.1f}" if status.get("eval_mean") is not None else ""))


def summary_lines(summary: dict) -> list[str]:
    st = summary["staleness"]
    m = summary["final_mean100"]
    lines = [
        f"run over: {summary['stop_reason'] or 'stopped'}",
        f"  {summary['env_steps']:,} env steps, {summary['updates']:,} updates, {summary['episodes']:,} episodes "
        f"in {summary['wall_seconds']:.1f} s ({summary['env_steps'] / max(summary['wall_seconds'], 1e-9):,.0f} steps/s)",
        f"  mean100 return {'-' if m is None else f'{m:.1f}'}"
        + (f", target reached at {summary['time_to_target_seconds']:.1f} s / {summary['steps_to_target']:,} steps"
           if summary.get("solved") else ""),
        f"  staleness p50 {st['p50']}, p90 {st['p90']}, p99 {st['p99']}, max {st['max']}",
    ]
    if summary.get("eval_mean") is not None:
        lines.append(f"  eval return {summary['eval_mean']:.1f} +- {summary['eval_std']:.1f} over "
                     f"{summary['eval_episodes']} episodes at version {summary['eval_version']:,} "
                     f"(best {summary['best_eval_mean']:.1f}, {summary['evaluations']:,} rounds)")
    if summary.get("dropped"):
        lines.append("  dropped by the staleness bound: "
                     + ", ".join(f"{n:,} ({reason})" for reason, n in summary["dropped"].items()))
    if summary.get("sync_round_timeouts"):
        lines.append(f"  sync rounds applied without a worker (timeout): {summary['sync_round_timeouts']:,}")
    if summary.get("target_network"):  # value-based methods: theta- on the server
        t = summary["target_network"]
        lines.append(f"  target network: version {t['version']} ({t['copies']:,} copies, every "
                     f"{t['update_steps']:,} steps), age {t['age_steps']:,} steps, sent {t['sends_total']:,} times")
    for w in summary["workers"]:
        if w.get("role") == "evaluator":
            lines.append(f"  evaluator {w['id']} on {w['host']}")
            continue
        lines.append(f"  worker {w['id']} on {w['host']}: {w['pushes']:,} pushes, {w['env_steps']:,} env steps, "
                     f"mean staleness {w['mean_staleness']}"
                     + (f", epsilon {w['epsilon']:g}" if "epsilon" in w else ""))
    return lines


class ProgressReporter:
    """Prints a progress line every `period` seconds until stopped (in place on a terminal)."""

    def __init__(self, snapshot, period: float, console: Console | None = None) -> None:
        self._snapshot = snapshot
        self._period = period
        self._console = console or Console(stderr=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        prev, prev_t = None, time.monotonic()
        live = self._console.is_terminal
        while not self._stop.wait(self._period):
            status, now = self._snapshot(), time.monotonic()
            line = progress_line(status, prev, now - prev_t)
            if live:
                self._console.file.write("\r" + line[: self._console.width - 1].ljust(self._console.width - 1))
                self._console.file.flush()
            else:
                self._console.print(line, highlight=False, soft_wrap=True)
            prev, prev_t = status, now
        if live:
            self._console.file.write("\n")
