"""The Agent protocol: all the actor-learner loop (worker/loop.py) asks of an algorithm."""
from __future__ import annotations

from typing import Protocol

from ..envs import EnvBatch
from ..networks import FlatParams


class Agent(Protocol):
    """Acts for one rollout on fixed parameters and leaves the summed gradient in flat.grads.

    The loop loads the server's parameters into `flat` (flat.load), reads the gradient from it
    (flat.grads), and hands theta- to load_target when the server sends it.
    """

    flat: FlatParams
    """The network's parameters and gradients as two flat buffers, in the layout the server holds."""
    target_version: int
    """The version of theta- this agent holds, sent with each push; 0 when it has none (A3C)."""

    def learn_step(self, envs: EnvBatch) -> tuple[int, dict[str, float]]:
        """Act, then backward the summed loss into flat.grads. Returns (env steps taken, figures for
        the server's logs)."""

    def load_target(self, data: bytes | memoryview, version: int) -> None:
        """Adopt theta- (flat float32 bytes) at `version` (value-based methods; A3C ignores it)."""

    def summary(self) -> str:
        """A line for the log when the run stops ("" for nothing to add)."""
