"""Targets and loss of the paper's value-based methods (Mnih et al. 2016, Algorithms S1 and S2).

All bootstraps read the target network theta- (the caller passes its Q-values). A terminated step
bootstraps nothing; a truncated step (time limit) bootstraps from its final observation, whose
Q-values the caller puts in the transition's "next" row (one-step) or in `truncation_q` (n-step).
"""
from __future__ import annotations

import numpy as np
import torch

from .returns import n_step_returns

# The paper's final exploration rates, one per worker with these probabilities (section 5.1)...
FINAL_EPSILONS = (0.1, 0.01, 0.5)
FINAL_EPSILON_PROBS = (0.4, 0.3, 0.3)
# ... dealt in this order by worker id rather than drawn: every 10 workers hold the paper's mix, and a
# small cluster is never all 0.5 by chance (with 2 workers a 0.5 draw halved what n-step Q learned).
FINAL_EPSILON_DEAL = (0.1, 0.01, 0.5, 0.1, 0.01, 0.1, 0.5, 0.01, 0.1, 0.5)


def bootstrap_values(target_q, online_q=None):
    """V(s') for a Q bootstrap, per row of target_q [..., A] (theta-'s Q-values, tensor or array):
    max_a Q(s', a; theta-), or with online_q (theta's, same shape) double Q-learning's
    Q(s', argmax_a Q(s', a; theta); theta-), which does not pick the action by the same noisy
    estimates it then reads, so the bootstrap is not biased upwards by them."""
    if online_q is None:
        return target_q.max(-1).values if isinstance(target_q, torch.Tensor) else target_q.max(axis=-1)
    if isinstance(target_q, torch.Tensor):
        return target_q.gather(-1, online_q.argmax(-1, keepdim=True)).squeeze(-1)
    return np.take_along_axis(target_q, online_q.argmax(axis=-1)[..., None], axis=-1)[..., 0]


def one_step_q_targets(rewards: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor,
                       gamma: float, next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """y = r + gamma * max_a Q(s', a; theta-), and y = r at a terminal. next_q: [N, A]. With
    next_q_online (theta's Q-values of s'), the double-Q bootstrap (bootstrap_values)."""
    return rewards + gamma * (~terminated) * bootstrap_values(next_q, next_q_online)


def one_step_sarsa_targets(rewards: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor,
                           next_actions: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma * Q(s', a'; theta-) with a' the action the worker takes in s'; y = r at a terminal."""
    chosen = next_q.gather(1, next_actions.unsqueeze(1)).squeeze(1)
    return rewards + gamma * (~terminated) * chosen


def n_step_q_targets(rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                     truncation_q: np.ndarray, bootstrap_q: np.ndarray, gamma: float,
                     truncation_q_online: np.ndarray | None = None,
                     bootstrap_q_online: np.ndarray | None = None) -> np.ndarray:
    """Forward-view n-step targets over a [T, K] rollout, bootstrapped from max_a Q(s_T, a; theta-).

    truncation_q[t, k] holds Q(s_final, .; theta-) [A] where step t was truncated (else anything);
    bootstrap_q [K, A] holds Q(s_T, .; theta-). The *_online arrays (theta's, same shapes) make the
    bootstraps double Q-learning's (bootstrap_values).
    """
    return n_step_returns(rewards, terminated, truncated, bootstrap_values(truncation_q, truncation_q_online),
                          bootstrap_values(bootstrap_q, bootstrap_q_online), gamma)


def q_loss(q_values: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, kind: str = "squared") -> torch.Tensor:
    """sum_t (y_t - Q(s_t, a_t; theta))^2, SUMMED over transitions (the paper accumulates d theta);
    kind "huber": each term 0.5 x^2 within 1 of the target and |x| - 0.5 beyond, so one large error
    (an early bootstrap far off) moves theta no more than an error of 1 does (DQN's error clipping).

    The targets carry no gradient: they come from theta-, not theta.
    """
    chosen = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
    if kind == "huber":
        return torch.nn.functional.huber_loss(chosen, targets.detach(), reduction="sum", delta=1.0)
    return (targets.detach() - chosen).pow(2).sum()


def epsilon_at(own_steps: int, final_epsilon: float, anneal_steps: int) -> float:
    """Linear annealing from 1.0 to final_epsilon over the worker's first anneal_steps env steps."""
    frac = min(1.0, own_steps / anneal_steps) if anneal_steps > 0 else 1.0
    return 1.0 + (final_epsilon - 1.0) * frac


def dealt_final_epsilon(worker_id: int) -> float:
    """Worker worker_id's final epsilon (ids count from 1 in registration order): FINAL_EPSILON_DEAL's."""
    return FINAL_EPSILON_DEAL[(max(worker_id, 1) - 1) % len(FINAL_EPSILON_DEAL)]

