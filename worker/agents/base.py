"""The Agent protocol: all the actor-learner loop (worker/loop.py) asks of an algorithm."""
from __future__ import annotations

from typing import Protocol

from ..envs import EnvBatch
from ..networks import FlatParams


EVAL_EPSILON = 0.05  # the Q methods' exploration while evaluated without --deterministic (DQN's usual)


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

    def play_step(self, envs: EnvBatch, deterministic: bool) -> None:
        """One step of every env on the current parameters, learning nothing (evaluation): the
        policy's most likely action (greedy Q) when deterministic, else its sample (epsilon-greedy Q
        at EVAL_EPSILON)."""

    def load_target(self, data: bytes | memoryview, version: int) -> None:
        """Adopt theta- (flat float32 bytes) at `version` (value-based methods; A3C ignores it)."""

    def summary(self) -> str:
        """A line for the log when the run stops ("" for nothing to add)."""
