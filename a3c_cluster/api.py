"""train(): a parameter server and local workers for one run, as ps-serve runs them; Policy: a saved
policy (ps-eval's loader) that acts on single observations."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ps.api.moments import OBS_NORM
from ps.api.saved import SavedPolicy, load_policy
from ps.api.spec import ConfigError, RunSpec

RENAMED = {"env_id": "env", "envs_per_worker": "envs"}  # fields whose ps-serve flag is not --field-name


def train(env_id: str = "CartPole-v1", run_dir: str | Path = "runs/api", workers: int = 2, port: int = 0,
          quiet: bool = True, shards: int = 1, **run: Any) -> dict:
    """Run ps-serve with `workers` local workers (and the server as `shards` shards) until the run ends;
    returns its summary.json.

    `run` takes RunSpec fields (algo="n-step-q", lr=1e-3, total_steps=..., target_return=None ...);
    fields not given come from the defaults table, as on the command line. ConfigError on a bad
    field or a failed run (its last line of output)."""
    unknown = sorted(set(run) - {f.name for f in dataclasses.fields(RunSpec)})
    if unknown:
        raise ConfigError(f"unknown run spec field(s) {', '.join(unknown)}")
    args = [sys.executable, "-m", "ps.cli", "--env", env_id, "--run-dir", str(run_dir), "--port", str(port),
            "--local-workers", str(workers), "--shards", str(shards)]
    for name, value in run.items():
        flag = "--" + RENAMED.get(name, name).replace("_", "-")
        args += [flag, "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)]
    out = subprocess.run(args, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"ps-serve exited {out.returncode}: {last}")
    return json.loads((Path(run_dir) / "summary.json").read_text())


class Policy:
    """A saved policy's network, acting on one observation at a time (an LSTM's state carried between
    calls until reset())."""

    def __init__(self, saved: SavedPolicy) -> None:
        import torch
        from gymnasium import spaces

        from worker.envs import make_env
        from worker.networks import FlatParams, build_policy_value_net, build_q_network
        from worker.normalize import normalization_buffers
        self.saved, self.spec = saved, saved.spec
        env = make_env(self.spec.env_id)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        env.close()
        self.q = self.spec.algo != "a3c"
        build = build_q_network if self.q else build_policy_value_net
        self.model = build(self.spec, self.observation_space, self.action_space)
        flat = FlatParams(self.model, normalization_buffers(self.spec, self.observation_space))
        if flat.layout.hash != saved.layout.hash:
            raise ConfigError(f"{saved.source}: its layout is not this version's network for {self.spec.env_id}")
        flat.load(saved.theta.tobytes())
        self._obs_stats = (flat.buffer(f"{OBS_NORM}.mean"), flat.buffer(f"{OBS_NORM}.var")) \
            if self.spec.normalize_obs else None  # the run's observation statistics, as saved
        self.continuous = isinstance(self.action_space, spaces.Box)
        self._torch = torch
        self.reset()

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        """From a run dir, a params_final.npz or a checkpoint file (as ps-eval reads them)."""
        return cls(load_policy(path))

    def reset(self) -> None:
        """Start a new episode (the LSTM's state back to zero)."""
        self.state = None if self.q else self.model.initial_state(1)

    def act(self, observation, deterministic: bool = True, rng: np.random.Generator | None = None):
        """The action for one observation, as the env takes it (the env's own preprocessing is
        worker.envs.make_env's: use that env). Deterministic: the most likely action (Q: greedy);
        else sampled from the policy (Q: epsilon 0.05)."""
        from worker.agents.base import EVAL_EPSILON
        from worker.algorithms.sampling import epsilon_greedy, most_likely, sample_categorical, sample_gaussian
        from worker.normalize import normalize
        rng = rng or np.random.default_rng()
        obs = np.asarray(observation, dtype=np.float32)
        if self._obs_stats is not None:
            obs = normalize(obs, *self._obs_stats, self.spec.clip_obs)
        obs = self._torch.as_tensor(obs)[None]
        with self._torch.inference_mode():
            if self.q:
                q_values = self.model(obs).numpy()
                return int(epsilon_greedy(q_values, 0.0 if deterministic else EVAL_EPSILON, rng)[0])
            policy, _, self.state = self.model.step(obs, self.state)
        if deterministic:
            action = most_likely(policy, self.continuous)
        else:
            action = sample_gaussian(*policy, rng) if self.continuous else sample_categorical(policy, rng)
        return action[0] if self.continuous else int(action[0])

    def evaluate(self, episodes: int = 10, deterministic: bool = False, seed: int = 0) -> dict:
        """ps-eval's result document for this policy (eval.json's keys), without writing it."""
        from worker.evaluate import evaluate
        return evaluate(self.saved, episodes, deterministic, seed)
