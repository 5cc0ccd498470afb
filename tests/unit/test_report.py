"""ps-report on a finished run dir: three valid PNGs and a text summary whose numbers are summary.json's.

The run dir is written by the real server core (pushes.csv, tb/ through the TensorBoard observer,
summary.json through the same code as ps-serve), driven in-process with a tiny layout so it is quick.
"""
import json

import numpy as np
import pytest

from ps.tools import report
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.layout import Layout
from ps.service.progress import summary_lines
from ps.records.summary import summary_from_status, write_json_atomic
from ps.service.tensorboard import TensorBoardWriter
from ps.api.source import Push

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAGS = (0, 1, 0, 3, 2, 9, 1, 0, 17)   # base version = version - lag: staleness spread over several buckets


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("report") / "run"
    core = ParameterServer(RunSpec(total_steps=10_000_000, target_return=None),
                           ServerConfig(run_dir=str(run_dir)))
    core.observers.append(TensorBoardWriter(run_dir / "tb"))
    layout = Layout.from_pairs([("w", (8,)), ("b", (2,))])
    ids = [core.register("host-a", 1)[0], core.register("host-b", 2)[0]]
    core.pull(ids[0], layout, np.zeros(layout.size, dtype="<f4").tobytes())
    rng = np.random.default_rng(0)
    for i in range(600):
        grad = rng.standard_normal(layout.size).astype("<f4").tobytes()
        returns = [float(10 + i // 3 + k) for k in range(i % 3)]   # rising returns, 0-2 episodes per push
        core.push(Push(worker_id=ids[i % 2], base_version=max(0, core.version - LAGS[i % len(LAGS)]), gradient=grad, shape=[layout.size], env_steps=40, episode_returns=returns, episode_lengths=[int(r) for r in returns], stats={"policy_loss": 0.1, "value_loss": 1.0 / (1 + i), "entropy": 0.69}))
    core.push(Push(worker_id=ids[0], base_version=core.version, gradient=grad, shape=[layout.size], env_steps=40, episode_returns=[300.0], episode_lengths=[300]))  # ends on an episode
    write_json_atomic(run_dir / "summary.json", summary_from_status(core.status()))
    core.close()
    return run_dir


def test_report_writes_three_pngs_and_prints_summary_json_numbers(finished_run, capsys):
    assert report.main([str(finished_run)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((finished_run / "summary.json").read_text())
    for name in report.PLOTS:
        data = (finished_run / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > 20_000, f"{name} is only {len(data)} bytes"
    for line in summary_lines(summary):
        assert line in out
    st = summary["staleness"]
    assert f"{summary['env_steps']:,} env steps, {summary['updates']:,} updates, {summary['episodes']:,} episodes" in out
    assert f"staleness p50 {st['p50']}, p90 {st['p90']}, p99 {st['p99']}, max {st['max']}" in out
    assert st["max"] == 17 and summary["updates"] == 601


def test_a_running_run_dir_gives_the_same_numbers_from_its_files(finished_run):
    """Without summary.json (a run still going), pushes.csv and tb/ yield what the server counted."""
    summary = json.loads((finished_run / "summary.json").read_text())
    data = report.load_run(finished_run)
    data.summary = None
    derived = report.run_summary(data)
    for key in ("env_steps", "updates", "episodes", "final_mean100"):
        assert derived[key] == summary[key], key
    for key in ("p50", "p90", "p99", "max", "count", "histogram"):
        assert derived["staleness"][key] == summary["staleness"][key], key
    by_id = {w["id"]: w for w in summary["workers"]}
    for w in derived["workers"]:
        assert (w["pushes"], w["env_steps"], w["mean_staleness"]) == \
            (by_id[w["id"]]["pushes"], by_id[w["id"]]["env_steps"], by_id[w["id"]]["mean_staleness"])


def test_not_a_run_dir_is_one_line_error(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no pushes.csv" in err

