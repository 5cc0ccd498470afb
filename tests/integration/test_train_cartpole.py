"""A real server on port 0 and 2 real worker-run subprocesses train CartPole-v1 over loopback gRPC."""
import csv

from tests.conftest import kill, reached, start_server, start_worker

RANDOM_POLICY_MEAN100 = 22  # a uniformly random policy on CartPole-v1


def test_two_workers_learn_cartpole_and_the_records_agree(tmp_path):
    server = start_server(tmp_path / "run", "--env", "CartPole-v1", "--algo", "a3c", "--seed", "1",
                          "--target-return", "300", "--total-steps", "400000")
    workers = [start_worker(server.address) for _ in range(2)]
    try:
        assert server.wait(timeout=240) == 0, server.proc.stdout.read()
        for w in workers:
            assert w.wait(timeout=30) == 0, w.stdout.read()
    finally:
        for p in (*workers, server.proc):
            kill(p)
    summary = server.summary()
    assert reached(summary, 300) and 300 > 10 * RANDOM_POLICY_MEAN100 / 2
    assert summary["env_steps"] <= 400000 + 2 * summary["run_spec"]["t_max"] * summary["run_spec"]["envs_per_worker"]
    with open(server.run_dir / "pushes.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["updates"]
    assert sum(int(r["env_steps"]) for r in rows) == summary["env_steps"]
    assert sorted(int(r["applied_version"]) for r in rows) == list(range(summary["updates"]))
    assert all(int(r["staleness"]) == int(r["applied_version"]) - int(r["base_version"]) for r in rows)
    assert max(int(r["staleness"]) for r in rows) == summary["staleness"]["max"]
    assert len(summary["workers"]) == 2
    assert sum(w["pushes"] for w in summary["workers"]) == summary["updates"]
    for key in ("wall_seconds", "env_steps", "updates", "episodes", "final_mean100", "staleness", "workers", "run_spec"):
        assert key in summary
    assert {"p50", "p90", "p99", "max"} <= set(summary["staleness"])
    assert (server.run_dir / "params_final.npz").stat().st_size > 1000


def test_local_workers_flag_runs_the_whole_default(tmp_path):
    """What `make run` does, with a lower bar so it stays quick: --local-workers 2."""
    server = start_server(tmp_path / "run", "--local-workers", "2", "--seed", "3", "--target-return", "200")
    try:
        assert server.wait(timeout=240) == 0
        out = server.proc.stdout.read()
    finally:
        kill(server.proc)
    summary = server.summary()
    assert reached(summary, 200)
    assert "staleness p50" in out and "run over" in out
