"""Agents: each acts for one rollout on fixed parameters and leaves the summed gradient in its
flat gradient buffer (the Agent protocol, base.py). The loop (worker/loop.py) moves parameters and
gradients to and from the server. The mathematics they use is in worker/algorithms/.
"""
from __future__ import annotations

from ps.api.spec import VALUE_BASED

from .base import Agent

__all__ = ["Agent", "make_agent"]


def make_agent(spec, envs, seed: int, worker_id: int = 1) -> Agent:
    """The agent for spec.algo; worker_id (the server's, from 1) picks a Q worker's final epsilon."""
    if spec.algo == "a3c":
        from .a3c import A3CAgent
        return A3CAgent(spec, envs, seed)
    if spec.algo in VALUE_BASED:
        from .q import QAgent
        return QAgent(spec, envs, seed, worker_id)
    raise ValueError(f"no agent for algorithm {spec.algo!r}")
