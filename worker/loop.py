"""The actor-learner loop: register, build env and agent from the run spec, then
pull -> act t_max steps -> push the summed gradient (the outcome carries fresh weights) -> repeat.

It talks to the server through any ps.api.source.ParameterSource (worker/client.py over gRPC,
ps/core/in_process.py in the same process) and to the algorithm through worker.agents.Agent.
"""
from __future__ import annotations

import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ps.api.source import ParameterSource, Push, UnknownWorker, Weights

from .agents import Agent, make_agent
from .client import ServerUnavailable
from .delay import InjectedDelay
from .envs import EnvBatch, make_env_batch
from .normalize import normalized
from .wire import wire_gradients

log = logging.getLogger("worker")


@dataclass
class WorkerCounters:
    pushes: int = 0
    env_steps: int = 0
    failed_pushes: int = 0    # pushes lost in flight or refused; their gradients are discarded, never re-sent
    unknown_pushes: int = 0   # ... of which refused NOT_FOUND: the server restarted, or timed this worker out
    dropped_pushes: int = 0   # pushes a server staleness policy declined (their weights were still fresh)
    re_registrations: int = 0


class ActorLearner:
    def __init__(self, source: ParameterSource, delay: "InjectedDelay | None" = None) -> None:
        self.source = source
        self.delay = delay
        self.counters = WorkerCounters()
        self.worker_id = 0
        self.version = 0
        self.wire_dtype = "float32"
        self.instrument = None  # bench.atari's timers: called with (envs, agent) once both are built

    def run(self) -> None:
        """Train until the server says stop. Raises ServerUnavailable / ServerRefused on failure."""
        torch.set_num_threads(1)  # many workers on few cores fight otherwise
        reg = self.source.register(socket.gethostname(), os.getpid())
        spec = reg.spec
        self.worker_id = reg.worker_id
        self.wire_dtype = spec.wire_dtype
        envs = make_env_batch(spec, reg.seed)
        agent = make_agent(spec, envs, reg.seed, reg.worker_id)
        envs = normalized(envs, spec, agent.flat)
        if self.instrument is not None:
            self.instrument(envs, agent)
        log.info("worker %d: %s %s, %d envs x t_max %d, seed %d, %d parameters",
                 self.worker_id, spec.env_id, spec.algo, len(envs), spec.t_max, reg.seed, agent.flat.layout.size)
        try:
            stop = self._first_pull(agent)
            if spec.overlap_push and not stop:
                stop = self._overlapped(agent, envs)
            while not stop:
                env_steps, stats = agent.learn_step(envs)
                stop = self._push(agent, envs, env_steps, stats)
            c = self.counters
            log.info("worker %d: server says stop after %d pushes (%d dropped as too stale), %d env steps; "
                     "%d pushes lost (%d refused as from an unknown worker), %d re-registrations",
                     self.worker_id, c.pushes, c.dropped_pushes, c.env_steps, c.failed_pushes, c.unknown_pushes,
                     c.re_registrations)
            summary = agent.summary()
            if summary:
                log.info("worker %d: %s", self.worker_id, summary)
            self.source.leave(self.worker_id, "stopped")
        finally:
            envs.close()

    def _pull(self, agent: Agent, initial: bool = False) -> bool:
        weights: Weights = self.source.pull(self.worker_id, agent.flat.layout,
                                            agent.flat.values_bytes() if initial else b"")
        agent.flat.load(weights.params)
        self.version = weights.version
        if weights.target_params:  # value-based methods: theta- comes only when its version changed
            agent.load_target(weights.target_params, weights.target_version)
        return weights.stop

    def _first_pull(self, agent: Agent) -> bool:
        """The first pull, offering our initial weights. Building envs can outlast --worker-timeout on a
        loaded host: a NOT_FOUND here means register again, as after a failed push."""
        try:
            return self._pull(agent, initial=True)
        except UnknownWorker:
            return self._rejoin(agent)

    def _resync(self, agent: Agent) -> bool:
        """Pull again after a failed push; a NOT_FOUND means the server no longer knows this worker id
        (it restarted, or it timed this worker out, e.g. after the process was stopped): register again."""
        try:
            return self._pull(agent)
        except UnknownWorker:
            return self._rejoin(agent)

    def _rejoin(self, agent: Agent) -> bool:
        old = self.worker_id
        reg = self.source.register(socket.gethostname(), os.getpid())
        self.worker_id = reg.worker_id
        self.counters.re_registrations += 1
        log.warning("worker %d: the server no longer knows this worker (it restarted or timed the worker out; "
                    "incarnation %s); rejoined as worker %d", old, reg.incarnation, self.worker_id)
        # Offer our weights too: a server restarted without a checkpoint adopts them, one with a
        # checkpoint keeps its own (and refuses us if our layout no longer matches).
        return self._pull(agent, initial=True)

    def _push(self, agent: Agent, envs: EnvBatch, env_steps: int, stats: dict) -> bool:
        push = self._message(agent, envs, env_steps, stats, self.version)
        return self._settle(agent, push, self._send(push))

    def _overlapped(self, agent: Agent, envs: EnvBatch) -> bool:
        """The loop with each push in flight during the next rollout (--overlap-push): that rollout
        acts and learns on the weights the worker already has, so its gradient is one version older
        when it arrives; the reply's weights are loaded before the push after it is sent."""
        with ThreadPoolExecutor(1, thread_name_prefix="push") as sender:
            in_flight = None
            while True:
                version = self.version
                env_steps, stats = agent.learn_step(envs)
                if in_flight is not None and self._settle(agent, *in_flight.result()):
                    return True  # the server says stop
                # A copy: the next learn_step writes flat.grads while this one is on the wire.
                push = self._message(agent, envs, env_steps, stats, version, copy=True)
                in_flight = sender.submit(lambda p=push: (p, self._send(p)))

    def _message(self, agent: Agent, envs: EnvBatch, env_steps: int, stats: dict, version: int,
                 copy: bool = False) -> Push:
        returns, lengths = envs.take_finished()
        gradients = wire_gradients(agent.flat.grads.numpy(), self.wire_dtype)
        if copy and self.wire_dtype == "float32":  # float16's cast is a new array already
            gradients = np.array(gradients)
        return Push(self.worker_id, version, memoryview(gradients).cast("B"), env_steps, self.wire_dtype,
                    episode_returns=tuple(returns), episode_lengths=tuple(lengths), stats=stats,
                    target_version=agent.target_version, moments=envs.take_moments())

    def _send(self, push: Push):
        """The push's outcome, or the error that lost it: returned, not raised, so that _settle handles
        it on the loop's thread when the push was sent from the overlap's thread."""
        if self.delay is not None:
            self.delay.sleep()
        try:
            return self.source.push(push)
        except (ServerUnavailable, UnknownWorker) as err:
            return err

    def _settle(self, agent: Agent, push: Push, outcome) -> bool:
        """Adopt the push's outcome (the server's weights), or re-pull after a lost push."""
        if isinstance(outcome, Exception):
            # The gradient is lost (and stale by now); re-pull with retries (re-registering if the
            # server restarted), then carry on with the same envs and network.
            self.counters.failed_pushes += 1
            self.counters.unknown_pushes += isinstance(outcome, UnknownWorker)
            log.warning("worker %d: push failed (%s); re-pulling", self.worker_id, outcome)
            return self._resync(agent)
        self.counters.pushes += 1
        self.counters.env_steps += push.env_steps
        if not outcome.applied:
            self.counters.dropped_pushes += 1
            log.debug("worker %d: push dropped by the server (%s)", self.worker_id, outcome.dropped_reason)
        agent.flat.load(outcome.params)
        self.version = outcome.version
        if outcome.target_params:
            agent.load_target(outcome.target_params, outcome.target_version)
        return outcome.stop
