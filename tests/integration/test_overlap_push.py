"""--overlap-push: a real server and one real worker-run, whose every push is in flight while the next
rollout runs. With one worker any staleness comes from the overlap alone: without it, always 0."""
import csv

from tests.conftest import kill, reached, start_server, start_worker

RANDOM_POLICY_MEAN100 = 22  # a uniformly random policy on CartPole-v1


def test_one_overlapped_worker_learns_cartpole_one_version_behind(tmp_path):
    server = start_server(tmp_path / "run", "--env", "CartPole-v1", "--algo", "a3c", "--seed", "1",
                          "--overlap-push", "--target-return", "200", "--total-steps", "300000")
    worker = start_worker(server.address)
    try:
        assert server.wait(timeout=180) == 0, server.proc.stdout.read()
        assert worker.wait(timeout=30) == 0, worker.stdout.read()
    finally:
        for p in (worker, server.proc):
            kill(p)
    summary = server.summary()
    assert reached(summary, 200) and 200 > 5 * RANDOM_POLICY_MEAN100
    spec = summary["run_spec"]
    assert spec["overlap_push"] and summary["env_steps"] <= 300000 + spec["t_max"] * spec["envs_per_worker"]
    with open(server.run_dir / "pushes.csv") as f:
        staleness = [int(r["staleness"]) for r in csv.DictReader(f)]
    # The first push leaves with the initial weights and meets them; every later one is one behind.
    assert staleness[0] == 0 and set(staleness[1:]) == {1}
    assert summary["staleness"]["p50"] >= 1
