"""The paper's domains on real processes: MinAtar (images), Pendulum (continuous actions), Atari Pong
(the paper's network, feed-forward and LSTM), each a real ps-serve on port 0 with real workers."""
import csv

import pytest

from ps.api.spec import RunSpec
from ps.api.layout import Layout
from tests.conftest import kill, start_server, start_worker

RANDOM_BREAKOUT_MEAN100 = 0.36   # MinAtar/Breakout-v1, uniform random actions (best window of 100: 0.42)
RANDOM_PENDULUM_MEAN100 = -1200  # Pendulum-v1, uniform random torques


def _run(tmp_path, *args, timeout: float = 240, workers: int = 2):
    server = start_server(tmp_path / "run", *args)
    procs = [start_worker(server.address) for _ in range(workers)]
    try:
        assert server.wait(timeout=timeout) == 0, server.proc.stdout.read()
        for w in procs:
            assert w.wait(timeout=60) == 0, w.stdout.read()
    finally:
        for p in (*procs, server.proc):
            kill(p)
    return server, server.summary()


def test_a3c_learns_minatar_breakout_beyond_a_random_policy(tmp_path):
    server, summary = _run(tmp_path, "--env", "MinAtar/Breakout-v1", "--algo", "a3c", "--seed", "1",
                           "--target-return", "3", "--total-steps", "300000")
    # solved: the mean of the last 100 episodes reached the target (pushes in flight may move it after)
    assert summary["solved"] and summary["best_mean100"] >= 3 > 5 * RANDOM_BREAKOUT_MEAN100
    assert summary["env_steps"] <= 300000 + 2 * 40
    spec = summary["run_spec"]
    assert spec["entropy_beta"] == 0.01 and spec["lr"] == 1e-3 and spec["dense_size"] == 256  # MinAtar's family defaults...
    assert spec["total_steps"] == 300000 and spec["target_return"] == 3  # ...under the flags given


def test_a3c_learns_pendulum_with_a_gaussian_policy(tmp_path):
    server, summary = _run(tmp_path, "--env", "Pendulum-v1", "--algo", "a3c", "--seed", "1",
                           "--target-return", "-800", "--total-steps", "800000")
    # -800 is 400 above a random policy's mean100, whose spread over 100 episodes is about 30
    assert summary["solved"] and summary["best_mean100"] >= -800 >= RANDOM_PENDULUM_MEAN100 + 400
    assert summary["env_steps"] <= 800000 + 2 * 80
    assert summary["run_spec"]["gamma"] == 0.95 and summary["run_spec"]["envs_per_worker"] == 16  # its preset (ps/api/presets.py)


def _expected_layout(lstm: bool) -> Layout:
    from worker.agents.a3c import A3CAgent
    from worker.envs import EnvBatch
    spec = RunSpec(env_id="ALE/Pong-v5", lstm=lstm, envs_per_worker=1)
    envs = EnvBatch(spec.env_id, 1, seed=0)
    try:
        return A3CAgent(spec, envs, seed=0).flat.layout
    finally:
        envs.close()


@pytest.mark.parametrize("lstm", [False, True], ids=["feed-forward", "lstm"])
def test_short_pong_run_completes_with_the_papers_network(tmp_path, lstm):
    args = ["--env", "ALE/Pong-v5", "--algo", "a3c", "--seed", "2", "--total-steps", "800"]  # 3,200 frames
    server, summary = _run(tmp_path, *args, *(["--lstm"] if lstm else []), timeout=180)
    layout = _expected_layout(lstm)
    names = {e.name for e in layout.entries}
    assert summary["layout_hash"] == layout.hash and summary["parameters"] == layout.size
    assert {"torso.0.weight", "torso.2.weight", "torso.5.weight"} <= names  # conv 8x8, conv 4x4, dense 256
    assert ("lstm.weight_hh" in names) == lstm
    assert layout.size == (677_943 if not lstm else 1_204_279)
    with open(server.run_dir / "pushes.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["updates"] > 0
    assert all(int(r["env_steps"]) == 4 * 5 for r in rows)  # 4 envs x t_max 5: Atari's family defaults
    assert summary["env_steps"] >= 800 and len(summary["workers"]) == 2
