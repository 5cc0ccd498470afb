"""A worker's view of the parameter server, written down: the ParameterSource protocol and its records.

worker/client.py implements it over gRPC; ps/core/in_process.py implements it over a ParameterServer in
the same process (tests of the algorithm side, with no network). The actor-learner loop sees only this.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from ps.api.layout import Layout
from ps.api.moments import Moments
from ps.api.spec import RunSpec


@dataclass(frozen=True)
class Registration:
    worker_id: int
    seed: int            # the worker's own, derived from the run seed and its id
    spec: RunSpec
    incarnation: str     # the server process's; a worker id is valid only within it
    shards: tuple[str, ...] = ()  # a sharded run: every shard's address, in order (ps/api/shards.py)
    shard: int = 0                # the index of the shard that answered


@dataclass(frozen=True)
class Weights:
    """A pull's answer: the parameters (flat little-endian float32 bytes) at one version."""
    params: bytes | memoryview
    version: int
    stop: bool
    global_step: int
    target_version: int = 0                  # value-based methods: theta-'s version ...
    target_params: bytes | memoryview = b""  # ... and its parameters, when the worker's differs


@dataclass(frozen=True)
class Push:
    """One push: the gradient summed over a rollout, computed from the weights of base_version."""
    worker_id: int
    base_version: int
    gradient: bytes | memoryview      # flat, little-endian, `dtype`
    env_steps: int
    dtype: str = "float32"
    shape: tuple[int, ...] = ()       # as sent; () means flat
    episode_returns: tuple[float, ...] = ()
    episode_lengths: tuple[int, ...] = ()
    stats: dict[str, float] = field(default_factory=dict)
    target_version: int = 0           # the theta- version the worker holds (value-based methods)
    moments: tuple[Moments, ...] = () # what the worker saw since its last push, for the layout's buffers
    grad_norm: float = 0.0            # a shard's slice: the L2 norm of the whole gradient (0: unsharded)
    run_staleness: int = -1           # sharded, to shard 0: the previous push's largest staleness over the shards


class PushOutcome(NamedTuple):
    """What became of one push: the one record behind the reply, pushes.csv, metrics and TensorBoard.

    A NamedTuple: _replace() is cheap on the push path. A gRPC client fills the fields its reply
    carries; the server-side figures (version_at_apply ... mean100) stay at their defaults there.
    """
    applied: bool
    dropped_reason: str               # "" when applied
    version: int                      # theta's version after this push: the reply's parameters
    staleness: int                    # version at apply minus base_version
    stop: bool                        # the run is over
    global_step: int                  # T after this push
    learning_rate: float              # the effective rate (0 when dropped)
    params: bytes | memoryview | None = None   # theta at `version`; None where the caller took them via out=
    target_version: int = 0
    target_params: bytes | memoryview = b""
    version_at_apply: int = 0
    grad_norm: float = 0.0
    apply_seconds: float = 0.0
    server_seconds: float = 0.0
    time: float = 0.0                 # wall clock (time.time()) when the push was answered
    mean100: float | None = None


class UnknownWorker(Exception):
    """Every source raises this (or a subclass) when it does not know the caller's worker id: the server
    restarted, or timed the worker out. The worker registers again."""


class ParameterSource(Protocol):
    """register -> pull -> (push ... | report_evaluation ...) -> leave. Every call may block. An unknown
    worker id raises UnknownWorker; other errors are the implementation's (worker/client.py raises
    ServerUnavailable / ServerRefused)."""

    def register(self, host: str, pid: int, evaluator: bool = False) -> Registration:
        """Join the run; an evaluator (worker/evaluator.py) pulls and reports evaluations, never pushes."""

    def pull(self, worker_id: int, layout: Layout, initial: bytes = b"") -> Weights:
        """The current weights; the first pull of a run offers `initial` (the server adopts them once)."""

    def push(self, push: Push) -> PushOutcome:
        """Apply (or drop) one push; the outcome carries the weights after it in `params`."""

    def leave(self, worker_id: int, reason: str) -> None: ...

    def report_evaluation(self, worker_id: int, version: int, returns: tuple[float, ...],
                          lengths: tuple[int, ...]) -> bool:
        """An evaluator's round: episodes played with the parameters of `version`. Returns stop."""
