"""Agents: each acts for one rollout on fixed parameters and leaves the summed gradient in its
flat gradient buffer. The loop (worker/loop.py) moves parameters and gradients to and from the server.
"""
from __future__ import annotations


def make_agent(spec, envs, seed: int):
    if spec.algo == "a3c":
        from .a3c import A3CAgent
        return A3CAgent(spec, envs, seed)
    if spec.algo in ("one-step-q", "one-step-sarsa", "n-step-q"):
        from .q import QAgent
        return QAgent(spec, envs, seed)
    raise ValueError(f"no agent for algorithm {spec.algo!r}")
