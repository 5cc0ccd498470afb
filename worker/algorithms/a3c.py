"""The A3C loss (Mnih et al. 2016, Algorithm S3), summed over the rollout's steps."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class A3CLoss:
    total: torch.Tensor
    policy_loss: float
    value_loss: float
    entropy: float


def a3c_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
             entropy_beta: float, value_coef: float) -> A3CLoss:
    """Summed (not averaged) A3C loss over N samples.

    policy:  -sum_t log pi(a_t|s_t) * (R_t - V(s_t))      (advantage carries no gradient)
    value:    sum_t (R_t - V(s_t))^2, weighted by value_coef
    entropy: -beta * sum_t H(pi(.|s_t))                    (a bonus: it lowers the loss)
    """
    log_probs = F.log_softmax(logits, dim=-1)
    chosen = log_probs.gather(1, actions.unsqueeze(1)).squeeze(1)
    advantages = (returns - values).detach()
    policy_loss = -(chosen * advantages).sum()
    value_loss = (returns - values).pow(2).sum()
    entropy = -(log_probs.exp() * log_probs).sum()
    total = policy_loss + value_coef * value_loss - entropy_beta * entropy
    return A3CLoss(total, policy_loss.item(), value_loss.item(), entropy.item())
