"""What the server tells its observers (pushes.csv, metrics, TensorBoard, rates) after each event.

Observers are called outside the server lock, from gRPC threads: they must be thread-safe and quick.
A push's record is the Push as it came and its PushOutcome (ps/api/source.py): the one source of
every figure they publish.
"""
from __future__ import annotations

from ps.api.source import Push, PushOutcome


class Observer:
    """Base class with no-op hooks; subclasses override what they need."""

    def on_push(self, push: Push, outcome: PushOutcome) -> None: ...

    def on_reject(self, reason: str) -> None: ...

    def on_workers(self, connected: int, worker_ids: list[int]) -> None: ...

    def on_evaluation(self, evaluation) -> None:
        """An evaluator's round was recorded (a ps.core.evaluations.Evaluation)."""

    def close(self) -> None: ...

    def status_fields(self) -> dict:
        """Extra live figures for the status document (called outside the server lock)."""
        return {}
