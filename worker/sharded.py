"""A sharded run seen as one parameter server: ps.api.source's ParameterSource over N shards.

Shard 0's Register reply lists every shard's address (ps/api/shards.py). The worker registers with
each, pulls each its slice and assembles the whole buffer; a push sends every shard its slice of the
gradient at once, with the whole gradient's norm (the global clip) and the rest of the push (env
steps, episodes, moments) whole, so that every shard keeps the same T, learning-rate schedule and
stop decision. The loop above sees one worker id and one version: the shards' own ids, versions and
theta- versions stay here. A shard that restarted (NOT_FOUND) is registered with again and pulled
from on its own; the other shards' weights are untouched.
"""
from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from ps.api.layout import Layout
from ps.api.shards import ShardSlice, shard_slices
from ps.api.source import ParameterSource, Push, PushOutcome, Registration, UnknownWorker, Weights

log = logging.getLogger("worker.sharded")
DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}


class ShardMismatch(Exception):
    """A server at a shard's address says it is another shard: the run's --shard-addresses are wrong."""


def whole_norm(gradient, dtype: str) -> float:
    """The L2 norm of a flat gradient, summed in float64 (a shard refuses a norm below its slice's)."""
    d = np.frombuffer(gradient, dtype=DTYPES[dtype]).astype(np.float64)
    return math.sqrt(float(np.dot(d, d)))


class ShardedSource:
    """ParameterSource over one server or N shards: the first Register says which (see the module)."""

    def __init__(self, first: ParameterSource, connect: Callable[[str], ParameterSource]) -> None:
        self.first = first
        self.connect = connect  # a ParameterSource for a shard's address
        self.sources: list[ParameterSource] = [first]
        self.ids: list[int] = [0]
        self.versions: list[int] = [0]
        self.target_versions: list[int] = [0]
        self.slices: list[ShardSlice] = []
        self.params = bytearray()   # the assembled theta, reused pull after pull
        self.target = bytearray()   # the assembled theta- (value-based methods)
        self.joined: tuple[str, int, bool] = ("", 0, False)
        self.rejoins = 0
        self.last_staleness = -1    # the previous push's, the largest over the shards: told to shard 0
        self._pool: ThreadPoolExecutor | None = None

    @property
    def sharded(self) -> bool:
        return len(self.sources) > 1

    def register(self, host: str, pid: int, evaluator: bool = False) -> Registration:
        reg = self.first.register(host, pid, evaluator)
        self.joined = (host, pid, evaluator)
        if len(reg.shards) <= 1:
            self.ids = [reg.worker_id]
            return reg
        count = len(reg.shards)
        if self._pool is None:
            self.sources = [self.first if i == reg.shard else self.connect(a) for i, a in enumerate(reg.shards)]
            self._pool = ThreadPoolExecutor(count, thread_name_prefix="shard")
        self.ids, self.versions, self.target_versions = [0] * count, [0] * count, [0] * count
        self.ids[reg.shard] = reg.worker_id
        others = [i for i in range(count) if i != reg.shard]
        for i, got in zip(others, self._pool.map(self._register, others)):
            self.ids[i] = got
        log.info("sharded run: %d shards (%s); this worker's ids there %s", count, ", ".join(reg.shards), self.ids)
        return reg

    def _register(self, i: int) -> int:
        reg = self.sources[i].register(*self.joined)
        if reg.shards and reg.shard != i:
            raise ShardMismatch(f"the server at shard {i}'s address ({', '.join(reg.shards)}[{i}]) says it is "
                                f"shard {reg.shard}: check the shards' --shard-addresses")
        return reg.worker_id

    def pull(self, worker_id: int, layout: Layout, initial: bytes = b"") -> Weights:
        if not self.sharded:
            return self.first.pull(worker_id, layout, initial)
        self._fit(layout)
        if initial:
            self.params[:] = initial  # also what a restarted shard without a checkpoint adopts
        parts = list(self._pool.map(lambda i: self._pull(i, layout, bytes(initial)), range(len(self.sources))))
        return self._weights(parts)

    def _pull(self, i: int, layout: Layout, initial: bytes) -> Weights:
        try:
            return self.sources[i].pull(self.ids[i], layout, initial)
        except UnknownWorker:
            return self._rejoin(i, layout)

    def _rejoin(self, i: int, layout: Layout) -> Weights:
        """Shard i no longer knows this worker (it restarted, or timed the worker out): register there
        again and pull its slice, offering the whole buffer as we have it."""
        old = self.ids[i]
        self.ids[i] = self._register(i)
        self.target_versions[i] = 0
        self.rejoins += 1
        log.warning("shard %d no longer knew worker %d; registered again as %d", i, old, self.ids[i])
        return self.sources[i].pull(self.ids[i], layout, bytes(self.params))

    def _weights(self, parts: list[Weights]) -> Weights:
        target_moved = False
        for i, (w, s) in enumerate(zip(parts, self.slices)):
            self.params[s.start * 4:s.end * 4] = w.params
            self.versions[i] = w.version
            if w.target_params:
                self.target[s.start * 4:s.end * 4] = w.target_params
                self.target_versions[i], target_moved = w.target_version, True
        return Weights(memoryview(self.params), parts[0].version, any(w.stop for w in parts),
                       max(w.global_step for w in parts), min(self.target_versions),
                       memoryview(self.target) if target_moved else b"")

    def push(self, push: Push) -> PushOutcome:
        if not self.sharded:
            return self.first.push(push)
        width = DTYPES[push.dtype].itemsize
        gradient = memoryview(push.gradient).cast("B")
        norm = whole_norm(gradient, push.dtype)

        def one(i: int) -> PushOutcome | Exception:
            s = self.slices[i]
            part = Push(self.ids[i], self.versions[i], gradient[s.start * width:s.end * width], push.env_steps,
                        push.dtype, (), push.episode_returns, push.episode_lengths, push.stats,
                        self.target_versions[i], push.moments, norm, self.last_staleness if i == 0 else -1)
            try:
                return self.sources[i].push(part)
            except Exception as err:  # noqa: BLE001 - raised below once every shard has answered
                return err
        outcomes = list(self._pool.map(one, range(len(self.sources))))
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            # Raised as the loop's lost push: it re-pulls (ShardedSource.pull rejoins a restarted shard).
            raise next((f for f in failed if not isinstance(f, UnknownWorker)), failed[0])
        weights = self._weights([Weights(o.params, o.version, o.stop, o.global_step, o.target_version,
                                         o.target_params) for o in outcomes])
        first = outcomes[0]
        self.last_staleness = max(o.staleness for o in outcomes)
        return PushOutcome(all(o.applied for o in outcomes), "; ".join(o.dropped_reason for o in outcomes
                                                                         if o.dropped_reason),
                           first.version, self.last_staleness, weights.stop, weights.global_step,
                           first.learning_rate, weights.params, weights.target_version, weights.target_params)

    def leave(self, worker_id: int, reason: str) -> None:
        if not self.sharded:
            self.first.leave(worker_id, reason)
            return
        list(self._pool.map(lambda i: self.sources[i].leave(self.ids[i], reason), range(len(self.sources))))

    def report_evaluation(self, worker_id: int, version: int, returns: tuple[float, ...],
                          lengths: tuple[int, ...]) -> bool:
        """Every shard hears the round (each judges the target on it), with its own version."""
        if not self.sharded:
            return self.first.report_evaluation(worker_id, version, returns, lengths)
        stops = self._pool.map(lambda i: self.sources[i].report_evaluation(
            self.ids[i], self.versions[i], returns, lengths), range(len(self.sources)))
        return any(list(stops))

    def close(self) -> None:
        for source in self.sources:
            getattr(source, "close", lambda: None)()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def _fit(self, layout: Layout) -> None:
        if len(self.params) != layout.size * 4 or len(self.slices) != len(self.sources):
            self.slices = shard_slices(layout, len(self.sources))
            self.params, self.target = bytearray(layout.size * 4), bytearray(layout.size * 4)
