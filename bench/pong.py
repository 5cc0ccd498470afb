"""Pong learned through the real cluster: frames and wall time until the mean of the last 20 episodes
reaches 18 (or a frame or wall budget runs out).

    python -m bench.pong                        # feed-forward, 2 local workers, until 18 or 2 hours
    python -m bench.pong --lstm --hours 4       # the paper's A3C LSTM
    python -m bench.pong --frames 2e6 --hours 0.02 --report-seconds 10   # a smoke test

ps-serve --env ALE/Pong-v5 --algo a3c --local-workers 2: the paper's network and preprocessing and the
Atari defaults, with --total-steps the frame budget (so the learning rate anneals to 0 over it). Every
episode's raw score comes from the server's TensorBoard events (<run-dir>/tb). Every --report-seconds
it prints the score against frames and wall time; at the end it writes curve.csv and curve.png to the
run dir and reports the frames and wall time at which the mean of the last 20 episodes first reached
0, 10 and 18. A frame is one emulator frame: one agent step is 4.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from bench.cartpole import StatusPoller
from bench.common import bin_path, console, fresh_run_dir, launch, print_table, stop_process, wait_for_file
from ps.api.envs import ATARI_FRAME_SKIP

PONG = "ALE/Pong-v5"
MILESTONES = (0.0, 10.0, 18.0)
WINDOW = 20  # episodes in the running mean


class EpisodeEvents:
    """The episodes' raw scores as the server writes them to its TensorBoard event files, read as they grow."""

    def __init__(self, tb_dir: Path) -> None:
        self.tb_dir = tb_dir
        self.loaders: dict[Path, object] = {}
        self.episodes: list[tuple[float, int, float]] = []  # (unix time, frames, score)

    def poll(self) -> list[tuple[float, int, float]]:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        new = []
        for path in sorted(self.tb_dir.glob("events.out.tfevents.*")):
            if path not in self.loaders:
                self.loaders[path] = EventFileLoader(str(path))
            for event in self.loaders[path].Load():
                for value in event.summary.value:
                    if value.tag == "charts/episode_return":
                        new.append((event.wall_time, event.step * ATARI_FRAME_SKIP, _scalar(value)))
        new.sort()
        self.episodes += new
        return new


def _scalar(value) -> float:
    """A scalar summary's value, whether written as simple_value or (read back) as a tensor."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    from tensorboard.util import tensor_util
    return float(tensor_util.make_ndarray(value.tensor))


class Curve:
    """Mean of the last WINDOW episodes against frames and wall time, and when it first passed each milestone."""

    def __init__(self, started_unix: float) -> None:
        self.started = started_unix
        self.rows: list[tuple[float, int, float, float]] = []  # (seconds, frames, score, mean20)
        self.reached: dict[float, tuple[float, int]] = {}
        self.scores: list[float] = []

    def add(self, episodes) -> None:
        for unix, frames, score in episodes:
            self.scores.append(score)
            mean = sum(self.scores[-WINDOW:]) / len(self.scores[-WINDOW:])
            seconds = unix - self.started
            self.rows.append((seconds, frames, score, mean))
            if len(self.scores) >= WINDOW:
                for m in MILESTONES:
                    if mean >= m and m not in self.reached:
                        self.reached[m] = (seconds, frames)

    @property
    def mean(self) -> float | None:
        return self.rows[-1][3] if self.rows else None

    def write(self, run_dir: Path, title: str) -> None:
        with open(run_dir / "curve.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["wall_seconds", "frames", "score", f"mean{WINDOW}"])
            w.writerows((round(s, 1), n, score, round(m, 3)) for s, n, score, m in self.rows)
        if not self.rows:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (by_frames, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        frames = [r[1] / 1e6 for r in self.rows]
        hours = [r[0] / 3600 for r in self.rows]
        for ax, x, label in ((by_frames, frames, "frames (millions)"), (by_time, hours, "wall time (hours)")):
            ax.plot(x, [r[2] for r in self.rows], ".", alpha=0.25, label="episode score")
            ax.plot(x, [r[3] for r in self.rows], "-", label=f"mean of last {WINDOW}")
            ax.axhline(18, color="grey", linestyle=":")
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        by_frames.set_ylabel("score")
        by_frames.legend(loc="lower right")
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(run_dir / "curve.png", dpi=110)
        plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pong", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lstm", action="store_true", help="the paper's A3C LSTM (default feed-forward)")
    p.add_argument("--target", type=float, default=18.0, help=f"stop when the mean of the last {WINDOW} reaches it")
    p.add_argument("--frames", type=float, default=40e6, help="frame budget (--total-steps is a quarter of it)")
    p.add_argument("--hours", type=float, default=2.0, help="wall budget")
    p.add_argument("--workers", type=int, default=2, help="--local-workers")
    p.add_argument("--overlap-push", action="store_true", help="the workers' --overlap-push")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--report-seconds", type=float, default=60.0, help="print the score this often")
    p.add_argument("--run-dir", type=Path, default=None, help="default runs/bench-pong-{ff,lstm}")
    args = p.parse_args(argv)
    if args.frames < ATARI_FRAME_SKIP or args.hours <= 0 or args.workers < 1 or args.report_seconds <= 0:
        p.error("--frames, --hours, --workers and --report-seconds must be positive")
    name = "lstm" if args.lstm else "ff"
    run_dir = fresh_run_dir(args.run_dir or Path(f"runs/bench-pong-{name}"))
    cmd = [bin_path("ps-serve"), "--env", PONG, "--algo", "a3c", "--port", "0", "--run-dir", str(run_dir),
           "--local-workers", str(args.workers), "--seed", str(args.seed),
           "--worker-timeout", "300",  # a loaded shared machine can take a minute to build a worker's envs
           "--total-steps", str(int(args.frames) // ATARI_FRAME_SKIP),
           *(["--lstm"] if args.lstm else []), *(["--overlap-push"] if args.overlap_push else [])]
    console.print(f"bench.pong: {' '.join(cmd[1:])}")
    server = launch(cmd, run_dir / "server.log")
    events = EpisodeEvents(run_dir / "tb")
    curve = Curve(server.started_unix)
    why, poller = "the server stopped", None
    try:
        poller = StatusPoller(int(wait_for_file(run_dir / "port", server.proc)), server.started_unix)
        deadline = server.started_unix + args.hours * 3600
        next_report = time.time() + args.report_seconds
        while server.proc.poll() is None:
            time.sleep(2.0)
            curve.add(events.poll())
            if time.time() >= next_report:
                report_line(curve, server.started_unix, poller)
                next_report += args.report_seconds
            if curve.mean is not None and len(curve.scores) >= WINDOW and curve.mean >= args.target:
                why = f"the mean of the last {WINDOW} reached {args.target:g}"
                break
            if time.time() >= deadline:
                why = f"the wall budget ({args.hours:g} h) ran out"
                break
    except KeyboardInterrupt:
        why = "interrupted"
    finally:
        stop_process(server.proc, timeout=60)
        if poller:
            poller.close()
    curve.add(events.poll())
    curve.write(run_dir, f"Pong ({name}, {args.workers} workers): score against frames and wall time")
    report_line(curve, server.started_unix, poller)
    if why == "the server stopped" and (run_dir / "summary.json").exists():
        why += f" ({json.loads((run_dir / 'summary.json').read_text()).get('stop_reason')})"
    console.print(f"stopped: {why}; {len(curve.scores)} episodes; curve in {run_dir}/curve.csv and curve.png")
    print_table(f"Pong ({name}): first time the mean of the last {WINDOW} episodes reached",
                ["score", "frames", "wall time"],
                [[f"{m:g}", f"{curve.reached[m][1]:,}" if m in curve.reached else "not reached",
                  _clock(curve.reached[m][0]) if m in curve.reached else "-"] for m in MILESTONES])
    return 0


def report_line(curve: Curve, started_unix: float, poller) -> None:
    frames = poller.last.get("env_steps", 0) * ATARI_FRAME_SKIP if poller else 0
    mean = "-" if curve.mean is None else f"{curve.mean:+.1f}"
    console.print(f"{_clock(time.time() - started_unix)}  frames {frames:>12,}  episodes {len(curve.scores):>5}  "
                  f"mean{WINDOW} {mean}")


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


if __name__ == "__main__":
    raise SystemExit(main())
