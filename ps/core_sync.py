"""Synchronous mode of the parameter server (--sync): rounds of one push per live worker.

A mixin of ps.core.ParameterServer, kept apart so the core reads as the paper's asynchronous update;
every method here runs with the server lock held.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from . import optim
from .outcome import Outcome
from .staleness import staleness

log = logging.getLogger("ps")


class SyncRounds:
    def _join_round(self, worker_id: int, base_version: int, d, norm: float) -> Outcome:
        """Synchronous mode: add to the round, wait until every live worker has pushed (or the
        timeout drops the missing ones), then return with the round's single update applied."""
        rnd = self._round
        rnd.add(worker_id, base_version, d)
        my_round = rnd.round_id
        deadline = time.monotonic() + self.spec.sync_timeout
        if rnd.complete(self._live_ids()):
            self._apply_round()
        while rnd.round_id == my_round:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = rnd.drop_missing(self._live_ids())
                if missing:
                    log.warning("sync round %d: no push from workers %s within %.1f s; applying without them",
                                my_round, missing, self.spec.sync_timeout)
                self._apply_round()
                break
            self._round_done.wait(remaining)
        version_at_apply, lr, seconds = rnd.results[my_round]
        return Outcome(True, "", version_at_apply, staleness(version_at_apply, base_version), lr, seconds)

    def _apply_round(self) -> None:
        """Apply the round's summed gradient once (caller holds the lock) and release its waiters."""
        rnd = self._round
        start = time.perf_counter()
        lr = optim.linear_lr(self.spec.lr, self.global_step, self.spec.total_steps)
        norm = float(np.linalg.norm(rnd.sum))
        optim.clip_by_global_norm(rnd.sum, self.spec.max_grad_norm, norm)
        self.optimizer.apply(self.theta, rnd.sum, lr, 0)  # one update for the round: one optimizer state
        rnd.finish(self.version, lr, time.perf_counter() - start)
        self.version += 1
        self._round_done.notify_all()

    def _live_ids(self) -> set[int]:
        return {w.worker_id for w in self.workers.connected}
