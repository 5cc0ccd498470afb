"""The ParameterSource protocol (ps/api/source.py) over a ParameterServer in the same process.

What worker/client.py does over gRPC, minus the network: tests run the actor-learner loop against the
real core with it, and a notebook can train without a server process.
"""
from __future__ import annotations

from ps.api.layout import Layout
import contextlib

from ps.api.source import Push, PushOutcome, Registration, UnknownWorker, Weights
from ps.core.errors import RequestError
from ps.core.parameter_server import ParameterServer


@contextlib.contextmanager
def _known():
    """The core's NOT_FOUND as the protocol's UnknownWorker, as worker/client.py does over gRPC."""
    try:
        yield
    except RequestError as err:
        if err.code == "NOT_FOUND":
            raise UnknownWorker(err.message) from None
        raise


class InProcessSource:
    def __init__(self, core: ParameterServer) -> None:
        self.core = core

    def register(self, host: str, pid: int, evaluator: bool = False) -> Registration:
        worker_id, seed = self.core.register(host, pid, evaluator)
        return Registration(worker_id, seed, self.core.spec, self.core.incarnation, self.core.sharding.addresses,
                            self.core.sharding.index)

    def pull(self, worker_id: int, layout: Layout, initial: bytes = b"") -> Weights:
        with _known():
            params, version, stop, global_step = self.core.pull(worker_id, layout, initial)
            target_version, target = self.core.target_reply(worker_id)
        return Weights(params, version, stop, global_step, target_version, target)

    def push(self, push: Push) -> PushOutcome:
        with _known():
            return self.core.push(push)

    def leave(self, worker_id: int, reason: str) -> None:
        self.core.leave(worker_id, reason)

    def report_evaluation(self, worker_id: int, version: int, returns: tuple[float, ...],
                          lengths: tuple[int, ...]) -> bool:
        with _known():
            return self.core.report_evaluation(worker_id, version, returns, lengths)
