"""The actor-learner loop with normalisation against the real core in this process (ps.core.in_process).

Observation normalisation where it matters: MountainCar-v0, whose raw velocity (|v| <= 0.07) is tiny
next to its position, is left at -200 (the flag never reached) by A3C's defaults without it in 1M steps
(issue 18's measurement), and reached with it.

One worker: seeded and deterministic, so the step count is measured (seed 2: mean100 -150 after
93,184 steps), with a margin."""
import torch

from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.in_process import InProcessSource
from ps.core.parameter_server import ParameterServer
from worker.loop import ActorLearner


def test_a3c_with_normalised_observations_reaches_mountain_cars_flag(tmp_path):
    threads = torch.get_num_threads()
    spec = RunSpec(env_id="MountainCar-v0", seed=2, normalize_obs=True, total_steps=200_000, target_return=-150.0)
    core = ParameterServer(spec, ServerConfig(run_dir=str(tmp_path)))
    try:
        ActorLearner(InProcessSource(core)).run()
        status = core.status()
        assert status["solved"], status["stop_reason"]      # never reaching the flag scores -200
        assert core.global_step <= 150_000
    finally:
        core.close()
        torch.set_num_threads(threads)  # the loop sets one thread for itself


def test_a_q_method_reports_one_observation_per_env_step(tmp_path):
    threads = torch.get_num_threads()
    spec = RunSpec(env_id="CartPole-v1", algo="one-step-q", normalize_obs=True, normalize_reward=True,
                   envs_per_worker=4, total_steps=2_000, target_return=None)
    core = ParameterServer(spec, ServerConfig(run_dir=str(tmp_path)))
    try:
        ActorLearner(InProcessSource(core)).run()
        counts = {e.name: core.theta[start] for e, start in core.layout.buffers() if e.name.endswith(".count")}
        assert counts == {"obs_norm.count": core.global_step, "ret_norm.count": core.global_step}
    finally:
        core.close()
        torch.set_num_threads(threads)
