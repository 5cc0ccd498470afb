"""What a finished run leaves behind: summary.json (a public format) and the final parameters."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ps.api.layout import Layout
from ps.records.atomic import write_atomic

SUMMARY_KEYS = ("wall_seconds", "env_steps", "updates", "episodes", "final_mean100", "staleness",
                "workers", "run_spec")


def summary_from_status(status: dict) -> dict:
    """summary.json's document: the published keys first, then the rest of the final status."""
    out = {k: status[k] for k in SUMMARY_KEYS}
    out.update({k: v for k, v in status.items() if k not in out and k != "state"})
    return out


def write_json_atomic(path: Path, doc: dict) -> None:
    write_atomic(path, (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode())


def write_final_params(path: Path, layout: Layout, theta: np.ndarray) -> None:
    """Named tensors (reshaped views of the flat buffer) plus the layout, in one .npz."""
    arrays = {e.name: theta[start:start + e.size].reshape(e.shape) for e, start in layout.offsets()}
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(tmp, __layout__=np.array(json.dumps(layout.to_dict())), **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


SHARD_PARAMS = "params_shard.npz"


def write_shard_params(path: Path, layout: Layout, shard, theta: np.ndarray) -> None:
    """A shard's final parameters: its slice of the flat buffer, the layout and [index, count]; a
    sharded run's params_final.npz is assembled from all of them (join_shard_params)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(tmp, __layout__=np.array(json.dumps(layout.to_dict())), __shard__=np.array([shard.index, shard.count]),
                 theta=theta)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def join_shard_params(paths: list[Path]) -> tuple[Layout, np.ndarray]:
    """The whole flat buffer from every shard's params_shard.npz (in shard order); ValueError in one
    line when one is missing, or they do not make one layout's buffer."""
    from ps.api.shards import shard_slices
    layout, theta = None, None
    for i, path in enumerate(paths):
        try:
            with np.load(path, allow_pickle=False) as npz:
                this, (index, count), part = Layout.from_dict(json.loads(str(npz["__layout__"]))), npz["__shard__"], npz["theta"]
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: no shard parameters ({type(err).__name__})") from None
        if layout is None:
            layout, theta = this, np.empty(this.size, np.float32)
        s = shard_slices(layout, len(paths))[i]
        if this.hash != layout.hash or (int(index), int(count)) != (i, len(paths)) or part.shape != (s.size,):
            raise ValueError(f"{path} is not shard {i} of {len(paths)} of layout {layout.hash}")
        theta[s.start:s.end] = part
    return layout, theta
