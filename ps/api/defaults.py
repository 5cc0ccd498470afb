"""The defaults table, and the run spec resolved from it.

CartPole's defaults (RunSpec's own field defaults) solve it in seconds but suit nothing else: Atari
wants the paper's settings and a budget of millions of frames, MinAtar a conv net's learning rate,
Pendulum a shorter horizon, the value-based methods their own rates. A spec is built in layers, each
over the one before: RunSpec's field defaults, then the env family's row, then the env's own target
(gymnasium's reward_threshold, or none), then the value-based methods' row for that family, then the
env's preset (ps/api/presets.py; RunSpec.preset none skips it), then what the user gave (a --config
file, then flags). resolve_spec() and ps/options.py are the only places this happens.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ps.api.presets import AUTO, NONE, preset_row
from ps.api.spec import VALUE_BASED, ConfigError, RunSpec

# Env family -> RunSpec fields that differ from CartPole's. Value-based methods read the same fields.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # The paper's Atari settings: t_max 5, gamma 0.99, entropy beta 0.01, RMSProp decay 0.99; 4 envs per
    # worker batch the conv forward; 20M agent steps = 80M frames.
    "atari": dict(t_max=5, envs_per_worker=4, lr=7e-4, entropy_beta=0.01, max_grad_norm=40.0,
                  total_steps=20_000_000),
    # MinAtar (Young & Tian 2019): the same method at a CI scale; 5M steps is their paper's budget. Their
    # network with a dense layer of 256, not 128: Breakout's greedy evaluations at 10M steps, seeds 1-3,
    # were 35.6 / 33.1 / 27.4 against 24.3 / 27.5 / 24.4 (docs/benchmarks.md, "A dense layer of 256 on MinAtar").
    "minatar": dict(t_max=5, envs_per_worker=8, lr=1e-3, entropy_beta=0.01, max_grad_norm=40.0,
                    total_steps=5_000_000, dense_size=256),
    # Continuous control (Pendulum-v1, MuJoCo): a Gaussian policy; returns differ by task, so no target.
    # With what continuous control asks beyond the paper (rl-zoo's A2C/PPO practice): observations and
    # rewards normalised across the cluster, a state-independent log-std, GAE(0.95) and normalised
    # advantages (measured on Pendulum: presets.py).
    "continuous": dict(t_max=5, envs_per_worker=8, lr=1e-3, entropy_beta=1e-4, max_grad_norm=40.0,
                       total_steps=1_000_000, normalize_obs=True, normalize_reward=True,
                       gaussian_std="parameter", log_std_init=-0.5, gae_lambda=0.95, normalize_advantage=True),
}

# Value-based methods (one-step Q, one-step Sarsa, n-step Q), by env family: over the family's row.
VALUE_BASED_DEFAULTS: dict[str, dict[str, Any]] = {
    # 256x256 as zoo's DQN: at the 64 of the actor-critic row, n-step Q never learned Acrobot (greedy -500
    # in 500k, 3 seeds) and one-step Q's greedy CartPole was 137 at 200k; at 256, -87 and 305 (docs/benchmarks.md).
    # theta- every 1,000 steps, not 2,000: one-step bootstraps carry reward back one step per copy; CartPole's
    # greedy 500 came in 0.47x / 0.44x of SB3 DQN's wall for one-step Q / Sarsa, against 0.77x / 0.57x.
    "classic": dict(lr=3e-3, t_max=5, envs_per_worker=8, hidden_size=256, target_update_steps=1_000),
    # The paper's Atari settings in agent steps (4 frames each): theta- every 40k frames, epsilon over 4M.
    "atari": dict(target_update_steps=10_000, epsilon_anneal_steps=1_000_000),
    # The Q methods keep MinAtar's published dense 128 (0), the width they were measured with.
    "minatar": dict(target_update_steps=10_000, epsilon_anneal_steps=100_000, dense_size=0),
}

FIELDS = tuple(RunSpec.__dataclass_fields__)


def defaults_for(env_id: str, algo: str, family: str, preset: str = AUTO) -> dict[str, Any]:
    """The table's rows for this env, algorithm and preset, merged in order (later rows win)."""
    from ps.api.envs import reward_threshold
    rows = [FAMILY_DEFAULTS.get(family, {}), {"target_return": reward_threshold(env_id)}]
    if algo in VALUE_BASED:
        rows.append(VALUE_BASED_DEFAULTS.get(family, {}))
    rows.append(preset_row(preset, env_id, algo in VALUE_BASED)[1])
    merged: dict[str, Any] = {}
    for row in rows:
        merged.update(row)
    return merged


def spec_line(spec: RunSpec) -> str:
    """The resolved spec in one readable line, saying which preset applied."""
    name, _ = preset_row(spec.preset, spec.env_id, spec.algo in VALUE_BASED)
    kind = "value-based" if spec.algo in VALUE_BASED else "a3c"
    if name is not None:
        applied = f"preset {name} ({kind} row of ps/api/presets.py)"
    elif spec.preset == NONE:
        applied = "preset none (family defaults only)"
    else:
        applied = f"no preset for {spec.env_id} ({kind}; family defaults only)"
    fields = " ".join(f"{k}={v}" for k, v in dataclasses.asdict(spec).items() if k != "preset")
    return f"{applied}; run spec: {fields}"


def resolve_spec(given: dict[str, Any], family: str | None = None) -> RunSpec:
    """The run spec: the table's rows for given's env and algorithm, then `given` (field -> value, what
    the user set) over them. `family` defaults to the env's own (ps.api.envs.env_family, which makes
    the env once to read its action space). ConfigError names an unknown field."""
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown run spec field(s) {', '.join(unknown)}: see ps-serve --help")
    env_id = given.get("env_id", RunSpec.env_id)
    algo = given.get("algo", RunSpec.algo)
    preset = given.get("preset", RunSpec.preset)
    if family is None:
        from ps.api.envs import env_family, env_spaces
        family = env_family(env_id, env_spaces(env_id)[1])
    return RunSpec(**(defaults_for(env_id, algo, family, preset) | given))
