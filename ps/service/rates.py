"""Throughput over a sliding window: updates/s and env steps/s over the last 10 seconds.

Fed by every applied push (an Observer); its figures join the status document, so `ps-status`
and anything else that calls the Status RPC sees them.
"""
from __future__ import annotations

import threading
import time
from collections import deque

from ps.api.source import Push, PushOutcome
from ps.core.observers import Observer

WINDOW_SECONDS = 10.0


class RateWindow(Observer):
    """May run concurrently: one small lock around the window."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS, clock=time.monotonic) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._started = clock()          # rates over a younger run divide by its age, not the window
        self._pushes: deque[tuple[float, int]] = deque()   # (time, env steps) of recent pushes
        self._lock = threading.Lock()

    def on_push(self, push: Push, event: PushOutcome) -> None:
        if not event.applied:
            return
        now = self._clock()
        with self._lock:
            self._pushes.append((now, push.env_steps))
            self._trim(now)

    def rates(self) -> tuple[float, float]:
        """(updates per second, env steps per second) over the window."""
        now = self._clock()
        with self._lock:
            self._trim(now)
            span = min(self.window_seconds, now - self._started)
            if span <= 0:
                return 0.0, 0.0
            return len(self._pushes) / span, sum(s for _, s in self._pushes) / span

    def status_fields(self) -> dict:
        updates, steps = self.rates()
        return {"rate_window_seconds": self.window_seconds,
                "updates_per_second": round(updates, 2), "env_steps_per_second": round(steps, 1)}

    def _trim(self, now: float) -> None:
        while self._pushes and self._pushes[0][0] < now - self.window_seconds:
            self._pushes.popleft()
