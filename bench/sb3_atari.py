"""The peer on Atari: Stable-Baselines3 A2C on Pong with the rl-baselines3-zoo settings, for a fixed wall time.

rl-baselines3-zoo hyperparams/a2c.yml, atari: env_wrapper AtariWrapper (no-op starts up to 30, frame
skip 4 max-pooled, terminal on life loss, FIRE at reset, 84x84 grayscale, rewards clipped), frame_stack 4,
policy CnnPolicy, n_envs 16, ent_coef 0.01, vf_coef 0.25, RMSpropTFLike(eps=1e-5); the rest SB3's A2C
defaults (n_steps 5, lr 7e-4). The zoo's default vector env steps the 16 envs in this one process.

Run as a child of bench.atari: `python -m bench.sb3_atari --seconds 60 --out result.json`. It learns
for that wall time from its first step (imports and set-up excluded) and writes the frames (4 per agent
step), seconds and CPU seconds of that span, so the parent can compare frames per CPU-second.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import deque

ZOO_ATARI = {"env_id": "PongNoFrameskip-v4", "n_envs": 16, "frame_stack": 4, "policy": "CnnPolicy",
             "ent_coef": 0.01, "vf_coef": 0.25, "rmsprop_eps": 1e-5}
FRAME_SKIP = 4


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, required=True, help="wall time to learn for")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as our workers)")
    args = p.parse_args(argv)
    started = time.time()

    import ale_py
    import gymnasium
    import torch
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
    from stable_baselines3.common.vec_env import VecFrameStack
    gymnasium.register_envs(ale_py)
    torch.set_num_threads(args.threads)

    class StopAtWallTime(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.returns: deque[float] = deque(maxlen=20)
            self.first_step = None
            self.first_cpu = 0.0
            self.first_frames = 0

        def _on_step(self) -> bool:
            if self.first_step is None:  # the clock starts at the first step: imports and set-up excluded
                self.first_step, self.first_cpu = time.time(), time.process_time()
                self.first_frames = self.num_timesteps * FRAME_SKIP
            for info in self.locals["infos"]:
                if "episode" in info:  # Monitor's whole-game score, under AtariWrapper's life losses
                    self.returns.append(float(info["episode"]["r"]))
            return time.time() - self.first_step < args.seconds

    z = ZOO_ATARI
    env = VecFrameStack(make_atari_env(z["env_id"], n_envs=z["n_envs"], seed=args.seed), n_stack=z["frame_stack"])
    model = A2C(z["policy"], env, ent_coef=z["ent_coef"], vf_coef=z["vf_coef"], seed=args.seed, verbose=0,
                policy_kwargs=dict(optimizer_class=RMSpropTFLike, optimizer_kwargs=dict(eps=z["rmsprop_eps"])))
    cb = StopAtWallTime()
    model.learn(total_timesteps=10**9, callback=cb)
    result = {"frames": model.num_timesteps * FRAME_SKIP - cb.first_frames, "seconds": time.time() - cb.first_step,
              "cpu_seconds": time.process_time() - cb.first_cpu, "startup_seconds": cb.first_step - started,
              "mean20": sum(cb.returns) / len(cb.returns) if cb.returns else None,
              "episodes": len(cb.returns), "hyperparameters": ZOO_ATARI}
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
