"""The one defaults table, and the run spec resolved from it.

CartPole's defaults (RunSpec's own field defaults) solve it in seconds but suit nothing else: Atari
wants the paper's settings and a budget of millions of frames, MinAtar a conv net's learning rate,
Pendulum a shorter horizon, the value-based methods their own rates. A spec is built in layers, each
over the one before: RunSpec's field defaults, then the env family's row, then the value-based
methods' row for that family, then the env id's row, then what the user gave (a --config file, then
flags). resolve_spec() is the only place this happens.
"""
from __future__ import annotations

from typing import Any

from ps.api.spec import VALUE_BASED, ConfigError, RunSpec

# Env family -> RunSpec fields that differ from CartPole's. Value-based methods read the same fields.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # The paper's Atari settings: t_max 5, gamma 0.99, entropy beta 0.01, RMSProp decay 0.99; 4 envs per
    # worker batch the conv forward; 20M agent steps = 80M frames; no target (Atari scores differ by game).
    "atari": dict(t_max=5, envs_per_worker=4, lr=7e-4, entropy_beta=0.01, max_grad_norm=40.0,
                  total_steps=20_000_000, target_return=None),
    # MinAtar (Young & Tian 2019): the same method at a CI scale; 5M steps is their paper's budget.
    "minatar": dict(t_max=5, envs_per_worker=8, lr=1e-3, entropy_beta=0.01, max_grad_norm=40.0,
                    total_steps=5_000_000, target_return=None),
    # Continuous control (Pendulum-v1, MuJoCo): a Gaussian policy; returns differ by task, so no target.
    "continuous": dict(t_max=5, envs_per_worker=8, lr=1e-3, entropy_beta=1e-4, max_grad_norm=40.0,
                       total_steps=1_000_000, target_return=None),
}

# Value-based methods (one-step Q, one-step Sarsa, n-step Q), by env family: over the family's row.
VALUE_BASED_DEFAULTS: dict[str, dict[str, Any]] = {
    "classic": dict(lr=3e-3, t_max=5, envs_per_worker=8),  # CartPole: mean100 150+ in ~40-50k steps with 2 workers
    # The paper's Atari settings in agent steps (4 frames each): theta- every 40k frames, epsilon over 4M.
    "atari": dict(target_update_steps=10_000, epsilon_anneal_steps=1_000_000),
    "minatar": dict(target_update_steps=10_000, epsilon_anneal_steps=100_000),
}

# Single envs whose scale is known: over their family's rows.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    # Costs of up to -16 a step over 200 steps: a short horizon learns the swing-up far sooner, and
    # 16 envs a push steady the early updates (with 8, some seeds first spin for 200k+ steps);
    # -200 is a pendulum swung up and balanced from any start.
    "Pendulum-v1": dict(gamma=0.9, envs_per_worker=16, target_return=-200.0),
}

FIELDS = tuple(RunSpec.__dataclass_fields__)


def defaults_for(env_id: str, algo: str, family: str) -> dict[str, Any]:
    """The table's rows for this env and algorithm, merged in order (later rows win)."""
    rows = [FAMILY_DEFAULTS.get(family, {})]
    if algo in VALUE_BASED:
        rows.append(VALUE_BASED_DEFAULTS.get(family, {}))
    rows.append(ENV_DEFAULTS.get(env_id, {}))
    merged: dict[str, Any] = {}
    for row in rows:
        merged.update(row)
    return merged


def resolve_spec(given: dict[str, Any], family: str | None = None) -> RunSpec:
    """The run spec: the table's rows for given's env and algorithm, then `given` (field -> value, what
    the user set) over them. `family` defaults to the env's own (ps.api.envs.env_family, which makes
    the env once to read its action space). ConfigError names an unknown field."""
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown run spec field(s) {', '.join(unknown)}: see ps-serve --help")
    env_id = given.get("env_id", RunSpec.env_id)
    algo = given.get("algo", RunSpec.algo)
    if family is None:
        from ps.api.envs import env_family, env_spaces
        family = env_family(env_id, env_spaces(env_id)[1])
    return RunSpec(**(defaults_for(env_id, algo, family) | given))
