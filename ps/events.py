"""What the server tells its observers (metrics, TensorBoard, ...) after each event.

Observers are called outside the server lock, from gRPC threads: they must be thread-safe and quick.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PushEvent:
    time: float               # wall clock (time.time())
    worker_id: int
    base_version: int
    version_at_apply: int
    staleness: int
    applied: bool
    dropped_reason: str
    env_steps: int
    global_step: int          # T after this push
    version: int              # version after this push
    grad_norm: float
    learning_rate: float      # effective rate used (0 when dropped)
    server_seconds: float     # time spent in the server for this push
    apply_seconds: float      # time spent applying the update
    episode_returns: tuple = ()
    episode_lengths: tuple = ()
    stats: dict = field(default_factory=dict)
    mean100: float | None = None


class Observer:
    """Base class with no-op hooks; subclasses override what they need."""

    def on_push(self, event: PushEvent) -> None: ...

    def on_reject(self, reason: str) -> None: ...

    def on_workers(self, connected: int, worker_ids: list[int]) -> None: ...

    def close(self) -> None: ...

    def status_fields(self) -> dict:
        """Extra live figures for the status document (called outside the server lock)."""
        return {}
