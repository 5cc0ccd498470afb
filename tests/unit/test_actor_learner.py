"""The actor-learner loop against the real parameter-server core, in one process, through the
ParameterSource protocol (ps.core.in_process.InProcessSource): no gRPC, no sockets.

Seeded runs are deterministic (one worker, one torch thread), so the step counts below are
measured, with a wide margin: A3C seed 0 reaches mean100 150 after ~26k steps; n-step Q seed 2
reaches 100 after ~18k (a random policy scores ~22 on CartPole).
"""
import math

import pytest
import torch

from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.in_process import InProcessSource
from ps.core.parameter_server import ParameterServer
from worker.loop import ActorLearner


@pytest.fixture
def serve(tmp_path):
    """serve(spec) -> (core, learner) after the learner ran until the core said stop."""
    cores = []
    threads = torch.get_num_threads()

    def run(spec: RunSpec):
        core = ParameterServer(spec, ServerConfig(run_dir=str(tmp_path / f"run{len(cores)}")))
        cores.append(core)
        learner = ActorLearner(InProcessSource(core))
        learner.run()
        return core, learner

    yield run
    for core in cores:
        core.close()
    torch.set_num_threads(threads)  # the loop sets one thread for itself


def test_a3c_runs_to_the_step_budget_one_version_per_push(serve):
    spec = RunSpec(env_id="CartPole-v1", seed=0, total_steps=20_000, target_return=None)
    core, learner = serve(spec)
    per_push = spec.envs_per_worker * spec.t_max                # 64 envs x 4 steps = 256
    pushes = math.ceil(spec.total_steps / per_push)             # the push that crosses the budget counts
    status = core.status()
    assert status["state"] == "done" and status["stop_reason"] == "total steps 20000 reached"
    assert learner.counters.pushes == pushes and learner.counters.failed_pushes == 0
    assert core.version == learner.version == pushes             # every push applied, one version each
    assert core.global_step == learner.counters.env_steps == pushes * per_push
    assert status["workers_connected"] == 0                      # the worker left when told to stop
    assert status["episodes"] > 0


def test_a3c_learns_cartpole_well_beyond_a_random_policy(serve):
    core, learner = serve(RunSpec(env_id="CartPole-v1", seed=0, total_steps=200_000, target_return=150.0))
    status = core.status()
    assert status["solved"], status["stop_reason"]
    assert status["final_mean100"] >= 150.0                     # random play: ~22
    assert core.global_step < 120_000                           # measured: 26,112
    assert core.version == learner.counters.pushes


def test_n_step_q_learns_cartpole_with_a_target_network_from_the_server(serve):
    spec = RunSpec(env_id="CartPole-v1", algo="n-step-q", seed=2, lr=3e-3, t_max=5, envs_per_worker=8,
                   target_update_steps=2000, total_steps=100_000, target_return=100.0)
    core, learner = serve(spec)
    status = core.status()
    assert status["solved"], status["stop_reason"]
    assert status["final_mean100"] >= 100.0
    assert core.global_step < 80_000                            # measured: 17,800
    target = status["target_network"]
    assert target["version"] > 1 and target["copies"] >= core.global_step // 2000 - 1
    assert target["sends_total"] > 1                            # theta- reached the worker after each copy


def test_a_worker_timed_out_while_building_its_envs_registers_again(tmp_path):
    """Building envs can outlast --worker-timeout on a loaded host: the first pull's NOT_FOUND means rejoin."""
    import time

    threads = torch.get_num_threads()
    core = ParameterServer(RunSpec(env_id="CartPole-v1", seed=0, total_steps=2_000, target_return=None),
                           ServerConfig(run_dir=str(tmp_path / "run"), worker_timeout_seconds=0.05))
    learner = ActorLearner(InProcessSource(core))

    def slow_envs(envs, agent):  # between Register and the first Pull
        time.sleep(0.2)
        core.expire_workers()
    learner.instrument = slow_envs
    try:
        learner.run()
        assert learner.counters.re_registrations == 1 and learner.worker_id == 2
        assert core.status()["stop_reason"] == "total steps 2000 reached"
    finally:
        core.close()
        torch.set_num_threads(threads)
