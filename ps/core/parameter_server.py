"""The parameter server's state and rules, with no RPC code (the gRPC layer is ps/service/grpc_service.py).

Every public method may run concurrently from gRPC threads; all shared state is touched only under
`self._lock`, and pushes are applied one at a time in the order they take the lock.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from ps.api.layout import Layout
from ps.api.shards import ShardSlice
from ps.api.source import Push, PushOutcome
from ps.api.spec import VALUE_BASED, RunSpec
from ps.config import ServerConfig
from ps.core import optim
from ps.core.episodes import EpisodeWindow
from ps.core.evaluations import EvaluationRecord, check_report
from ps.core.errors import RequestError, expired_worker, invalid, precondition, unknown_worker
from ps.core.moments import Buffers
from ps.core.observers import Observer
from ps.core.sharding import ShardRole
from ps.core.staleness import StalenessStats, decide, staleness
from ps.core.stopping import stop_rule
from ps.core.sync import SyncRounds
from ps.core.target import TargetNetwork
from ps.core.validate import check_counts, decode_gradient, finite, printable
from ps.core.workers import WorkerRegistry
from ps.records.pushlog import PushLog

log = logging.getLogger("ps")


def derive_seed(run_seed: int, worker_id: int) -> int:
    """A worker's seed: repeatable from the run seed and the worker id, distinct across workers."""
    return int(np.random.SeedSequence([run_seed, worker_id]).generate_state(1)[0] & 0x7FFFFFFF)


class ParameterServer:
    def __init__(self, spec: RunSpec, config: ServerConfig) -> None:
        self.spec = spec
        self.config = config
        self.incarnation = uuid.uuid4().hex[:12]
        self.run_dir = Path(config.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.layout: Layout | None = None
        self.theta: np.ndarray | None = None      # the one flat float32 parameter buffer (a shard's: its slice)
        self.shard: ShardSlice | None = None       # which slice of the layout's buffer theta is (ps/api/shards.py)
        self.sharding = ShardRole(config)          # a sharded run's: addresses, norm check, the run's staleness
        self.optimizer = None                       # made when the layout is adopted (ps.optim)
        self.buffers: Buffers | None = None         # the layout's buffers (running moments): never optimized
        self.target: TargetNetwork | None = None   # theta- of the value-based methods (ps/target.py)
        self.version = 0
        self.global_step = 0
        self.workers = WorkerRegistry(config.max_registered_workers)  # live workers; departed ones reaped
        self.staleness = StalenessStats()
        self.episodes = EpisodeWindow()
        self.evaluations = EvaluationRecord()      # rounds reported by evaluators (ps/core/evaluations.py)
        self.rejected: dict[str, int] = {}
        self.dropped: dict[str, int] = {}          # valid pushes a staleness policy declined, by reason
        self.sync: SyncRounds | None = None        # --sync only (ps/core/sync.py)
        self.stop_reason = ""
        self.stopped = threading.Event()
        self.started_at = time.monotonic()
        self.target_reached_at: tuple[float, int] | None = None  # (seconds, env steps)
        self.pushlog = PushLog(self.run_dir / "pushes.csv")
        self.apply_seconds_total = 0.0
        self.observers: list[Observer] = []

    # --- worker calls -------------------------------------------------------------------------
    def register(self, host: str, pid: int, evaluator: bool = False) -> tuple[int, int]:
        """May run concurrently. Returns (worker_id, seed). An evaluator joins only a run that evaluates."""
        with self._lock:
            if evaluator and self.spec.eval_every <= 0:
                self._count("no_evaluation")
                raise precondition("no_evaluation", "this run has no evaluation rounds: an evaluator needs "
                                                    "ps-serve --eval-every SECONDS")
            try:
                info = self.workers.add(printable(host, 253), pid, lambda wid: derive_seed(self.spec.seed, wid),
                                        evaluator)
            except RequestError as err:  # --max-registered-workers live already
                self._count(err.reason)
                raise
            # Per-worker optimizer state (rmsprop, momentum-sgd) is made at the worker's first push.
            self._notify_workers()
        log.info("%s %d registered from %s (pid %d)", "evaluator" if evaluator else "worker", info.worker_id,
                 info.host, pid)
        return info.worker_id, info.seed

    def pull(self, worker_id: int, layout: Layout, initial: bytes) -> tuple[bytes, int, bool, int]:
        """May run concurrently. Adopts the first offered parameters; later layouts must match."""
        with self._lock:
            info = self._known(worker_id)
            if self.layout is None and info.evaluator:  # it waits for a learner's parameters; not a refusal
                raise precondition("no_parameters", "no parameters yet: the evaluator waits for the first learner")
            if self.layout is None:
                self._adopt(layout, initial)
                log.info("adopted layout %s (%d parameters) from worker %d", layout.hash, layout.size, worker_id)
            elif layout.hash != self.layout.hash:
                self._count("layout_mismatch")
                raise precondition("layout_mismatch",
                                   f"layout hash {layout.hash} does not match the server's {self.layout.hash}")
            return self.theta.tobytes(), self.version, self.stopped.is_set(), self.global_step

    def push(self, push: Push, out: np.ndarray | None = None) -> PushOutcome:
        """May run concurrently; the apply itself is serialized under the lock, in arrival order.

        Returns the push's outcome with theta after it: written into `out` (a writable float32 array of
        theta's size, e.g. the reply's parameter region) when given, by the update's own pass over
        theta where it can; else as the outcome's params bytes. Either way one copy made under the
        lock, so it is one version exactly.
        """
        start = time.perf_counter()
        if self.layout is None:
            self._count_locked("no_parameters")
            raise precondition("no_parameters", "no parameters yet: call Pull with the initial parameters first")
        try:
            check_counts(push.env_steps, push.episode_returns, push.episode_lengths, self._max_env_steps,
                         self._env_steps_why)
            d, norm = decode_gradient(push.gradient, push.dtype, push.shape, self.shard.size)
            if self.sharding.sharded:
                norm = self.sharding.global_norm(push.grad_norm, norm)
            self.buffers.check(push.moments, push.env_steps)
        except Exception as err:
            self._count_locked(getattr(err, "reason", "invalid"))
            raise
        with self._lock:
            info = self._known(push.worker_id)
            if info.evaluator:
                self._count("evaluator_push")
                raise precondition("evaluator_push", f"worker {push.worker_id} registered as an evaluator: "
                                                     f"it reports evaluations and never pushes")
            if not 0 <= push.base_version <= self.version:
                self._count("bad_version")
                raise invalid("bad_version", f"base_version {push.base_version} is outside 0..{self.version} "
                                             f"(the current version)")
            if push.run_staleness != -1:  # -1: not given
                try:
                    self.sharding.record_run_staleness(push.run_staleness)
                except RequestError as err:
                    self._count(err.reason)
                    raise
            self.global_step += push.env_steps
            info.pushes += 1
            info.env_steps += push.env_steps
            info.stats = {printable(str(k), 64): float(v) for k, v in list(push.stats.items())[:32]
                          if math.isfinite(v)}
            self.episodes.extend(push.episode_returns)
            version_at_apply, apply_seconds = self.version, 0.0
            if self.sync is not None:
                version_at_apply, lr, apply_seconds = self.sync.join(push.worker_id, push.base_version, d)
                applied, dropped_reason = True, ""
            else:
                lr = optim.linear_lr(self.spec.lr, self.global_step, self.spec.total_steps)
                decision = decide(staleness(version_at_apply, push.base_version), lr, self.spec.max_staleness,
                                  self.spec.staleness_lr)
                applied, dropped_reason, lr = decision.apply, decision.dropped_reason, decision.learning_rate
            st = staleness(version_at_apply, push.base_version)
            if applied:
                self.staleness.record(st)
                info.staleness_sum += st
            else:
                self.dropped[dropped_reason] = self.dropped.get(dropped_reason, 0) + 1
                info.dropped += 1
            self._check_stop()
            # With no target network in the reply, the step itself writes theta into `out` in its one pass.
            fused = out is not None and self.target is None and applied and self.sync is None
            if applied and self.sync is None:
                apply_seconds = self._step(push.worker_id, d, norm, lr, out if fused else None)
            # Applied or not, the observations were seen: every push's moments count.
            self.buffers.merge(self.theta, push.moments, out if fused else None)
            if applied and self.target is not None:
                self.target.maybe_copy(self.theta, self.global_step)
            target = (self.target.reply_for(push.worker_id, push.target_version) if self.target is not None
                      else (0, b""))
            params = None
            if not fused:
                if out is not None:
                    np.copyto(out, self.theta)
                else:
                    params = self.theta.tobytes()
            self.apply_seconds_total += apply_seconds
            outcome = PushOutcome(applied, dropped_reason, self.version, st, self.stopped.is_set(), self.global_step,
                                  lr, params, *target, version_at_apply, norm, apply_seconds, 0.0, 0.0,
                                  self.episodes.mean)
        outcome = outcome._replace(server_seconds=time.perf_counter() - start, time=time.time())
        self.pushlog.append(push, outcome)  # never raises, never touches the disk (ps/records/pushlog.py)
        for observer in self.observers:
            try:
                observer.on_push(push, outcome)
            except Exception as err:  # noqa: BLE001 - an observer fails alone: the update is applied, the reply goes out
                self.pushlog.faults.record(getattr(observer, "fault_kind", type(observer).__name__), err)
        return outcome

    def _step(self, worker_id: int, d: np.ndarray, norm: float, lr: float, out: np.ndarray | None) -> float:
        """Apply d at rate lr (caller holds the lock): theta moves to the next version; with `out`,
        the new theta is written there in the same pass. Returns the seconds it took."""
        apply_start = time.perf_counter()
        # d is the read-only wire buffer: the clip rides along as a scale instead of a scaled copy.
        scale = optim.clip_scale(self.spec.max_grad_norm, norm)
        held = self.buffers.hold(self.theta)
        self.optimizer.apply(self.theta, d, lr, worker_id, scale, out)
        self.buffers.restore(self.theta, held, out)
        self.version += 1
        return time.perf_counter() - apply_start

    def _apply_sum(self, d: np.ndarray) -> tuple[int, float]:
        """--sync: one update from a round's summed gradient (one optimizer state); (version at apply, lr)."""
        lr = optim.linear_lr(self.spec.lr, self.global_step, self.spec.total_steps)
        optim.clip_by_global_norm(d, self.spec.max_grad_norm, float(np.linalg.norm(d)))
        held = self.buffers.hold(self.theta)
        self.optimizer.apply(self.theta, d, lr, 0)
        self.buffers.restore(self.theta, held)
        self.version += 1
        return self.version - 1, lr

    def report_evaluation(self, worker_id: int, version: int, returns, lengths) -> bool:
        """May run concurrently. Record an evaluator's round (the parameters are not touched); with the
        target judged on evaluation, a round that reaches it stops the run. Returns stop."""
        with self._lock:
            info = self._known(worker_id)
            if not info.evaluator:
                self._count("not_evaluator")
                raise precondition("not_evaluator", f"worker {worker_id} registered as a learner: only a worker "
                                                    f"registered as an evaluator reports evaluations")
            try:
                check_report(version, self.version, returns, lengths)
            except RequestError as err:
                self._count(err.reason)
                raise
            ev = self.evaluations.add(returns, lengths, version, self.global_step,
                                      time.monotonic() - self.started_at)
            self._check_stop()
            stop = self.stopped.is_set()
        log.info("evaluation at version %d (T %d): mean %.2f +- %.2f over %d episodes", ev.version,
                 ev.global_step, ev.mean, ev.std, ev.episodes)
        for observer in self.observers:
            try:
                observer.on_evaluation(ev)
            except Exception as err:  # noqa: BLE001 - as for pushes: an observer fails alone
                self.pushlog.faults.record(getattr(observer, "fault_kind", type(observer).__name__), err)
        return stop

    def target_reply(self, worker_id: int) -> tuple[int, bytes]:
        """May run concurrently. (version, parameters) of theta- for a Pull; (0, b"") without one."""
        with self._lock:
            return self.target.reply_for(worker_id, None) if self.target is not None else (0, b"")

    def leave(self, worker_id: int, reason: str) -> None:
        """The worker is reaped at once; its reason is kept (and logged) cut to 100 characters, escaped."""
        reason = printable(reason) or "left"
        with self._lock:
            self._known(worker_id)
            self.workers.depart(worker_id, reason)
            self._worker_gone(worker_id)
        log.info("worker %d left (%s)", worker_id, reason)

    # --- server-side ----------------------------------------------------------------------------
    def expire_workers(self) -> None:
        with self._lock:
            gone = self.workers.expire(self.config.worker_timeout_seconds)
            for wid in gone:
                self._worker_gone(wid)
        if gone:  # one line however many: a flood of registrations that never call again is one event
            log.warning("worker%s %s silent for more than %g s: dropped (a later call gets NOT_FOUND and the "
                        "worker registers again)", "s" if len(gone) > 1 else "",
                        ", ".join(map(str, gone)) if len(gone) <= 8 else f"{gone[0]}..{gone[-1]} ({len(gone)})",
                        self.config.worker_timeout_seconds)

    def request_stop(self, reason: str) -> None:
        with self._lock:
            self._stop(reason)

    def connected_workers(self) -> int:
        """Live workers, evaluators included (all of them should hear 'stop')."""
        with self._lock:
            return len(self.workers.connected)

    def status(self) -> dict:
        """A consistent snapshot of the run, the document behind Status, summary.json and progress."""
        doc = self._status_locked()
        for observer in self.observers:  # live figures kept by observers (rates ...), outside the lock
            doc.update(observer.status_fields())
        return finite(doc)  # JSON by construction: no NaN or Infinity reaches Status or summary.json

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
                "run_staleness": self.sharding.run_staleness.summary() if self.sharding.sharded else None,
                "rejected": dict(self.rejected),
                "dropped": dict(self.dropped),
                "policy": {"optimizer": self.spec.optimizer, "sync": self.spec.sync,
                           "max_staleness": self.spec.max_staleness, "staleness_lr": self.spec.staleness_lr},
                "sync_round_timeouts": self.sync.round.timeouts if self.sync else 0,
                "stop_reason": self.stop_reason,
                "solved": self.target_reached_at is not None,
                "time_to_target_seconds": None if self.target_reached_at is None else round(self.target_reached_at[0], 3),
                "steps_to_target": None if self.target_reached_at is None else self.target_reached_at[1],
                "parameters": self.layout.size if self.layout else 0,
                "shard": self.sharding.status(self.shard),
                "layout_hash": self.layout.hash if self.layout else "",
                "workers_connected": len(self.workers.learners),
                "evaluators_connected": len(self.workers.connected) - len(self.workers.learners),
                "workers_departed": self.workers.departed_total,  # "workers" keeps only the last 64 of them
                "workers": self.workers.summaries(now),
                "run_spec": json.loads(self.spec.to_json()),
                "target_network": self.target.status(self.global_step) if self.target is not None else None,
                "target_on": "eval" if self.spec.target_on_eval else "train",
                **self.evaluations.status(),
            }

    def params_nbytes(self) -> int:
        """May run concurrently. theta's size in bytes (0 before the layout is adopted; fixed after)."""
        shard = self.shard
        return shard.size * 4 if shard is not None else 0

    def params_snapshot(self) -> tuple[Layout | None, np.ndarray | None]:
        with self._lock:
            return self.layout, None if self.theta is None else self.theta.copy()

    # --- checkpoints (ps/records/checkpoint.py writes the files) -------------------------------
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
                    "episodes": self.episodes.state(), "staleness_counts": self.staleness.state(),
                    "run_staleness_counts": self.sharding.run_staleness.state(),
                    "rejected": dict(self.rejected), "dropped": dict(self.dropped),
                    "wall_seconds": time.monotonic() - self.started_at,
                    "target_reached_at": self.target_reached_at, "next_worker_id": self.workers.next_id,
                    "shard": [self.shard.index, self.shard.count],
                    "evaluations": self.evaluations.state()}
            if self.target is not None:  # theta- and its version (value-based methods)
                arrays["target"] = self.target.params.copy()
                meta["flat_arrays"].append("target")
                meta["target"] = self.target.meta()
            return {"arrays": arrays, "meta": meta}

    def load_state_dict(self, state: dict) -> None:
        """May run concurrently. Restore a state_dict() (at start, before serving): T, version, lr schedule and statistics continue."""
        arrays, meta = state["arrays"], state["meta"]
        with self._lock:
            layout = Layout.from_dict(meta["layout"])
            self._adopt(layout, arrays["theta"].astype("<f4").tobytes(), sliced=True)
            self.optimizer.load_state({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
            # per-worker state of the last life's workers: they register again under new ids
            self.optimizer.keep_only(self.workers.workers)
            self.version, self.global_step = int(meta["version"]), int(meta["global_step"])
            self.episodes.load_state(meta["episodes"])
            self.staleness.load_state(meta["staleness_counts"])
            self.sharding.run_staleness.load_state(meta.get("run_staleness_counts", {}))
            self.rejected.update(meta["rejected"])
            self.dropped.update(meta.get("dropped", {}))
            self.started_at = time.monotonic() - float(meta["wall_seconds"])
            self.target_reached_at = tuple(meta["target_reached_at"]) if meta["target_reached_at"] else None
            self.workers.continue_ids_from(meta["next_worker_id"])  # ids stay unique across restarts
            self.evaluations.load_state(meta.get("evaluations"))
            if self.target is not None and "target" in arrays:
                self.target.load(arrays["target"], meta["target"])
            self._check_stop()  # a finished run that restarts stops at once instead of applying more

    def check_incarnation(self, incarnation: str) -> None:
        """May run concurrently. A worker id from another incarnation of this server is unknown here,
        and so is one without an incarnation: Pull, Push and Leave must carry Register's."""
        if not incarnation:
            self._count_locked("unknown_worker")
            raise RequestError("NOT_FOUND", "unknown_worker", "no incarnation: Pull, Push and Leave must carry the "
                               "incarnation from Register's reply; register again")
        if incarnation != self.incarnation:
            self._count_locked("unknown_worker")
            raise RequestError("NOT_FOUND", "unknown_worker", f"incarnation {incarnation[:16]!r} is not this "
                               f"server's ({self.incarnation}): the server restarted; register again")

    def catch_up(self, global_step: int, stop_reason: str) -> None:
        """A restarted shard takes the other shards' T (ps/shard_peers.py) and the stop one of them
        decided: its learning-rate schedule and stop are theirs again."""
        with self._lock:
            if global_step > self.global_step:
                log.info("T %d -> %d: the other shards' (pushes since this shard's checkpoint)", self.global_step,
                         global_step)
                self.global_step = global_step
            if stop_reason:
                self._stop(stop_reason)
            self._check_stop()

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
        if info is not None:
            return info
        if not self.workers.issued(worker_id):
            self._count("unknown_worker")
            raise unknown_worker(worker_id)
        gone = self.workers.departed_info(worker_id)
        self._count("expired_worker")
        raise expired_worker(worker_id, None if gone is None else gone.left_reason or
                             f"timed out: silent for more than --worker-timeout {self.config.worker_timeout_seconds:g} s")

    @property
    def _max_env_steps(self) -> int:
        return self.spec.max_env_steps_per_push

    @property
    def _env_steps_why(self) -> str:
        horizon = ("async_update_steps", self.spec.async_update_steps) \
            if self.spec.algo in ("one-step-q", "one-step-sarsa") else ("t_max", self.spec.t_max)
        return f"one push covers at most envs {self.spec.envs_per_worker} x {horizon[0]} {horizon[1]}"

    def _adopt(self, layout: Layout, initial: bytes, sliced: bool = False) -> None:
        """Take the layout and its first parameters: the whole buffer from a worker's first pull, this
        shard's slice (`sliced`) from a checkpoint."""
        shard = self.sharding.slice_of(layout)
        size = shard.size if sliced else layout.size
        if len(initial) != size * 4:
            self._count("bad_length")
            raise invalid("bad_length", f"initial parameters have {len(initial)} bytes, layout {layout.hash} needs {size * 4}")
        theta = np.frombuffer(initial, dtype="<f4")
        theta = (theta if sliced else theta[shard.start:shard.end]).copy()
        if not np.isfinite(theta).all():
            self._count("non_finite")
            raise invalid("non_finite", "initial parameters contain NaN or Inf")
        self.shard = shard  # before the layout: params_nbytes() reads it without the lock
        self.layout, self.theta = layout, theta
        self.optimizer = optim.make_optimizer(self.spec, theta.size)
        self.buffers = Buffers(layout, shard.start, shard.end)
        if self.spec.algo in VALUE_BASED:
            self.target = TargetNetwork(theta, self.spec.target_update_steps, self.global_step)
        if self.spec.sync:
            self.sync = SyncRounds(theta.size, self.spec.sync_timeout, self._lock, self._live_ids, self._apply_sum)

    def _worker_gone(self, worker_id: int) -> None:
        """A worker was reaped (left or timed out): free its per-worker state."""
        if self.optimizer is not None:
            self.optimizer.remove_worker(worker_id)
        if self.target is not None:
            self.target.forget(worker_id)
        if self.sync is not None:
            self.sync.round.absent.discard(worker_id)
            self.sync.release_if_complete()  # the round may have been waiting only for this worker
        self._notify_workers()

    def _notify_workers(self) -> None:
        connected = [w.worker_id for w in self.workers.learners]
        for observer in self.observers:
            observer.on_workers(len(connected), connected)

    def _check_stop(self) -> None:
        stop = stop_rule(self.spec, self.episodes, self.evaluations.latest, self.global_step)
        if stop is None:
            return
        if stop.target_reached and self.target_reached_at is None:
            self.target_reached_at = (time.monotonic() - self.started_at, self.global_step)
        self._stop(stop.reason)

    def _stop(self, reason: str) -> None:
        if not self.stopped.is_set():
            self.stop_reason = reason
            self.stopped.set()
            log.info("stopping: %s", reason)
            if self.sync is not None:
                self.sync.release()  # workers waiting in a round hear 'stop'

    def _live_ids(self) -> set[int]:
        return {w.worker_id for w in self.workers.learners}  # a --sync round never waits for an evaluator

    def _count(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        for observer in self.observers:
            observer.on_reject(reason)

    def _count_locked(self, reason: str) -> None:
        with self._lock:
            self._count(reason)
