"""Defaults per environment family, resolved once when the RunSpec is built.

CartPole's defaults (the RunSpec's own) solve it in seconds but suit nothing else: Atari wants the
paper's settings and a budget of millions of frames, MinAtar a conv net's learning rate, Pendulum a
shorter horizon. A flag given on the command line always wins; the family fills in the rest.
"""
from __future__ import annotations

import argparse
import dataclasses

from .config import RunSpec

ATARI_FRAME_SKIP = 4  # one agent step is 4 emulator frames (the paper's "frames" count these)

# Family -> RunSpec fields that differ from CartPole's. Value-based methods read the same fields.
FAMILY_DEFAULTS: dict[str, dict] = {
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

# Single envs whose scale is known: on top of their family's defaults.
ENV_DEFAULTS: dict[str, dict] = {
    # Costs of up to -16 a step over 200 steps: a short horizon learns the swing-up far sooner, and
    # 16 envs a push steady the early updates (with 8, some seeds first spin for 200k+ steps);
    # -200 is a pendulum swung up and balanced from any start.
    "Pendulum-v1": dict(gamma=0.9, envs_per_worker=16, target_return=-200.0),
}


def env_family(env_id: str, action_space=None) -> str:
    """atari (ale-py), minatar, continuous (Box actions) or classic (everything else)."""
    import gymnasium

    from .envcheck import register_optional_envs
    register_optional_envs(env_id)
    try:
        entry = str(gymnasium.spec(env_id).entry_point)
    except gymnasium.error.Error:
        entry = ""
    if entry.startswith("ale_py"):
        return "atari"
    if entry.startswith("minatar"):
        return "minatar"
    if action_space is not None and isinstance(action_space, gymnasium.spaces.Box):
        return "continuous"
    return "classic"


def with_family_defaults(spec: RunSpec, family: str, given: set[str]) -> RunSpec:
    """spec with its family's (and env's) defaults for every field not in `given` (the flags set explicitly)."""
    defaults = FAMILY_DEFAULTS.get(family, {}) | ENV_DEFAULTS.get(spec.env_id, {})
    changes = {k: v for k, v in defaults.items() if k not in given}
    return dataclasses.replace(spec, **changes) if changes else spec


def given_flags(parser: argparse.ArgumentParser, argv=None) -> set[str]:
    """The dests set on the command line, found by parsing again over a namespace of placeholders
    (argparse leaves attributes already present untouched unless a flag sets them)."""
    unset = object()
    probe = argparse.Namespace(**{a.dest: unset for a in parser._actions if a.dest != argparse.SUPPRESS})
    parsed = parser.parse_args(argv, namespace=probe)
    return {name for name, value in vars(parsed).items() if value is not unset}
