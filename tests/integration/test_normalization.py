"""Normalisation shared by all workers, on real processes: the server's buffers hold the moments of every
observation and discounted return the workers saw, checkpoints keep them across a resume, and the saved
policy (ps-eval, a3c_cluster.Policy) applies them."""
import json
import subprocess

import numpy as np
import pytest

from ps.api.saved import load_policy
from tests.conftest import cli, start_server

RUN = ("--env", "CartPole-v1", "--normalize-obs", "--normalize-reward", "--local-workers", "2", "--envs", "8",
       "--target-return", "none", "--checkpoint-every", "0")


def buffers(run_dir) -> tuple[dict, int]:
    """The newest checkpoint's buffers by name, and its T."""
    newest = sorted((run_dir / "checkpoints").glob("ckpt-*.a3c"))[-1]
    saved = load_policy(newest)
    found = {e.name: saved.theta[start:start + e.size] for e, start in saved.layout.buffers()}
    return found, json.loads((run_dir / "summary.json").read_text())["env_steps"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("norm") / "run"
    server = start_server(run_dir, *RUN, "--total-steps", "4000")
    assert server.wait(timeout=120) == 0, server.proc.stdout.read()[-3000:]
    return run_dir


def test_the_checkpoint_holds_the_moments_of_every_observation_and_return_seen(run_dir):
    found, steps = buffers(run_dir)
    assert steps >= 4000
    assert found["obs_norm.count"][0] == steps == found["ret_norm.count"][0]  # one per env step, all workers
    var = found["obs_norm.var"]
    assert np.all(var > 1e-4) and not np.allclose(var, 1.0)    # learned from the data, not the initial 1
    assert np.all(np.abs(found["obs_norm.mean"]) < 2.0) and np.any(found["obs_norm.mean"] != 0.0)
    assert found["ret_norm.mean"][0] > 1.0                       # CartPole pays +1 a step: returns grow


def test_ps_eval_and_the_python_policy_apply_the_saved_statistics(run_dir):
    out = subprocess.run([cli("ps-eval"), str(run_dir), "--episodes", "2", "--deterministic"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads((run_dir / "eval.json").read_text())["episodes"] == 2

    import torch

    from a3c_cluster import Policy
    from worker.normalize import normalize
    policy = Policy.load(run_dir)
    found, _ = buffers(run_dir)
    mean, var = found["obs_norm.mean"], found["obs_norm.var"]
    for obs in np.random.default_rng(0).normal(mean, np.sqrt(var) * 3, size=(20, 4)).astype(np.float32):
        with torch.inference_mode():
            logits, _, _ = policy.model.step(torch.from_numpy(normalize(obs, mean, var, 10.0))[None])
        assert policy.act(obs) == int(logits.argmax())


def test_a_resumed_run_keeps_its_statistics(run_dir):
    before, steps_before = buffers(run_dir)
    server = start_server(run_dir, *RUN, "--total-steps", "6000")
    out = server.proc.communicate(timeout=120)[0]
    assert server.proc.returncode == 0 and "resuming from" in out, out[-3000:]
    after, steps_after = buffers(run_dir)
    assert steps_before < 6000 <= steps_after
    # Counted from the first run's statistics on: a reset would count only the steps since the resume.
    assert after["obs_norm.count"][0] == steps_after == after["ret_norm.count"][0]
