"""The server's learned state as a checkpoint document, and its restore (ps/checkpoint.py does the files).

A mixin of ps.core.ParameterServer: both methods take the server lock themselves.
"""
from __future__ import annotations

import json
import time

import numpy as np

from .layout import Layout


class CheckpointState:
    def state_dict(self) -> dict | None:
        """May run concurrently. Everything learned, copied under the lock: {"arrays", "meta"}; None
        before any parameters exist. A feature with more state adds its arrays and meta keys here
        (e.g. arrays["target"] + meta["target_version"]; list flat-sized arrays in meta["flat_arrays"]
        so a checkpoint whose sizes do not fit its layout is refused) and reads them back below."""
        with self._lock:
            if self.layout is None:
                return None
            arrays = {"theta": self.theta.copy()}
            arrays.update({f"opt.{k}": np.array(v, copy=True) for k, v in self.optimizer.state().items()})
            meta = {"version": self.version, "global_step": self.global_step, "run_spec": json.loads(self.spec.to_json()),
                    "layout": self.layout.to_dict(), "layout_hash": self.layout.hash, "flat_arrays": [],
                    "episodes": {"returns": list(self.episodes.returns), "count": self.episodes.episodes,
                                 "best_mean100": self.episodes.best_mean100},
                    "staleness_counts": {str(k): v for k, v in self.staleness.counts.items()},
                    "rejected": dict(self.rejected), "dropped": dict(self.dropped),
                    "wall_seconds": time.monotonic() - self.started_at,
                    "target_reached_at": self.target_reached_at, "next_worker_id": self.workers._next_id}
            if self.target is not None:  # theta- and its version (value-based methods)
                arrays["target"] = self.target.params.copy()
                meta["flat_arrays"].append("target")
                meta["target"] = self.target.meta()
            return {"arrays": arrays, "meta": meta}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict() (at start, before serving): T, version, lr schedule and statistics continue."""
        arrays, meta = state["arrays"], state["meta"]
        with self._lock:
            layout = Layout.from_pairs((e["name"], e["shape"]) for e in meta["layout"])
            self._adopt(layout, arrays["theta"].astype("<f4").tobytes())
            self.optimizer.load_state({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
            self.version, self.global_step = int(meta["version"]), int(meta["global_step"])
            for r in meta["episodes"]["returns"]:
                self.episodes.returns.append(float(r))
            self.episodes.episodes = int(meta["episodes"]["count"])
            self.episodes.best_mean100 = meta["episodes"]["best_mean100"]
            self.staleness.counts.update({int(k): int(v) for k, v in meta["staleness_counts"].items()})
            self.staleness.total = sum(self.staleness.counts.values())
            self.rejected.update(meta["rejected"])
            self.dropped.update(meta.get("dropped", {}))
            self.started_at = time.monotonic() - float(meta["wall_seconds"])
            self.target_reached_at = tuple(meta["target_reached_at"]) if meta["target_reached_at"] else None
            self.workers._next_id = int(meta["next_worker_id"])  # ids stay unique across restarts
            if self.target is not None and "target" in arrays:
                self.target.load(arrays["target"], meta["target"])
            self._check_stop()  # a finished run that restarts stops at once instead of applying more
