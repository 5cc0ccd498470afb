"""Presets per env id, like rl-baselines3-zoo's hyper-parameter files: the settings known to suit one
env, over its family's defaults (ps/api/defaults.py), under what the user gives.

Zoo rows are translated to this method: n_envs -> envs_per_worker (each worker's push then covers
as many steps as one SB3 update), n_steps -> t_max, n_timesteps -> total_steps (over which our lr
anneals to 0), ent_coef -> entropy_beta, vf_coef -> value_coef. SB3 clips the gradient of the mean
loss at 0.5; a push carries the gradient summed over t_max * envs_per_worker steps, so the same clip
is 0.5 * t_max * envs_per_worker. Zoo's `normalize` is --normalize-obs/--normalize-reward; its
use_sde has no field here. A preset's target_return is for envs gymnasium gives no reward_threshold.
"""
from __future__ import annotations

from typing import Any

AUTO, NONE = "auto", "none"  # RunSpec.preset: the env id's own row; no row at all

# Actor-critic (a3c) rows, by env id.
A3C_PRESETS: dict[str, dict[str, Any]] = {
    # RunSpec's own defaults (64 envs, t_max 4, lr 4e-3): they solve it ~4x sooner than zoo's 8 envs (bench.cartpole).
    "CartPole-v1": {},
    # Zoo: 16 envs, ent 0, 5e5 steps. Kept RunSpec's 64 envs x t_max 4 at lr 4e-3: -84 in 22-29 s, as zoo's A2C (-82).
    "Acrobot-v1": dict(total_steps=500_000),
    # Zoo's A2C reaches the flag only with normalised observations (its `normalize`); so does this
    # method: RunSpec's defaults with --normalize-obs reached mean100 -129 and -117 by 300k (2 seeds,
    # 2 workers), against -200 (never the flag) in 1M without.
    "MountainCar-v0": dict(normalize_obs=True, total_steps=1_000_000),
    # Zoo: 8 envs, n_steps 5, gamma 0.995, lr lin 8.3e-4, ent 1e-5, 2e5 steps: translated, one 200k run
    # evaluated -121 (10 deterministic episodes). RunSpec's defaults over 500k: 207, with mean100 187 at
    # 360k; over 1M they learned, then collapsed while the lr was still high. Entropy beta 0.02 keeps
    # the policy from settling early on hovering: greedy evaluations at 500k (seeds 1-3, 2 workers)
    # 48 / 130 / 89, against -64 / -44 / -178 at 0.01 (lr 2e-3, reward or observation normalisation,
    # 1M steps: no better).
    "LunarLander-v3": dict(total_steps=500_000, entropy_beta=0.02),
    # 16 envs a push steady the early updates (with 8 some seeds spin for 200k+ steps); -200 is a
    # pendulum swung up and balanced from any start (gymnasium gives no threshold). The continuous
    # family's row (normalisation, a learned log-std, GAE 0.95, normalised advantages) took 500k-step
    # runs from -731 / -651 / -412 (seeds 1-3, 2 workers, without it) to -300 / -202 / -449. Gamma 0.95,
    # not zoo's 0.9: at 0.9 some seeds' policies swing once more than needed from some starts (greedy
    # -128 to -325 over 8 runs); at 0.95 seeds 1-7 ended -169 to -159; at 0.98 two of four fell apart.
    "Pendulum-v1": dict(gamma=0.95, envs_per_worker=16, target_return=-200.0),
    # Zoo: 4 envs, n_steps 100, ent 0, 1e5 steps (with gSDE, log-std 0). Translated, with the family's
    # reward normalisation: greedy median 83.7 over seeds 1-7, the flag from every start on 4 only.
    # Without it, seeds 1-17: median 94.5, 16 of 17 at 85 or more, lowest 75.7 (with it: 89.5, 12 of 17,
    # -99.9); zoo 93.7. Until the flag is first reached the return's spread is that of the action costs
    # alone, and dividing by it magnifies them against the unseen +100.
    "MountainCarContinuous-v0": dict(envs_per_worker=4, t_max=100, lr=7e-4, max_grad_norm=200.0,
                                     total_steps=100_000, normalize_reward=False),
    # Zoo: 4 envs, n_steps 8, vf_coef 0.4, lr lin 7e-4, GAE 0.9, raw advantages, 5e6 steps (with gSDE,
    # log-std -2, ent 0). Translated, with entropy beta 1e-3: greedy 229 / 279 / 256 / 194 / 260
    # (seeds 1-5, 8 min a run), median 256; zoo's published A2C: 204. With the family's GAE 0.95 and
    # normalised advantages (entropy 0.01) the median was 141.5, seed 4 hovering at -109. Raw advantages
    # are small against the entropy bonus: at 0.01 the log-std grew to 5-8 (sampled actions are the
    # clip's +-1 at random; the greedy mean action still landed, median 170); at 0 it shrank and seed 1
    # hovered (-94).
    "LunarLanderContinuous-v3": dict(envs_per_worker=4, t_max=8, value_coef=0.4, lr=7e-4, max_grad_norm=16.0,
                                     gae_lambda=0.9, normalize_advantage=False, entropy_beta=1e-3,
                                     total_steps=5_000_000),
}

# Value-based rows (one-step Q, one-step Sarsa, n-step Q), by env id. Zoo's DQN replays a buffer, so
# only its schedule maps: the budget, and epsilon's anneal over a share of it to its final value.
VALUE_BASED_PRESETS: dict[str, dict[str, Any]] = {
    # The classic row over 10x zoo's 5e4 (about 70 s with 2 workers): at 200k one-step Q's greedy
    # evaluations were 134 / 157 / 88 (seeds 1-3); at 500k 500 / 500 / 500. n-step Q is 500 at either.
    "CartPole-v1": dict(total_steps=500_000),
    # Zoo's DQN budget is 1e5. At 500k the three ended within 5% of SB3 DQN's final but none reached it
    # (bench.suite medians -91 / -92 / -81 against -79.8); at 1M (about 2 min with 2 workers) each did,
    # in 0.33x-0.43x of SB3 DQN's wall time (finals -78.1 / -75.2 / -77.4, docs/benchmarks.md).
    "Acrobot-v1": dict(total_steps=1_000_000),
}


def preset_names() -> tuple[str, ...]:
    """What --preset takes: auto, none, or an env id with a row."""
    return (AUTO, NONE, *sorted(set(A3C_PRESETS) | set(VALUE_BASED_PRESETS)))


def preset_row(preset: str, env_id: str, value_based: bool) -> tuple[str | None, dict[str, Any]]:
    """(the env id whose row applies, or None; that row) for RunSpec.preset `preset` on env_id."""
    if preset == NONE:
        return None, {}
    name = env_id if preset == AUTO else preset
    table = VALUE_BASED_PRESETS if value_based else A3C_PRESETS
    return (name, table[name]) if name in table else (None, {})
