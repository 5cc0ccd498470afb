"""The ParameterSource protocol (ps/api/source.py) over a ParameterServer in the same process.

What worker/client.py does over gRPC, minus the network: tests run the actor-learner loop against the
real core with it, and a notebook can train without a server process.
"""
from __future__ import annotations

from ps.api.layout import Layout
from ps.api.source import Push, PushOutcome, Registration, Weights
from ps.core.parameter_server import ParameterServer


class InProcessSource:
    def __init__(self, core: ParameterServer) -> None:
        self.core = core

    def register(self, host: str, pid: int, evaluator: bool = False) -> Registration:
        worker_id, seed = self.core.register(host, pid, evaluator)
        return Registration(worker_id, seed, self.core.spec, self.core.incarnation)

    def pull(self, worker_id: int, layout: Layout, initial: bytes = b"") -> Weights:
        params, version, stop, global_step = self.core.pull(worker_id, layout, initial)
        target_version, target = self.core.target_reply(worker_id)
        return Weights(params, version, stop, global_step, target_version, target)

    def push(self, push: Push) -> PushOutcome:
        return self.core.push(push)

    def leave(self, worker_id: int, reason: str) -> None:
        self.core.leave(worker_id, reason)

    def report_evaluation(self, worker_id: int, version: int, returns: tuple[float, ...],
                          lengths: tuple[int, ...]) -> bool:
        return self.core.report_evaluation(worker_id, version, returns, lengths)
