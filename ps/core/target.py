"""The target network theta- of the value-based methods: a second flat buffer on the server.

Copied from theta whenever the global step T crosses a multiple of target_update_steps (the paper's
"every 40,000 frames"). It has its own version (1 at adoption, +1 per copy) so a worker fetches it
only when the version it holds is not the current one. Not thread-safe: the server lock guards it.
"""
from __future__ import annotations

import numpy as np


class TargetNetwork:
    def __init__(self, theta: np.ndarray, update_steps: int, global_step: int = 0) -> None:
        self.params = theta.copy()
        self.update_steps = update_steps
        self.version = 1
        self.copied_at_step = global_step
        self.copies = 0     # copies since adoption (not counting the initial one)
        self.sends: dict[int, int] = {}  # live worker id -> times its parameters went out to that worker
        self.sends_departed = 0          # sends to workers since reaped (forget)
        self._bytes = self.params.tobytes()  # cached: sent many times, changed rarely

    def maybe_copy(self, theta: np.ndarray, global_step: int) -> bool:
        """theta- <- theta if T crossed a multiple of update_steps since the last copy."""
        if global_step // self.update_steps <= self.copied_at_step // self.update_steps:
            return False
        np.copyto(self.params, theta)
        self._bytes = self.params.tobytes()
        self.version += 1
        self.copies += 1
        self.copied_at_step = global_step
        return True

    def reply_for(self, worker_id: int, held_version: int | None) -> tuple[int, bytes]:
        """(version, parameters) for a reply to a worker; the parameters are empty when it holds this
        version already. held_version None: always send (a pull)."""
        if held_version == self.version:
            return self.version, b""
        self.sends[worker_id] = self.sends.get(worker_id, 0) + 1
        return self.version, self._bytes

    def forget(self, worker_id: int) -> None:
        """A worker was reaped: its count joins the total, so `sends` holds live workers only."""
        self.sends_departed += self.sends.pop(worker_id, 0)

    def age(self, global_step: int) -> int:
        """Global steps since the last copy."""
        return global_step - self.copied_at_step

    def status(self, global_step: int) -> dict:
        return {"version": self.version, "age_steps": self.age(global_step), "copies": self.copies,
                "sends_total": self.sends_departed + sum(self.sends.values()), "sends": {str(k): v for k, v in self.sends.items()},
                "update_steps": self.update_steps}

    # --- checkpoints: the buffer and the meta the server adds to its state_dict ------------------
    def meta(self) -> dict:
        return {"version": self.version, "copied_at_step": self.copied_at_step, "copies": self.copies}

    def load(self, params: np.ndarray, meta: dict) -> None:
        np.copyto(self.params, params)
        self._bytes = self.params.tobytes()
        self.version = int(meta["version"])
        self.copied_at_step = int(meta["copied_at_step"])
        self.copies = int(meta["copies"])
