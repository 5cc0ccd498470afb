"""Checkpoints: the server's whole learning state in one file, written atomically, the last 3 kept.

The file format (ps/api/saved.py, which ps-eval reads too): a short text header (magic, SHA-256 of
the payload), then an uncompressed .npz payload: the arrays of `ParameterServer.state_dict()` plus
its JSON `meta`. A file that is
truncated, bit-flipped, or whose arrays do not fit its layout is refused with one line naming it
and, when there is one, an older checkpoint that verifies.

Written as: temp file in the same directory -> fsync -> rename -> fsync the directory, so a crash
at any moment leaves either the old or the new checkpoint, never half of one.
"""
from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from pathlib import Path

import numpy as np

from ps.api.layout import Layout
from ps.api.shards import MAX_SHARDS, shard_slice
from ps.api.saved import UnreadableCheckpoint, decode_checkpoint, encode_checkpoint, write_checkpoint
from ps.records.atomic import write_atomic
from ps.records.faults import DiskFaults

log = logging.getLogger("ps.checkpoint")
KEEP = 3
DIR_NAME = "checkpoints"
_NAME = re.compile(r"^ckpt-(\d{8})\.a3c$")


class CheckpointError(Exception):
    """A checkpoint cannot be used; the message is one line that names the file and what to do."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / DIR_NAME


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files in `directory`, newest first (by sequence number, not by clock)."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def encode(state: dict) -> bytes:
    """The file's bytes for a state {"arrays": {name: ndarray}, "meta": {json-able}}."""
    return encode_checkpoint(state["arrays"], state["meta"])


def decode(blob: bytes, name: str) -> dict:
    """The state stored in a checkpoint's bytes; CheckpointError if the checksum or layout is wrong."""
    try:
        arrays, meta = decode_checkpoint(blob, name)
    except UnreadableCheckpoint as err:
        raise CheckpointError(str(err)) from None
    _check_layout(arrays, meta, name)
    return {"arrays": arrays, "meta": meta}


NONNEGATIVE_STATS = ("shared-rmsprop", "rmsprop")  # optimizers whose opt.* arrays are running means of d^2


def _check_layout(arrays: dict, meta: dict, name: str) -> None:
    """Every array against the layout, one by one: theta, the optimizer's statistics (shared and per
    worker), the flat arrays meta lists (theta- ...): float32, the layout's size, finite; RMSProp's
    statistics non-negative. A NaN or negative statistic would load and turn every parameter into
    NaN one push later."""
    try:
        layout = Layout.from_dict(meta["layout"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"checkpoint {name} has no readable layout") from None
    if layout.hash != meta.get("layout_hash"):
        raise CheckpointError(f"checkpoint {name}: layout does not match its hash {meta.get('layout_hash')}")
    for key in ("version", "global_step"):
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool) or meta[key] < 0:
            raise CheckpointError(f"checkpoint {name}: meta {key!r} is {meta.get(key)!r}, not a count")
    spec = meta.get("run_spec") if isinstance(meta.get("run_spec"), dict) else {}
    optimizer = spec.get("optimizer", "shared-rmsprop")
    stats = sorted(k for k in arrays if k.startswith("opt."))
    if optimizer == "shared-rmsprop" and "opt.g" not in arrays and spec:
        raise CheckpointError(f"checkpoint {name}: array 'opt.g' (shared RMSProp statistics) is missing")
    flat_arrays = meta.get("flat_arrays", ())
    if not isinstance(flat_arrays, (list, tuple)) or not all(isinstance(k, str) for k in flat_arrays):
        raise CheckpointError(f"checkpoint {name}: meta 'flat_arrays' is not a list of names")
    size = _slice_size(layout, meta.get("shard", [0, 1]), name)
    for key in dict.fromkeys(("theta", *flat_arrays, *stats)):
        a = arrays.get(key)
        if a is None or a.dtype != np.float32 or a.shape != (size,):
            got = ("missing" if a is None else f"{a.size} {a.dtype}" if a.ndim == 1
                   else f"{a.size} {a.dtype} of shape {a.shape}")
            raise CheckpointError(f"checkpoint {name}: array {key!r} is {got}, "
                                  f"layout {layout.hash} needs {size} float32")
        if not np.isfinite(a).all():
            raise CheckpointError(f"checkpoint {name}: array {key!r} holds NaN or Inf "
                                  f"({int(np.count_nonzero(~np.isfinite(a)))} of {a.size} values)")
        if key.startswith("opt.") and optimizer in NONNEGATIVE_STATS and (a < 0).any():
            raise CheckpointError(f"checkpoint {name}: array {key!r} holds negative {optimizer} statistics "
                                  f"({int(np.count_nonzero(a < 0))} of {a.size} values)")


def _slice_size(layout: Layout, shard, name: str) -> int:
    """How many elements a checkpoint's flat arrays hold: the layout's, or its shard's slice."""
    if not (isinstance(shard, list) and len(shard) == 2 and all(type(x) is int for x in shard)
            and 0 <= shard[0] < shard[1] <= MAX_SHARDS):
        raise CheckpointError(f"checkpoint {name}: meta 'shard' is {shard!r}, not [index, count]")
    return shard_slice(layout, *shard).size


def save(directory: Path, state: dict, keep: int = KEEP) -> Path:
    """Write a new checkpoint atomically and delete all but the newest `keep`. Returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = list_checkpoints(directory)
    seq = int(_NAME.match(existing[0].name).group(1)) + 1 if existing else 1
    path = directory / f"ckpt-{seq:08d}.a3c"
    write_atomic(path, lambda f: write_checkpoint(f, state["arrays"], state["meta"]),
                 tmp=directory / f".{path.name}.tmp")
    _fsync_dir(directory)
    for old in list_checkpoints(directory)[keep:]:
        old.unlink(missing_ok=True)
    return path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: Path) -> dict:
    try:
        blob = Path(path).read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err.strerror}") from None
    return decode(blob, str(path))


def tags(directory: Path) -> list[str]:
    """The tags of the checkpoints in `directory` that verify, newest first ("" for untagged ones)."""
    out = []
    for path in list_checkpoints(directory):
        try:
            out.append(str(load(path)["meta"].get("tag", "")))
        except CheckpointError:
            continue
    return out


def load_tagged(directory: Path, tag: str) -> tuple[Path, dict]:
    """The newest checkpoint that verifies and carries `tag`; CheckpointError when none does."""
    for path in list_checkpoints(directory):
        try:
            state = load(path)
        except CheckpointError:
            continue
        if state["meta"].get("tag") == tag:
            return path, state
    raise CheckpointError(f"no checkpoint in {directory} is tagged {tag!r} (a consistent set of the shards' "
                          f"checkpoints): drop --resume-tag to resume the newest")


def load_latest(directory: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint and its state, None when there is none.

    A newest file that fails to verify is refused (never silently skipped: the user decides to
    lose the work since the older one); the error offers the newest older file that verifies.
    """
    files = list_checkpoints(directory)
    if not files:
        return None
    try:
        return files[0], load(files[0])
    except CheckpointError as err:
        older = next((p for p in files[1:] if _verifies(p)), None)
        offer = (f"; {older} verifies: move {files[0].name} away to resume from it, or pass --fresh"
                 if older else "; no older good checkpoint: pass --fresh to start over")
        raise CheckpointError(f"{err}{offer}") from None


def _verifies(path: Path) -> bool:
    try:
        load(path)
        return True
    except CheckpointError:
        return False


def set_aside(run_dir: Path, names: tuple[str, ...]) -> Path | None:
    """--fresh: move an earlier run's checkpoints and records into run_dir/replaced-<time>/ (nothing is
    deleted: the old run can still be inspected or resumed by moving them back)."""
    present = [Path(run_dir) / n for n in names if (Path(run_dir) / n).exists()]
    if not present:
        return None
    target = Path(run_dir) / time.strftime("replaced-%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for p in present:
        os.replace(p, target / p.name)
    return target


class Checkpointer:
    """Writes `state_fn()` every `every_seconds` from a background thread, and once more at stop().

    With a `pushlog` (ps/records/pushlog.py), pushes.csv's rows of the updates in the state are
    written and fsynced first and their count goes into meta "pushlog_rows" (the resume cuts the file
    back to it). A periodic checkpoint whose rows cannot be written waits for the next period; a failed
    write is counted in `faults` (kind "checkpoint") and retried, never raised from the thread.
    """

    def __init__(self, state_fn, directory: Path, every_seconds: float, keep: int = KEEP,
                 faults: DiskFaults | None = None, pushlog=None, aligned: bool = False) -> None:
        self._state_fn, self._dir, self._every, self._keep = state_fn, directory, every_seconds, keep
        # A sharded run's shards write at the same wall-clock instants (multiples of every_seconds), each
        # tagged with the instant's number, so that one tag names a consistent set across the shards.
        self._aligned = aligned and every_seconds > 0
        self._last: tuple | None = None  # (version, T) of the last write: a periodic one repeats none
        self.faults = faults or DiskFaults()
        self._pushlog = pushlog
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # the periodic and the final write never interleave
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self.written = 0

    def start(self) -> None:
        if self._every > 0:
            self._thread.start()

    def _state(self, final: bool) -> dict | None:
        if self._pushlog is None:
            return self._state_fn()
        with self._pushlog.checkpoint_sync() as sync:
            state = self._state_fn()
            if state is None:
                return None
            rows = sync(int(state["meta"]["version"]))
            if rows is None:
                if not final:
                    raise PushLogBehind("pushes.csv's rows could not be written first: checkpoint deferred")
                rows = self._pushlog.rows_on_disk  # the last chance: keep the learning, say what the csv holds
                log.warning("final checkpoint: pushes.csv holds only %d rows (a disk fault)", rows)
            state["meta"]["pushlog_rows"] = rows
            return state

    def write(self, final: bool = False, tag: str = "") -> Path | None:
        """May run concurrently. Writes a checkpoint unless there is nothing learned yet; raises on failure."""
        with self._write_lock:
            state = self._state(final)
            if state is None:
                return None
            point = (state["meta"]["version"], state["meta"]["global_step"])
            if not final and point == self._last:
                return None  # nothing learned since: the kept checkpoints stay the last ones that differ
            state["meta"]["tag"] = "final" if final else tag
            start = time.perf_counter()
            path = save(self._dir, state, self._keep)
            self._last = point
            self.written += 1
            log.debug("checkpoint %s (version %s, T %s) in %.3f s", path, state["meta"]["version"],
                      state["meta"]["global_step"], time.perf_counter() - start)
            return path

    def _run(self) -> None:
        while not self._stop.wait(self._wait()):
            try:
                self.write(tag=f"t{round(time.time() / self._every)}" if self._aligned else "")
            except Exception as err:  # noqa: BLE001 - a full disk must not kill the run: count, say, retry
                self.faults.record("checkpoint", err, f"trying again in {self._every:g} s")

    def _wait(self) -> float:
        """Seconds to the next write: every_seconds, or to the next multiple of it on the wall clock."""
        if not self._aligned:
            return self._every
        now = time.time()
        return (math.floor(now / self._every) + 1) * self._every - now

    def stop(self) -> Path | None:
        """Stop the periodic writes and write the final checkpoint (raises if it fails)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.write(final=True)


class PushLogBehind(OSError):
    """pushes.csv could not take the rows a checkpoint would cover (a full disk ...)."""
