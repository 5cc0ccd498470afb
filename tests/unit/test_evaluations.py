"""Evaluation rounds on the server's core (ps/core/evaluations.py) and the evaluator role
(worker/evaluator.py) against the real core in one process: checks, the stop rule, the record kept
across a checkpoint, and that an evaluator never changes the parameters."""
import threading
import time

import grpc
import numpy as np
import pytest
import torch

from ps.api.layout import Layout
from ps.api.spec import ConfigError, RunSpec
from ps.config import ServerConfig
from ps.core.errors import RequestError
from ps.core.evaluations import EvaluationRecord, check_report, eval_target_reason
from ps.core.in_process import InProcessSource
from ps.core.parameter_server import ParameterServer
from ps.records.resume import finished_reason
from worker.envs import EnvBatch
from worker.evaluator import Evaluator
from worker.agents import make_agent

LAYOUT = Layout.from_pairs([("w", (3,))])


@pytest.mark.parametrize("version, returns, lengths, reason", [
    (5, [1.0], [1], "bad_version"),           # beyond the current version (4)
    (-1, [1.0], [1], "bad_version"),
    (0, [], [], "bad_evaluation"),            # no episodes
    (0, [1.0] * 10_001, [1] * 10_001, "bad_evaluation"),
    (0, [1.0, 2.0], [1], "bad_evaluation"),   # lengths do not match
    (0, [float("nan")], [1], "non_finite"),
    (0, [float("inf")], [1], "non_finite"),
    (0, [2e9], [1], "bad_evaluation"),
    (0, [1.0], [0], "bad_evaluation"),
])
def test_a_malformed_report_is_refused_with_its_reason(version, returns, lengths, reason):
    with pytest.raises(RequestError) as err:
        check_report(version, 4, returns, lengths)
    assert err.value.reason == reason and err.value.code == "INVALID_ARGUMENT" and "\n" not in err.value.message


def test_the_record_keeps_the_latest_and_best_round_across_a_checkpoint():
    record = EvaluationRecord()
    record.add([10.0, 30.0], [10, 30], 7, 1000, 1.5)
    record.add([5.0, 5.0], [5, 5], 9, 2000, 3.0)
    status = record.status()
    assert status["eval_mean"] == 5.0 and status["eval_std"] == 0.0 and status["eval_version"] == 9
    assert status["best_eval_mean"] == 20.0 and status["evaluations"] == 2 and status["eval_steps"] == 2000
    again = EvaluationRecord()
    again.load_state(record.state())
    assert again.status() == status
    empty = EvaluationRecord()
    empty.load_state(None)  # a checkpoint from before evaluations
    assert empty.status()["eval_mean"] is None and empty.status()["evaluations"] == 0


def test_the_target_is_judged_on_evaluation_by_default_with_eval_every():
    assert RunSpec(eval_every=5).target_on_eval and not RunSpec().target_on_eval
    assert not RunSpec(eval_every=5, target_on="train").target_on_eval
    record = EvaluationRecord()
    record.add([480.0], [480], 3, 100, 1.0)
    assert eval_target_reason(RunSpec(eval_every=5, target_return=475), record.latest).startswith("eval_mean 480.0")
    assert eval_target_reason(RunSpec(eval_every=5, target_return=490), record.latest) is None
    assert eval_target_reason(RunSpec(eval_every=5, target_on="train"), record.latest) is None
    assert eval_target_reason(RunSpec(eval_every=5, target_return=None), record.latest) is None


@pytest.mark.parametrize("fields, words", [
    ({"target_on": "eval"}, "needs evaluation rounds"),
    ({"target_on": "best"}, "unknown --target-on"),
    ({"eval_every": -1.0}, "--eval-every"),
    ({"eval_every": float("nan")}, "--eval-every"),
    ({"eval_every": 1.0, "eval_episodes": 0}, "--eval-episodes"),
])
def test_bad_evaluation_flags_are_one_line(fields, words):
    with pytest.raises(ConfigError, match=words):
        RunSpec(**fields)


@pytest.fixture
def core_for(tmp_path):
    cores = []

    def make(**fields) -> ParameterServer:
        core = ParameterServer(RunSpec(**fields), ServerConfig(run_dir=str(tmp_path / f"run{len(cores)}")))
        cores.append(core)
        return core
    yield make
    for core in cores:
        core.close()


def test_an_evaluator_is_not_a_learner_and_never_pushes(core_for):
    core = core_for(eval_every=1.0, sync=True)
    learner, _ = core.register("h", 1)
    evaluator, _ = core.register("h", 2, evaluator=True)
    with pytest.raises(RequestError, match="no parameters yet"):
        core.pull(evaluator, LAYOUT, b"")          # it waits for a learner's parameters ...
    assert core.status()["rejected"] == {}          # ... which is not a refusal
    core.pull(learner, LAYOUT, np.ones(3, np.float32).tobytes())
    status = core.status()
    assert status["workers_connected"] == 1 and status["evaluators_connected"] == 1
    assert core._live_ids() == {learner}            # a --sync round never waits for it
    assert [w["role"] for w in status["workers"]] == ["learner", "evaluator"]
    from ps.api.source import Push
    with pytest.raises(RequestError, match="never pushes"):
        core.push(Push(evaluator, 0, np.ones(3, np.float32).tobytes(), 1))
    with pytest.raises(RequestError, match="only a worker registered as an evaluator"):
        core.report_evaluation(learner, 0, (1.0,), (1,))
    assert core.version == 0 and core.status()["rejected"] == {"evaluator_push": 1, "not_evaluator": 1}


def test_an_evaluator_is_refused_by_a_run_without_evaluation(core_for):
    with pytest.raises(RequestError, match="--eval-every"):
        core_for().register("h", 1, evaluator=True)


def test_a_round_at_the_target_stops_the_run_and_a_resume_sees_it_finished(core_for):
    core = core_for(eval_every=1.0, target_return=100.0)
    learner, _ = core.register("h", 1)
    evaluator, _ = core.register("h", 2, evaluator=True)
    core.pull(learner, LAYOUT, np.ones(3, np.float32).tobytes())
    assert core.report_evaluation(evaluator, 0, (50.0, 60.0), (50, 60)) is False
    core.episodes.extend([200.0] * 100)  # training episodes above the target do not stop a run judged on evaluation
    core._check_stop()
    assert not core.stopped.is_set()
    assert core.report_evaluation(evaluator, 0, (100.0, 120.0), (100, 120)) is True
    status = core.status()
    assert status["solved"] and status["stop_reason"].startswith("eval_mean 110.0 >= target 100")
    meta = core.state_dict()["meta"]
    assert finished_reason(RunSpec(eval_every=1.0, target_return=100.0), meta).startswith("eval_mean 110.0")
    assert finished_reason(RunSpec(eval_every=1.0, target_return=150.0), meta) is None



def _wait_for_a_round(core, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while core.evaluations.rounds < 1 and time.monotonic() < deadline:
        time.sleep(0.05)


def _a_learner_offers_weights(core) -> None:
    """The first parameters, offered as a learner does (an evaluator never offers any)."""
    envs = EnvBatch("CartPole-v1", 1, 0)
    agent = make_agent(core.spec, envs, 0)
    envs.close()
    learner, _ = core.register("h", 1)
    core.pull(learner, agent.flat.layout, agent.flat.values_bytes())

def test_the_evaluator_plays_reports_and_leaves_on_stop_without_changing_theta(core_for):
    core = core_for(eval_every=0.05, eval_episodes=3, target_return=None)
    source = InProcessSource(core)
    threads = torch.get_num_threads()
    _a_learner_offers_weights(core)
    theta = core.theta.copy()
    evaluator = Evaluator(source)
    thread = threading.Thread(target=evaluator.run)
    thread.start()
    try:
        _wait_for_a_round(core)
        status = core.status()
        assert status["evaluations"] == 1 and status["eval_episodes"] == 3 and status["eval_version"] == 0
        assert 5 <= status["eval_mean"] <= 500       # CartPole episodes of the initial policy
        time.sleep(0.3)                              # more waits, no new version: no new round
        assert core.evaluations.rounds == 1
        assert core.version == 0 and np.array_equal(core.theta, theta)
    finally:
        core.request_stop("test over")
        thread.join(timeout=15)
        torch.set_num_threads(threads)
    assert not thread.is_alive()
    assert core.status()["evaluators_connected"] == 0   # it heard 'stop' and left


def test_a_report_to_a_server_that_forgot_the_evaluator_is_dropped_and_the_round_played_again(core_for):
    from worker.client import UnknownWorker

    class Forgetful(InProcessSource):
        forgets = 1

        def report_evaluation(self, *args):
            if self.forgets:
                self.forgets -= 1
                raise UnknownWorker(grpc.StatusCode.NOT_FOUND, "worker 2 is not registered with this server incarnation")
            return super().report_evaluation(*args)

    core = core_for(eval_every=0.05, eval_episodes=2, target_return=None)
    _a_learner_offers_weights(core)
    threads = torch.get_num_threads()
    evaluator = Evaluator(Forgetful(core))
    thread = threading.Thread(target=evaluator.run)
    thread.start()
    try:
        _wait_for_a_round(core)
        assert core.evaluations.rounds == 1 and evaluator.rounds == 1   # the first report was not re-sent
        assert evaluator.worker_id == 3                                  # it registered again (ids 1, 2, 3)
        assert core.evaluations.latest.version == 0
    finally:
        core.request_stop("test over")
        thread.join(timeout=15)
        torch.set_num_threads(threads)
    assert not thread.is_alive()
