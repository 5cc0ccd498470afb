"""The actor-learner loop: register, build env and network from the run spec, then
pull -> act t_max steps -> push the summed gradient (the reply carries fresh weights) -> repeat.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

import torch

from ps.api.v1 import parameter_server_pb2 as pb
from ps.api.spec import RunSpec

from .agents import make_agent
from .client import PSClient, ServerUnavailable, UnknownWorker
from .delay import InjectedDelay
from .envs import EnvBatch
from .wire import wire_gradients

log = logging.getLogger("worker")


@dataclass
class WorkerCounters:
    pushes: int = 0
    env_steps: int = 0
    failed_pushes: int = 0
    dropped_pushes: int = 0   # pushes a server staleness policy declined (their weights were still fresh)
    re_registrations: int = 0


class ActorLearner:
    def __init__(self, client: PSClient, delay: "InjectedDelay | None" = None) -> None:
        self.client = client
        self.delay = delay
        self.counters = WorkerCounters()
        self.worker_id = 0
        self.version = 0
        self.wire_dtype = "float32"

    def run(self) -> None:
        """Train until the server says stop. Raises ServerUnavailable / ServerRefused on failure."""
        torch.set_num_threads(1)  # many workers on few cores fight otherwise
        reg = self.client.register(socket.gethostname(), os.getpid())
        spec = RunSpec.from_json(reg.run_spec_json)
        self.worker_id = reg.worker_id
        self.wire_dtype = spec.wire_dtype
        envs = EnvBatch(spec.env_id, spec.envs_per_worker, reg.seed)
        agent = make_agent(spec, envs, reg.seed)
        log.info("worker %d: %s %s, %d envs x t_max %d, seed %d, %d parameters",
                 self.worker_id, spec.env_id, spec.algo, len(envs), spec.t_max, reg.seed, agent.flat.layout.size)
        try:
            stop = self._pull(agent, initial=True)
            while not stop:
                env_steps, stats = agent.learn_step(envs)
                stop = self._push(agent, envs, env_steps, stats)
            log.info("worker %d: server says stop after %d pushes (%d dropped as too stale), %d env steps",
                     self.worker_id, self.counters.pushes, self.counters.dropped_pushes, self.counters.env_steps)
            if hasattr(agent, "target_fetches"):
                log.info("worker %d: target network fetched %d times (last version %d)",
                         self.worker_id, agent.target_fetches, agent.target_version)
            self.client.leave(self.worker_id, "stopped")
        finally:
            envs.close()

    def _pull(self, agent, initial: bool = False) -> bool:
        reply = self.client.pull(self.worker_id, agent.flat.layout, agent.flat.values_bytes() if initial else b"")
        agent.flat.load(reply.params.data)
        self.version = reply.version
        _load_target(agent, reply)
        return reply.stop

    def _resync(self, agent) -> bool:
        """Pull again after a failed push; a NOT_FOUND means the server restarted: register again."""
        try:
            return self._pull(agent)
        except UnknownWorker:
            pass
        old = self.worker_id
        reg = self.client.register(socket.gethostname(), os.getpid())
        self.worker_id = reg.worker_id
        self.counters.re_registrations += 1
        log.warning("worker %d: the server restarted (incarnation %s); rejoined as worker %d",
                    old, reg.incarnation, self.worker_id)
        # Offer our weights too: a server restarted without a checkpoint adopts them, one with a
        # checkpoint keeps its own (and refuses us if our layout no longer matches).
        return self._pull(agent, initial=True)

    def _push(self, agent, envs, env_steps: int, stats: dict) -> bool:
        returns, lengths = envs.take_finished()
        request = pb.PushRequest(worker_id=self.worker_id, base_version=self.version,
                                 env_steps=env_steps, episode_returns=returns, episode_lengths=lengths, stats=stats,
                                 target_version=getattr(agent, "target_version", 0))
        gradients = wire_gradients(agent.flat.grads.numpy(), self.wire_dtype)
        if self.delay is not None:
            self.delay.sleep()
        try:
            reply, _, params = self.client.push(request, gradients, self.wire_dtype)
        except (ServerUnavailable, UnknownWorker) as err:
            # The gradient is lost (and stale by now); re-pull with retries (re-registering if the
            # server restarted), then carry on with the same envs and network.
            self.counters.failed_pushes += 1
            log.warning("worker %d: push failed (%s); re-pulling", self.worker_id, err)
            return self._resync(agent)
        self.counters.pushes += 1
        self.counters.env_steps += env_steps
        if not reply.applied:
            self.counters.dropped_pushes += 1
            log.debug("worker %d: push dropped by the server (%s)", self.worker_id, reply.dropped_reason)
        agent.flat.load(params)
        self.version = reply.version
        _load_target(agent, reply)
        return reply.stop


def _load_target(agent, reply) -> None:
    """Value-based methods: the reply carries theta- only when its version changed."""
    if reply.target_params.data:
        agent.load_target(reply.target_params.data, reply.target_version)

