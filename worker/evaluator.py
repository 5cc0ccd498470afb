"""The evaluator: a worker role that plays the current policy and reports how it does, learning nothing.

    worker-run --ps host:port --evaluator      # ps-serve --eval-every S --local-workers K starts one

Every eval_every seconds (the run spec's) it pulls the weights, plays eval_episodes episodes on one
env with the policy's most likely action (greedy Q) or, without eval_deterministic, its sample, and
reports their returns (ReportEvaluation). It never pushes: the parameters never change on its account.
Between rounds, and during a long round, it pulls every KEEP_ALIVE_SECONDS, so that the server does
not time it out and it hears 'stop' within that.
"""
from __future__ import annotations

import logging
import os
import socket
import time

import torch

from ps.api.source import ParameterSource, Registration, UnknownWorker

from .agents import Agent, make_agent
from .client import NoParameters
from .envs import EnvBatch
from .normalize import normalized
from .evaluate import play_episodes

log = logging.getLogger("worker.evaluator")
KEEP_ALIVE_SECONDS = 5.0          # well inside the server's --worker-timeout (30 s) and --stop-grace-seconds (10 s)
WAIT_FOR_PARAMETERS_SECONDS = 1.0


class RunOver(Exception):
    """The server said stop."""


class Evaluator:
    def __init__(self, source: ParameterSource, clock=time.monotonic, sleep=time.sleep) -> None:
        self.source = source
        self.worker_id = 0
        self.rounds = 0
        self._clock, self._sleep = clock, sleep
        self._last_call = clock()
        self._layout = None

    def run(self) -> None:
        """Evaluate until the server says stop. Raises ServerUnavailable / ServerRefused on failure."""
        torch.set_num_threads(1)
        reg = self._register()
        spec = reg.spec
        envs = EnvBatch(spec.env_id, 1, reg.seed)  # one env: episodes in turn, none favoured for being short
        agent = make_agent(spec, envs, reg.seed)
        envs = normalized(envs, spec, agent.flat, learn=False)  # the statistics of the weights it pulls
        self._layout = agent.flat.layout
        log.info("evaluator %d: %s %s, %d %s episodes every %g s", self.worker_id, spec.env_id, spec.algo,
                 spec.eval_episodes, "deterministic" if spec.eval_deterministic else "sampled", spec.eval_every)
        try:
            try:
                evaluated = None
                while True:
                    version = self._load(agent)
                    # a version already evaluated has nothing new to say
                    if version != evaluated and self._round(agent, envs, version, spec.eval_episodes,
                                                            spec.eval_deterministic):
                        evaluated = version
                    self._wait(spec.eval_every)
            except RunOver:
                pass
            log.info("evaluator %d: server says stop after %d evaluation rounds", self.worker_id, self.rounds)
            self.source.leave(self.worker_id, "stopped")
        finally:
            envs.close()

    def _round(self, agent: Agent, envs: EnvBatch, version: int, episodes: int, deterministic: bool) -> bool:
        """Play and report one round; whether the server recorded it."""
        start = self._clock()
        returns, lengths = play_episodes(agent, envs, episodes, deterministic, self._keep_alive)
        # Not re-sent to a server that forgot this evaluator: a restarted one may hold an older version.
        stop = self._call(lambda: self.source.report_evaluation(self.worker_id, version, tuple(returns),
                                                                 tuple(lengths)), resend=False)
        if stop is None:
            return False
        self.rounds += 1
        log.info("evaluator %d: version %d: mean return %.2f over %d episodes in %.1f s", self.worker_id, version,
                 sum(returns) / len(returns), len(returns), self._clock() - start)
        if stop:
            raise RunOver
        return True

    def _register(self) -> Registration:
        reg = self.source.register(socket.gethostname(), os.getpid(), evaluator=True)
        self.worker_id = reg.worker_id
        self._last_call = self._clock()
        return reg

    def _call(self, request, resend: bool = True):
        """One request; if the server no longer knows this evaluator (it restarted, or timed it out),
        register again and re-send it, or with resend=False return None."""
        try:
            result = request()
        except UnknownWorker as err:
            old = self.worker_id
            self._register()
            log.warning("evaluator %d: the server no longer knows it (%s); rejoined as %d", old, err, self.worker_id)
            if not resend:
                return None
            result = request()
        self._last_call = self._clock()
        return result

    def _pull(self):
        weights = self._call(lambda: self.source.pull(self.worker_id, self._layout))
        if weights.stop:
            raise RunOver
        return weights

    def _load(self, agent: Agent) -> int:
        """The current parameters loaded into the agent (waiting for a learner to offer the first); their version."""
        while True:
            try:
                weights = self._pull()
                break
            except NoParameters:
                self._sleep(WAIT_FOR_PARAMETERS_SECONDS)
        agent.flat.load(weights.params)
        return weights.version

    def _keep_alive(self) -> None:
        if self._clock() - self._last_call >= KEEP_ALIVE_SECONDS:
            self._pull()

    def _wait(self, seconds: float) -> None:
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:
            self._sleep(min(left, KEEP_ALIVE_SECONDS))
            self._keep_alive()
