"""Evaluation rounds reported by evaluators (worker/evaluator.py): the latest and the best, their
checks, and the stop rule when the target is judged on them (RunSpec.target_on).

An evaluator plays eval_episodes episodes with the parameters of one version, learning nothing, and
reports their returns; the server only records them. Not thread-safe: the caller holds the server lock.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from ps.api.spec import MAX_EVAL_EPISODES, RunSpec
from ps.core.errors import invalid
from ps.core.validate import MAX_EPISODE_LENGTH, MAX_EPISODE_RETURN


@dataclass(frozen=True)
class Evaluation:
    """One round: its episodes' mean and (population) std return, played at `version`, recorded at T
    = global_step, `wall_seconds` into the run."""
    mean: float
    std: float
    episodes: int
    mean_length: float
    version: int
    global_step: int
    wall_seconds: float


def check_report(version: int, current_version: int, returns, lengths) -> None:
    """A ReportEvaluation's fields; the cheap bounds first, so a huge report is refused before its
    values are read."""
    if not 0 <= version <= current_version:
        raise invalid("bad_version", f"evaluation version {version} is outside 0..{current_version} (the current version)")
    if not 1 <= len(returns) <= MAX_EVAL_EPISODES:
        raise invalid("bad_evaluation", f"an evaluation holds 1..{MAX_EVAL_EPISODES} episodes, got {len(returns)}")
    if len(lengths) != len(returns):
        raise invalid("bad_evaluation", f"{len(returns)} evaluation returns but {len(lengths)} lengths")
    if not all(math.isfinite(r) for r in returns):
        raise invalid("non_finite", "an evaluation return is NaN or Inf")
    if any(abs(r) > MAX_EPISODE_RETURN for r in returns):
        raise invalid("bad_evaluation", f"an evaluation return is outside -{MAX_EPISODE_RETURN:g}..{MAX_EPISODE_RETURN:g}")
    if any(not 0 < n <= MAX_EPISODE_LENGTH for n in lengths):
        raise invalid("bad_evaluation", f"an evaluation episode length is outside 1..{MAX_EPISODE_LENGTH}")


class EvaluationRecord:
    def __init__(self) -> None:
        self.latest: Evaluation | None = None
        self.best_mean: float | None = None
        self.rounds = 0

    def add(self, returns, lengths, version: int, global_step: int, wall_seconds: float) -> Evaluation:
        ev = Evaluation(statistics.fmean(returns), statistics.pstdev(returns), len(returns),
                        statistics.fmean(lengths), version, global_step, wall_seconds)
        self.latest = ev
        self.best_mean = ev.mean if self.best_mean is None else max(self.best_mean, ev.mean)
        self.rounds += 1
        return ev

    def status(self) -> dict:
        """The status document's (and summary.json's) eval_* keys; None before the first round."""
        ev = self.latest
        return {"eval_mean": None if ev is None else round(ev.mean, 3),
                "eval_std": None if ev is None else round(ev.std, 3),
                "eval_episodes": None if ev is None else ev.episodes,
                "eval_version": None if ev is None else ev.version,
                "eval_steps": None if ev is None else ev.global_step,
                "eval_wall_seconds": None if ev is None else round(ev.wall_seconds, 3),
                "best_eval_mean": None if self.best_mean is None else round(self.best_mean, 3),
                "evaluations": self.rounds}

    def state(self) -> dict:
        """For a checkpoint's meta."""
        return {"latest": None if self.latest is None else asdict(self.latest), "best_mean": self.best_mean,
                "rounds": self.rounds}

    def load_state(self, state: dict | None) -> None:
        if not state:
            return  # a checkpoint from before evaluations
        self.latest = Evaluation(**state["latest"]) if state.get("latest") else None
        self.best_mean, self.rounds = state.get("best_mean"), int(state.get("rounds", 0))


def eval_target_reason(spec: RunSpec, latest: Evaluation | None) -> str | None:
    """Why the run is over when its target is judged on evaluation (RunSpec.target_on_eval): the
    latest round's mean reached --target-return. None otherwise."""
    target = spec.target_return
    if target is None or not spec.target_on_eval or latest is None or latest.mean < target:
        return None
    return f"eval_mean {latest.mean:.1f} >= target {target:g} (version {latest.version}, {latest.episodes} episodes)"
