"""The stop rule, one function for the live server and for a checkpoint read at start (so a run dir
the server would have stopped is never resumed, and one it would not have is never called finished)."""
from __future__ import annotations

from typing import NamedTuple

from ps.api.spec import RunSpec
from ps.core.episodes import EpisodeWindow
from ps.core.evaluations import Evaluation, eval_target_reason


class Stop(NamedTuple):
    reason: str
    target_reached: bool  # False: the step budget ran out


def stop_rule(spec: RunSpec, episodes: EpisodeWindow, latest_eval: Evaluation | None, global_step: int) -> Stop | None:
    """Why the run is over, or None: the target on the latest evaluation round (RunSpec.target_on_eval)
    or on the mean of the last 100 training episodes, else total_steps reached."""
    on_eval = eval_target_reason(spec, latest_eval)
    if on_eval:
        return Stop(on_eval, True)
    target = spec.target_return
    if target is not None and not spec.target_on_eval and episodes.full and episodes.mean >= target:
        return Stop(f"mean100 {episodes.mean:.1f} >= target {target:g}", True)
    if global_step >= spec.total_steps:
        return Stop(f"total steps {spec.total_steps} reached", False)
    return None
