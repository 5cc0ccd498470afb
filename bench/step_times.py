"""Where a worker's time goes, per push: timers bench.atari wraps around one in-process worker's env
batch, network and parameter source. Nothing on the worker's normal path changes: the wrappers are
instance attributes set on that one worker's objects (ActorLearner.instrument).

    env       the env batch's step (emulation and preprocessing)
    forward   the acting forward passes (one batched step per agent step, the bootstrap value)
    backward  the rest of learn_step: n-step returns, the loss's unrolled forward and its backward
    push      the whole Push call (serialise, the round trip, deserialise); split by bench.atari
"""
from __future__ import annotations

import time
from functools import wraps


class StepTimes:
    def __init__(self) -> None:
        self.env = self.forward = self.learn = self.push = 0.0
        self.pushes = 0
        self.started = self.ended = 0.0

    def install(self, envs, agent) -> None:
        """ActorLearner.instrument: wrap this worker's env batch, network and learn_step."""
        envs.step = self._timed(envs.step, "env")
        agent.model.step = self._timed(agent.model.step, "forward")
        learn_step = self._timed(agent.learn_step, "learn")

        @wraps(learn_step)
        def first_then(*args):
            if not self.started:
                self.started = time.perf_counter()
            return learn_step(*args)
        agent.learn_step = first_then

    def wrap_push(self, source) -> None:
        """Time each Push of this source (the worker's PSClient), on whichever thread sends it."""
        push = self._timed(source.push, "push")

        def counted(*args):
            out = push(*args)
            self.pushes += 1
            self.ended = time.perf_counter()
            return out
        source.push = counted

    def per_push_ms(self, wire_seconds: float) -> dict:
        """Milliseconds per push of each part; wait is the rest of the wall time (the round trip the
        worker sits out, less whatever an overlapped push hides), wire the serialisation measured alone."""
        n = max(self.pushes, 1)
        wall = (self.ended - self.started) / n
        backward = (self.learn - self.env - self.forward) / n
        parts = {"env": self.env / n, "forward": self.forward / n, "backward": backward, "wire": wire_seconds}
        parts["wait"] = max(wall - sum(parts.values()), 0.0)
        return {"wall": wall * 1e3, "round_trip": self.push / n * 1e3, **{k: v * 1e3 for k, v in parts.items()}}

    def _timed(self, fn, name: str):
        @wraps(fn)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                setattr(self, name, getattr(self, name) + time.perf_counter() - start)
        return timed
