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
