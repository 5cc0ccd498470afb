"""The parameter server's state and rules, with no RPC code (the gRPC layer is ps/server.py).

Every public method may run concurrently from gRPC threads; all shared state is touched only under
`self._lock`, and pushes are applied one at a time in the order they take the lock.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import optim
from .config import VALUE_BASED, RunSpec, ServerConfig
from .core_checkpoint import CheckpointState
from .core_sync import SyncRounds
from .episodes import EpisodeWindow
from .errors import RequestError, invalid, precondition, unknown_worker
from .events import Observer, PushEvent
from .layout import Layout
from .outcome import Outcome
from .pushlog import PushLog
from .staleness import StalenessStats, staleness
from .staleness_policy import decide
from .sync_round import SyncRound
from .target import TargetNetwork
from .validate import check_counts, decode_gradient
from .workers import WorkerRegistry

log = logging.getLogger("ps")


class PushResult(NamedTuple):  # a NamedTuple: _replace() is cheap on the push path
    applied: bool
    dropped_reason: str
    version: int
    params: bytes
    staleness: int
    stop: bool
    global_step: int
    learning_rate: float
    target_version: int = 0      # value-based methods: theta-'s version ...
    target_params: bytes = b""   # ... and its parameters, only when the worker's version differs


def _no_frame(result: PushResult, nbytes: int) -> tuple[bytes, bytes]:
    """push()'s frame when the caller gives none: the params are theta's bytes alone."""
    return b"", b""


def derive_seed(run_seed: int, worker_id: int) -> int:
    """A worker's seed: repeatable from the run seed and the worker id, distinct across workers."""
    return int(np.random.SeedSequence([run_seed, worker_id]).generate_state(1)[0] & 0x7FFFFFFF)


class ParameterServer(SyncRounds, CheckpointState):
    def __init__(self, spec: RunSpec, config: ServerConfig) -> None:
        self.spec = spec
        self.config = config
        self.incarnation = uuid.uuid4().hex[:12]
        self.run_dir = Path(config.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.layout: Layout | None = None
        self.theta: np.ndarray | None = None      # the one flat float32 parameter buffer
        self.optimizer = None                       # made when the layout is adopted (ps.optim)
        self.target: TargetNetwork | None = None   # theta- of the value-based methods (ps/target.py)
        self.version = 0
        self.global_step = 0
        self.workers = WorkerRegistry()
        self.staleness = StalenessStats()
        self.episodes = EpisodeWindow()
        self.rejected: dict[str, int] = {}
        self.dropped: dict[str, int] = {}          # valid pushes a staleness policy declined, by reason
        self._round: SyncRound | None = None       # --sync only
        self._round_done = threading.Condition(self._lock)
        self.stop_reason = ""
        self.stopped = threading.Event()
        self.started_at = time.monotonic()
        self.target_reached_at: tuple[float, int] | None = None  # (seconds, env steps)
        self.pushlog = PushLog(self.run_dir / "pushes.csv")
        self.apply_seconds_total = 0.0
        self.observers: list[Observer] = []

    # --- worker calls -------------------------------------------------------------------------
    def register(self, host: str, pid: int) -> tuple[int, int]:
        """May run concurrently. Returns (worker_id, seed)."""
        with self._lock:
            info = self.workers.add(host[:253], pid, lambda wid: derive_seed(self.spec.seed, wid))
            if self.optimizer is not None:
                self.optimizer.add_worker(info.worker_id)
            self._notify_workers()
        log.info("worker %d registered from %s (pid %d)", info.worker_id, info.host, pid)
        return info.worker_id, info.seed

    def pull(self, worker_id: int, layout: Layout, initial: bytes) -> tuple[bytes, int, bool, int]:
        """May run concurrently. Adopts the first offered parameters; later layouts must match."""
        with self._lock:
            self._known(worker_id)
            if self.layout is None:
                self._adopt(layout, initial)
                log.info("adopted layout %s (%d parameters) from worker %d", layout.hash, layout.size, worker_id)
            elif layout.hash != self.layout.hash:
                self._count("layout_mismatch")
                raise precondition("layout_mismatch",
                                   f"layout hash {layout.hash} does not match the server's {self.layout.hash}")
            return self.theta.tobytes(), self.version, self.stopped.is_set(), self.global_step

    def push(self, worker_id: int, base_version: int, data: bytes, dtype: str, shape: list[int],
             env_steps: int, returns: list[float], lengths: list[int], stats: dict,
             target_version: int = 0, frame: Callable[[PushResult, int], tuple[bytes, bytes]] | None = None
             ) -> PushResult:
        """May run concurrently; the apply itself is serialized under the lock, in arrival order.

        The result's params are theta's bytes after the push, between the (head, tail) that
        `frame(result, theta's size in bytes)` returns (b"", b"" without one): the servicer's whole
        reply, made from one copy of theta under the lock, so that copy is one version exactly.
        """
        start = time.perf_counter()
        if self.layout is None:
            self._count_locked("no_parameters")
            raise precondition("no_parameters", "no parameters yet: call Pull with the initial parameters first")
        try:
            d, norm = decode_gradient(data, dtype, shape, self.layout.size)
            check_counts(env_steps, returns, lengths)
        except Exception as err:
            self._count_locked(getattr(err, "reason", "invalid"))
            raise
        frame = frame or _no_frame
        with self._lock:
            info = self._known(worker_id)
            if not 0 <= base_version <= self.version:
                self._count("bad_version")
                raise invalid("bad_version", f"base_version {base_version} is outside 0..{self.version} (the current version)")
            self.global_step += env_steps
            info.pushes += 1
            info.env_steps += env_steps
            info.stats = {k: float(v) for k, v in list(stats.items())[:32]}
            for r in returns:
                self.episodes.add(r)
            if self.spec.sync:
                outcome = self._join_round(worker_id, base_version, d, norm)
            else:
                outcome = self._decide_async(base_version)
            if outcome.applied:
                self.staleness.record(outcome.staleness)
                info.staleness_sum += outcome.staleness
            else:
                self.dropped[outcome.dropped_reason] = self.dropped.get(outcome.dropped_reason, 0) + 1
                info.dropped += 1
            self._check_stop()
            step_pending = outcome.applied and not self.spec.sync  # decided, not yet taken
            if step_pending and self.target is None:
                # Nothing in the reply but theta depends on the step, so the step writes the reply
                # in its own pass over theta (ps/_kernels.c), at the version it is about to make.
                result = self._result(outcome, self.version + 1, (0, b""))
                outcome, params = self._step(worker_id, d, norm, outcome, frame(result, self.theta.nbytes))
            else:
                if step_pending:
                    outcome, _ = self._step(worker_id, d, norm, outcome)
                if outcome.applied and self.target is not None:
                    self.target.maybe_copy(self.theta, self.global_step)
                target = self.target.reply_for(worker_id, target_version) if self.target is not None else (0, b"")
                result = self._result(outcome, self.version, target)
                params = optim.framed(self.theta, frame(result, self.theta.nbytes))
            result = result._replace(params=params)
            version, global_step = self.version, self.global_step
            mean100 = self.episodes.mean
            self.apply_seconds_total += outcome.apply_seconds
        event = PushEvent(time=time.time(), worker_id=worker_id, base_version=base_version,
                          version_at_apply=outcome.version_at_apply, staleness=outcome.staleness,
                          applied=outcome.applied, dropped_reason=outcome.dropped_reason,
                          env_steps=env_steps, global_step=global_step, version=version, grad_norm=norm,
                          learning_rate=outcome.learning_rate, server_seconds=time.perf_counter() - start,
                          apply_seconds=outcome.apply_seconds, episode_returns=tuple(returns),
                          episode_lengths=tuple(lengths), stats=dict(stats), mean100=mean100)
        self.pushlog.append((round(event.time, 4), worker_id, base_version, outcome.version_at_apply,
                             outcome.staleness, env_steps, round(norm, 6), outcome.learning_rate,
                             int(outcome.applied)))
        for observer in self.observers:
            observer.on_push(event)
        return result

    def _result(self, outcome: Outcome, version: int, target: tuple[int, bytes]) -> PushResult:
        """The push's reply, its params still empty (the caller holds the lock)."""
        return PushResult(outcome.applied, outcome.dropped_reason, version, b"", outcome.staleness,
                          self.stopped.is_set(), self.global_step, outcome.learning_rate, *target)

    def _decide_async(self, base_version: int) -> Outcome:
        """The paper's asynchronous update, one push at a time: whether (and at what rate) the
        staleness policy lets it apply. _step takes it."""
        version_at_apply = self.version
        st = staleness(version_at_apply, base_version)
        lr = optim.linear_lr(self.spec.lr, self.global_step, self.spec.total_steps)
        decision = decide(st, lr, self.spec.max_staleness, self.spec.staleness_lr)
        return Outcome(decision.apply, decision.dropped_reason, version_at_apply, st,
                       decision.learning_rate, 0.0)

    def _step(self, worker_id: int, d, norm: float, outcome: Outcome,
              frame: tuple[bytes, bytes] | None = None) -> tuple[Outcome, bytes | None]:
        """Apply d at the decided rate: theta moves to the next version. With a frame (head, tail),
        also returns head + the new theta + tail, written in the same pass."""
        apply_start = time.perf_counter()
        # d is the read-only wire buffer: the clip rides along as a scale instead of a scaled copy.
        scale = optim.clip_scale(self.spec.max_grad_norm, norm)
        params = self.optimizer.apply(self.theta, d, outcome.learning_rate, worker_id, scale, frame)
        self.version += 1
        return outcome._replace(apply_seconds=time.perf_counter() - apply_start), params

    def target_reply(self, worker_id: int) -> tuple[int, bytes]:
        """May run concurrently. (version, parameters) of theta- for a Pull; (0, b"") without one."""
        with self._lock:
            return self.target.reply_for(worker_id, None) if self.target is not None else (0, b"")

    def heartbeat(self, worker_id: int) -> bool:
        with self._lock:
            self._known(worker_id)
            return self.stopped.is_set()

    def leave(self, worker_id: int, reason: str) -> None:
        with self._lock:
            info = self.workers.workers.get(worker_id)
            if info is not None:
                info.connected = False
                info.left_reason = reason[:100] or "left"
                self._worker_gone(worker_id)
        log.info("worker %d left (%s)", worker_id, reason or "left")

    # --- server-side ----------------------------------------------------------------------------
    def expire_workers(self) -> None:
        with self._lock:
            gone = self.workers.expire(self.config.worker_timeout_seconds)
            for wid in gone:
                self._worker_gone(wid)
        for wid in gone:
            log.warning("worker %d silent for %.0f s: dropped from the connected set",
                        wid, self.config.worker_timeout_seconds)

    def request_stop(self, reason: str) -> None:
        with self._lock:
            self._stop(reason)

    def connected_workers(self) -> int:
        with self._lock:
            return len(self.workers.connected)

    def status(self) -> dict:
        """A consistent snapshot of the run, the document behind Status, summary.json and progress."""
        doc = self._status_locked()
        for observer in self.observers:  # live figures kept by observers (rates ...), outside the lock
            doc.update(observer.status_fields())
        return doc

    def _status_locked(self) -> dict:
        with self._lock:
            now = time.monotonic()
            mean100 = self.episodes.mean
            return {
                "state": "done" if self.stopped.is_set() and not self.workers.connected
                else "stopping" if self.stopped.is_set() else "running" if self.layout else "waiting",
                "incarnation": self.incarnation,
                "wall_seconds": round(now - self.started_at, 3),
                "env_steps": self.global_step,
                "total_steps": self.spec.total_steps,
                "updates": self.version,
                "version": self.version,
                "episodes": self.episodes.episodes,
                "final_mean100": None if mean100 is None else round(mean100, 3),
                "best_mean100": self.episodes.best_mean100,
                "learning_rate": optim.linear_lr(self.spec.lr, self.global_step, self.spec.total_steps),
                "staleness": self.staleness.summary(),
                "rejected": dict(self.rejected),
                "dropped": dict(self.dropped),
                "policy": {"optimizer": self.spec.optimizer, "sync": self.spec.sync,
                           "max_staleness": self.spec.max_staleness, "staleness_lr": self.spec.staleness_lr},
                "sync_round_timeouts": self._round.timeouts if self._round else 0,
                "stop_reason": self.stop_reason,
                "solved": self.target_reached_at is not None,
                "time_to_target_seconds": None if self.target_reached_at is None else round(self.target_reached_at[0], 3),
                "steps_to_target": None if self.target_reached_at is None else self.target_reached_at[1],
                "parameters": self.layout.size if self.layout else 0,
                "layout_hash": self.layout.hash if self.layout else "",
                "workers_connected": len(self.workers.connected),
                "workers": [w.to_dict(now) for w in self.workers.workers.values()],
                "run_spec": json.loads(self.spec.to_json()),
                "target_network": self.target.status(self.global_step) if self.target is not None else None,
            }

    def params_snapshot(self) -> tuple[Layout | None, np.ndarray | None]:
        with self._lock:
            return self.layout, None if self.theta is None else self.theta.copy()

    def check_incarnation(self, incarnation: str) -> None:
        """May run concurrently. A worker id from another incarnation of this server is unknown here."""
        if incarnation and incarnation != self.incarnation:
            self._count_locked("unknown_worker")
            raise RequestError("NOT_FOUND", "unknown_worker", f"incarnation {incarnation[:16]!r} is not this "
                               f"server's ({self.incarnation}): the server restarted; register again")

    def count_rejection(self, reason: str) -> None:
        """May run concurrently. Count a request refused outside the core (auth, size, servicer checks)."""
        self._count_locked(reason)

    def close(self) -> None:
        self.pushlog.close()
        for observer in self.observers:
            observer.close()

    # --- helpers (caller holds the lock) -------------------------------------------------------
    def _known(self, worker_id: int):
        info = self.workers.get(worker_id)
        if info is None:
            self._count("unknown_worker")
            raise unknown_worker(worker_id)
        return info

    def _adopt(self, layout: Layout, initial: bytes) -> None:
        if len(initial) != layout.size * 4:
            self._count("bad_length")
            raise invalid("bad_length", f"initial parameters have {len(initial)} bytes, layout {layout.hash} needs {layout.size * 4}")
        theta = np.frombuffer(initial, dtype="<f4").copy()
        if not np.isfinite(theta).all():
            self._count("non_finite")
            raise invalid("non_finite", "initial parameters contain NaN or Inf")
        self.layout, self.theta = layout, theta
        self.optimizer = optim.make_optimizer(self.spec, theta.size)
        for worker_id in self.workers.workers:
            self.optimizer.add_worker(worker_id)
        if self.spec.algo in VALUE_BASED:
            self.target = TargetNetwork(theta, self.spec.target_update_steps, self.global_step)
        if self.spec.sync:
            self._round = SyncRound(theta.size)

    def _worker_gone(self, worker_id: int) -> None:
        if self.optimizer is not None:
            self.optimizer.remove_worker(worker_id)
        if self._round is not None and self._round.complete(self._live_ids()):
            self._apply_round()  # the round was waiting only for the worker that left
        self._notify_workers()

    def _notify_workers(self) -> None:
        connected = [w.worker_id for w in self.workers.connected]
        for observer in self.observers:
            observer.on_workers(len(connected), connected)

    def _check_stop(self) -> None:
        mean100 = self.episodes.mean
        target = self.spec.target_return
        if target is not None and self.episodes.full and mean100 >= target:
            if self.target_reached_at is None:
                self.target_reached_at = (time.monotonic() - self.started_at, self.global_step)
            self._stop(f"mean100 {mean100:.1f} >= target {target:g}")
        elif self.global_step >= self.spec.total_steps:
            self._stop(f"total steps {self.spec.total_steps} reached")

    def _stop(self, reason: str) -> None:
        if not self.stopped.is_set():
            self.stop_reason = reason
            self.stopped.set()
            log.info("stopping: %s", reason)
            if self._round is not None and self._round.members:
                self._apply_round()  # release workers waiting in a round: they will hear 'stop'

    def _count(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        for observer in self.observers:
            observer.on_reject(reason)

    def _count_locked(self, reason: str) -> None:
        with self._lock:
            self._count(reason)
