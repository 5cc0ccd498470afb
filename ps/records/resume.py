"""At start: resume the run in --run-dir from its newest checkpoint, or start over (--fresh).

Resuming also cuts pushes.csv back to the checkpoint, so its rows still agree with the restored
version and T (the pushes after the checkpoint were lost with the server that applied them).
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

log = logging.getLogger("ps.resume")
RECORDS = (checkpoint.DIR_NAME, "pushes.csv", "summary.json")
STOPPING_FIELDS = ("total_steps", "target_return")  # may change across a restart; the rest defines the run


def prepare(spec: RunSpec, config: ServerConfig) -> tuple[Path, dict] | None:
    """The checkpoint to resume from and its state, or None to start fresh (earlier records set aside)."""
    run_dir = Path(config.run_dir)
    found = None if config.fresh else checkpoint.load_latest(checkpoint.checkpoint_dir(run_dir))
    if found is None:
        moved = checkpoint.set_aside(run_dir, RECORDS)
        if moved is not None:
            log.info("starting fresh: the earlier run's records are in %s", moved)
        return None
    path, state = found
    _check_same_run(spec, state["meta"].get("run_spec", {}), path)
    cut_pushlog(run_dir / "pushes.csv", int(state["meta"]["version"]))
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


def cut_pushlog(path: Path, version: int) -> None:
    """Keep only the rows of updates the checkpoint contains (applied_version < version)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    col = rows[0].index("applied_version") if "applied_version" in rows[0] else None
    if col is None:
        return
    keep = [rows[0]] + [r for r in rows[1:] if len(r) > col and r[col].isdigit() and int(r[col]) < version]
    if len(keep) == len(rows):
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(keep)
    os.replace(tmp, path)
