"""Stable-Baselines3 A2C or DQN with rl-baselines3-zoo's hyper-parameters (hyperparams/a2c.yml and
dqn.yml), trained to the zoo's budget, snapshotted along the way and judged on evaluation episodes.

Run as a child of bench.suite: `python -m bench.sb3_zoo --algo a2c --env Acrobot-v1 --seed 1 --out r.json`.
Every --snapshot-seconds of wall time (and at the end) it copies the policy's parameters (and, where
the zoo normalises observations, their statistics); after training, not timed, it plays
--eval-episodes deterministic episodes with each of up to --eval-points snapshots. Writes wall-clock
times (time.time()) so the parent can time from the fork.
"""
from __future__ import annotations

import argparse
import copy
import json
import time

# Zoo rows as SB3 keyword arguments. "lin" learning rates anneal linearly to 0; `normalize` wraps the
# envs in VecNormalize (observations and rewards, as the zoo does; evaluation sees raw rewards).
ZOO_A2C: dict[str, dict] = {
    "CartPole-v1": dict(n_envs=8, n_timesteps=500_000, ent_coef=0.0),
    "Acrobot-v1": dict(n_envs=16, n_timesteps=500_000, normalize=True, ent_coef=0.0),
    "MountainCar-v0": dict(n_envs=16, n_timesteps=1_000_000, normalize=True, ent_coef=0.0),
    "LunarLander-v3": dict(n_envs=8, n_timesteps=200_000, gamma=0.995, n_steps=5, lin_learning_rate=8.3e-4,
                           ent_coef=1e-5),
    "Pendulum-v1": dict(n_envs=8, n_timesteps=1_000_000, normalize=True, ent_coef=0.0, max_grad_norm=0.5,
                        n_steps=8, gae_lambda=0.9, vf_coef=0.4, gamma=0.9, use_rms_prop=True,
                        normalize_advantage=False, lin_learning_rate=7e-4, use_sde=True,
                        policy_kwargs=dict(log_std_init=-2, ortho_init=False)),
}
ZOO_DQN: dict[str, dict] = {
    "CartPole-v1": dict(n_timesteps=50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                        learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256,
                        gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
                        policy_kwargs=dict(net_arch=[256, 256])),
    "Acrobot-v1": dict(n_timesteps=100_000, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
                       learning_starts=0, gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
                       exploration_fraction=0.12, exploration_final_eps=0.1, policy_kwargs=dict(net_arch=[256, 256])),
}
ZOO = {"a2c": ZOO_A2C, "dqn": ZOO_DQN}


def zoo_budget(algo: str, env_id: str) -> int:
    """The zoo's n_timesteps for this algorithm and env."""
    return ZOO[algo][env_id]["n_timesteps"]


def build(algo: str, env_id: str, seed: int):
    """(model, training envs) with the zoo's settings for env_id."""
    from stable_baselines3 import A2C, DQN
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    kwargs = copy.deepcopy(ZOO[algo][env_id])  # SB3 adds to policy_kwargs in place
    kwargs.pop("n_timesteps")
    n_envs, normalize = kwargs.pop("n_envs", 1), kwargs.pop("normalize", False)
    if "lin_learning_rate" in kwargs:
        start = kwargs.pop("lin_learning_rate")
        kwargs["learning_rate"] = lambda remaining: remaining * start
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        env = VecNormalize(env, gamma=kwargs.get("gamma", 0.99))
    cls = A2C if algo == "a2c" else DQN
    return cls("MlpPolicy", env, seed=seed, verbose=0, **kwargs), env


def evaluate_snapshots(model, env_id: str, snapshots: list[dict], episodes: int, seed: int) -> list[float]:
    """Mean return of `episodes` deterministic episodes for each snapshot's parameters."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    means = []
    for snap in snapshots:
        env = make_vec_env(env_id, n_envs=1, seed=seed)
        if snap["obs_rms"] is not None:
            env = VecNormalize(env, training=False, norm_reward=False)
            env.obs_rms = snap["obs_rms"]
        model.policy.load_state_dict(snap["params"])
        mean, _ = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
        means.append(float(mean))
        env.close()
    return means


def thinned(items: list, count: int) -> list:
    """At most `count` of items, evenly spread, the last always kept."""
    if len(items) <= count:
        return items
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--algo", choices=sorted(ZOO), required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--budget-scale", type=float, default=1.0, help="the zoo's n_timesteps times this")
    p.add_argument("--snapshot-seconds", type=float, default=10.0)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-points", type=int, default=10, help="snapshots evaluated, the last always")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1, as our workers)")
    args = p.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecNormalize

    model, env = build(args.algo, args.env, args.seed)
    steps = max(1, round(zoo_budget(args.algo, args.env) * args.budget_scale))
    snapshots: list[dict] = []

    def snapshot() -> None:
        rms = copy.deepcopy(env.obs_rms) if isinstance(env, VecNormalize) else None
        params = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}
        snapshots.append({"unix": time.time(), "env_steps": model.num_timesteps, "params": params, "obs_rms": rms})

    class Snapshots(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.first_step_unix, self.last = None, 0.0

        def _on_step(self) -> bool:
            now = time.time()
            self.first_step_unix = self.first_step_unix or now
            if now - self.last >= args.snapshot_seconds:
                snapshot()
                self.last = now
            return True

    cb = Snapshots()
    model.learn(total_timesteps=steps, callback=cb)
    snapshot()
    finished = time.time()
    kept = thinned(snapshots[1:], args.eval_points)  # the first is taken at step 1, before any learning
    returns = evaluate_snapshots(model, args.env, kept, args.eval_episodes, seed=10_000 + args.seed)
    result = {"algo": args.algo, "env_id": args.env, "seed": args.seed, "env_steps": model.num_timesteps,
              "first_step_unix": cb.first_step_unix, "finished_unix": finished,
              "curve": [(s["unix"], s["env_steps"], r) for s, r in zip(kept, returns)],
              "final_eval": returns[-1], "eval_episodes": args.eval_episodes, "deterministic": True,
              "hyperparameters": {k: v for k, v in ZOO[args.algo][args.env].items()}}
    text = json.dumps(result, default=str)  # whole before the file is opened: the parent never reads half
    with open(args.out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
