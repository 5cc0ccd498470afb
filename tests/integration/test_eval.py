"""ps-eval: a trained policy, loaded from a run dir or a checkpoint with its run spec, plays well above
a random policy (CartPole: ~22), for A3C and a Q method; bad paths are one line; --video writes MP4s."""
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli, reached, start_server

RANDOM_CARTPOLE = 22.0


@pytest.fixture(scope="module", params=["a3c", "n-step-q"])
def trained(request, tmp_path_factory) -> tuple[str, Path]:
    # A3C's sampled policy at mean100 100 can still be a poor greedy one: it trains further (quickly).
    target = 200 if request.param == "a3c" else 100
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    server = start_server(run_dir, "--algo", request.param, "--seed", "2", "--local-workers", "2",
                          "--target-return", str(target), "--total-steps", "400000", "--checkpoint-every", "2")
    assert server.wait(timeout=240) == 0
    assert reached(server.summary(), target)
    return request.param, run_dir


def ps_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([cli("ps-eval"), *args], capture_output=True, text=True, timeout=180)


def test_a_trained_policy_plays_far_above_random_from_its_run_dir(trained):
    algo, run_dir = trained
    # A3C is judged on its sampled policy, the one its mean100 measured: the greedy one of a policy at
    # mean100 200 has scored 47 here. The Q methods' policy is the greedy one.
    out = ps_eval(str(run_dir), "--episodes", "5", *([] if algo == "a3c" else ["--deterministic"]))
    assert out.returncode == 0, out.stderr
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["algo"] == algo and result["episodes"] == 5 and len(result["returns"]) == 5
    assert result["mean_return"] >= 3 * RANDOM_CARTPOLE, result
    assert "over 5 episodes" in out.stdout


def test_a_checkpoint_file_loads_with_its_own_run_spec(trained):
    _, run_dir = trained
    newest = sorted((run_dir / "checkpoints").glob("ckpt-*.a3c"))[-1]
    out = ps_eval(str(newest), "--episodes", "2", "--out", str(run_dir / "ckpt-eval.json"))
    assert out.returncode == 0, out.stderr
    result = json.loads((run_dir / "ckpt-eval.json").read_text())
    assert result["source"] == str(newest) and result["version"] > 0 and result["episodes"] == 2


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "nothing-here", "cannot read"),
    (lambda d: d, "not a run dir"),
    (lambda d: (d / "junk.a3c", (d / "junk.a3c").write_bytes(b"A3C-CHECKPOINT 1\n" + b"0" * 64 + b"\nxx"))[0],
     "fails its checksum"),
])
def test_what_is_not_a_policy_is_one_line(tmp_path, make, words):
    out = ps_eval(str(make(tmp_path)), "--episodes", "1")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ps-eval: error:") and words in lines[0]


def test_video_records_each_episode_as_an_mp4(trained, tmp_path):
    algo, run_dir = trained
    if algo != "a3c":
        pytest.skip("one method is enough for the recorder")
    out = ps_eval(str(run_dir), "--episodes", "2", "--video", str(tmp_path / "videos"))
    assert out.returncode == 0, out.stderr
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) >= 2 and all(v.stat().st_size > 1000 for v in videos[:2])
