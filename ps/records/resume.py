"""At start: resume the run in --run-dir from its newest checkpoint, or start over (--fresh).

A run whose newest checkpoint is already over (its target reached or its total steps done, under the
stopping fields given now) is finished: `prepare` raises RunFinished before anything in the run dir is
touched, and ps-serve says so in one line and exits 0 (a restarted server never rewrites a finished
run's summary). Raising --total-steps or --target-return past the checkpoint continues it instead.

Resuming also cuts pushes.csv back to the checkpoint (to the row count it recorded), so its rows
still agree with the restored version and T (the pushes after the checkpoint were lost with the
server that applied them).
"""
from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from ps.records import checkpoint
from ps.records.checkpoint import CheckpointError
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.episodes import EpisodeWindow
from ps.core.evaluations import EvaluationRecord
from ps.core.stopping import stop_rule

log = logging.getLogger("ps.resume")
RECORDS = (checkpoint.DIR_NAME, "pushes.csv", "summary.json")
# May change across a restart (when and how the run stops, and its evaluation); the rest defines the run.
STOPPING_FIELDS = ("total_steps", "target_return", "target_on", "eval_every", "eval_episodes", "eval_deterministic")


class RunFinished(Exception):
    """The run in --run-dir is already over: nothing to resume, nothing to rewrite."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"run already finished ({reason}; checkpoint {path})")
        self.path, self.reason = path, reason


def finished_reason(spec: RunSpec, meta: dict) -> str | None:
    """Why a checkpoint's run is over under `spec`'s stopping fields (the server's own stop rule,
    ps/core/stopping.py), or None when it has more to do."""
    episodes = EpisodeWindow()
    episodes.load_state(meta["episodes"])
    evaluations = EvaluationRecord()
    evaluations.load_state(meta.get("evaluations"))
    stop = stop_rule(spec, episodes, evaluations.latest, int(meta["global_step"]))
    return None if stop is None else stop.reason


def prepare(spec: RunSpec, config: ServerConfig) -> tuple[Path, dict] | None:
    """The checkpoint to resume from and its state, or None to start fresh (earlier records set aside)."""
    run_dir = Path(config.run_dir)
    directory = checkpoint.checkpoint_dir(run_dir)
    found = None if config.fresh else (checkpoint.load_tagged(directory, config.resume_tag) if config.resume_tag
                                       else checkpoint.load_latest(directory))
    if found is None:
        moved = checkpoint.set_aside(run_dir, RECORDS)
        if moved is not None:
            log.info("starting fresh: the earlier run's records are in %s", moved)
        return None
    path, state = found
    _check_same_run(spec, state["meta"].get("run_spec", {}), path)
    _check_same_shard(config, state["meta"].get("shard", [0, 1]), path)
    reason = finished_reason(spec, state["meta"])
    if reason is not None:
        raise RunFinished(path, reason)  # before the push log is cut: a finished run dir is left as it is
    rows = state["meta"].get("pushlog_rows")
    cut_pushlog(run_dir / "pushes.csv", int(state["meta"]["version"]), rows if isinstance(rows, int) else None)
    return path, state


def _check_same_run(spec: RunSpec, saved: dict, path: Path) -> None:
    now = json.loads(spec.to_json())
    changed = sorted(k for k in now.keys() & saved.keys() if now[k] != saved[k])
    defining = [k for k in changed if k not in STOPPING_FIELDS]
    if defining:
        diffs = ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in defining)
        raise CheckpointError(f"checkpoint {path} belongs to a different run ({diffs}): give the same flags "
                              f"to resume it, or --fresh to start over")
    for k in changed:
        log.warning("resuming with %s %r (the checkpoint's run had %r)", k, now[k], saved[k])


def _check_same_shard(config: ServerConfig, saved, path: Path) -> None:
    """A shard resumes only its own slice: a checkpoint of another shard, or of a run cut into another
    number of shards, is refused."""
    now = [config.shard_index, config.shards]
    if list(saved) != now:
        raise CheckpointError(f"checkpoint {path} holds shard {saved[0]} of {saved[1]}, this server is shard "
                              f"{now[0]} of {now[1]}: give the same --shard and --shards (or --fresh)")


def cut_pushlog(path: Path, version: int, rows: int | None = None) -> None:
    """Keep only the rows of the updates the checkpoint contains.

    With `rows` (the checkpoint's meta "pushlog_rows": the rows it fsynced before it was written,
    in version order), the file is cut after its header and that many rows; else (older
    checkpoints) the rows with applied_version < version are kept. A partial last line (a crash in
    the middle of a write) goes either way.
    """
    if not path.exists():
        return
    if rows is not None:
        _truncate_after(path, rows + 1)
        return
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    if not table:
        return
    col = table[0].index("applied_version") if "applied_version" in table[0] else None
    if col is None:
        return
    width = len(table[0])
    keep = [table[0]] + [r for r in table[1:] if len(r) == width and r[col].isdigit() and int(r[col]) < version]
    if len(keep) == len(table):
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(keep)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _truncate_after(path: Path, lines: int) -> None:
    """Cut the file after its first `lines` complete lines (or after its last complete line, when it
    has fewer: a row cut in half by a crash is not a row)."""
    offset, seen = 0, 0
    with open(path, "rb") as f:
        while seen < lines:
            line = f.readline()
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            seen += 1
    if max(0, seen - 1) < lines - 1:
        log.warning("%s has %d rows, the checkpoint counted %d: the missing rows were lost to a disk fault",
                    path, max(0, seen - 1), lines - 1)
    if offset != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())
