"""The window of the last 100 finished episodes' returns, across all workers."""
from __future__ import annotations

from collections import deque

WINDOW = 100


class EpisodeWindow:
    """Returns and lengths of finished episodes. Not thread-safe: the caller holds the server lock."""

    def __init__(self, window: int = WINDOW) -> None:
        self.returns: deque[float] = deque(maxlen=window)
        self.episodes = 0
        self.best_mean100: float | None = None

    def extend(self, episode_returns) -> None:
        """One push's finished episodes. best_mean100 is taken after the whole push, as the stop rule
        is: a best reached between two episodes of one push would be a best the run never stopped on."""
        for r in episode_returns:
            self.returns.append(float(r))
            self.episodes += 1
        if self.full:
            m = self.mean
            if self.best_mean100 is None or m > self.best_mean100:
                self.best_mean100 = m

    @property
    def full(self) -> bool:
        return len(self.returns) == self.returns.maxlen

    @property
    def mean(self) -> float | None:
        """Mean of the window (None before the first episode)."""
        return sum(self.returns) / len(self.returns) if self.returns else None

    def state(self) -> dict:
        """For a checkpoint's meta (JSON)."""
        return {"returns": list(self.returns), "count": self.episodes, "best_mean100": self.best_mean100}

    def load_state(self, state: dict) -> None:
        self.returns.extend(float(r) for r in state["returns"])
        self.episodes = int(state["count"])
        self.best_mean100 = state["best_mean100"]
