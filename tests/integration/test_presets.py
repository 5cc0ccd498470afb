"""A Box2D env out of the box, with its preset: a real ps-serve with 2 local workers on LunarLander-v3."""
from tests.conftest import kill, start_server


def test_lunar_lander_runs_with_its_preset_and_its_own_target(tmp_path):
    server = start_server(tmp_path / "run", "--env", "LunarLander-v3", "--local-workers", "2", "--seed", "1",
                          "--total-steps", "1600")
    try:
        assert server.wait(timeout=120) == 0
        out = server.proc.stdout.read()
    finally:
        kill(server.proc)
    spec = server.summary()["run_spec"]
    assert spec["preset"] == "auto" and spec["total_steps"] == 1600  # the flag over the preset's 500k
    assert spec["target_return"] == 200.0  # gymnasium's threshold, not CartPole's 475
    assert server.summary()["env_steps"] >= 1600
    assert "preset LunarLander-v3 (a3c row" in out and "target_return=200.0" in out, out
