"""The A3C loss (Mnih et al. 2016, Algorithm S3), summed over the rollout's steps.

One loss for both action kinds: the policy enters only through log pi(a_t|s_t) and its entropy, so
the discrete (softmax) and continuous (Gaussian) variants differ only in how those two are computed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .gaussian import gaussian_entropy, gaussian_log_prob


@dataclass(frozen=True)
class A3CLoss:
    total: torch.Tensor
    policy_loss: float
    value_loss: float
    entropy: float


def a3c_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
             entropy_beta: float, value_coef: float, normalize_advantage: bool = False) -> A3CLoss:
    """Summed A3C loss over N samples of a softmax policy (logits [N, A], actions [N])."""
    log_probs = F.log_softmax(logits, dim=-1)
    chosen = log_probs.gather(1, actions.unsqueeze(1)).squeeze(1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return actor_critic_loss(chosen, entropy, values, returns, entropy_beta, value_coef, normalize_advantage)


def a3c_gaussian_loss(mean: torch.Tensor, var: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                      returns: torch.Tensor, entropy_beta: float, value_coef: float,
                      normalize_advantage: bool = False) -> A3CLoss:
    """Summed A3C loss over N samples of a Gaussian policy (mean, var, actions [N, D]; actions unclipped)."""
    return actor_critic_loss(gaussian_log_prob(actions, mean, var), gaussian_entropy(var), values, returns,
                             entropy_beta, value_coef, normalize_advantage)


def actor_critic_loss(chosen_log_probs: torch.Tensor, entropies: torch.Tensor, values: torch.Tensor,
                      returns: torch.Tensor, entropy_beta: float, value_coef: float,
                      normalize_advantage: bool = False) -> A3CLoss:
    """Summed (not averaged) over N samples, from log pi(a_t|s_t) [N] and H(pi(.|s_t)) [N]:

    policy:  -sum_t log pi(a_t|s_t) * (R_t - V(s_t))      (advantage carries no gradient)
    value:    sum_t (R_t - V(s_t))^2, weighted by value_coef
    entropy: -beta * sum_t H(pi(.|s_t))                    (a bonus: it lowers the loss)

    normalize_advantage scales the advantages to mean 0 and std 1 over the N samples (policy term only).
    """
    advantages = (returns - values).detach()
    if normalize_advantage and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = -(chosen_log_probs * advantages).sum()
    value_loss = (returns - values).pow(2).sum()
    entropy = entropies.sum()
    total = policy_loss + value_coef * value_loss - entropy_beta * entropy
    return A3CLoss(total, policy_loss.item(), value_loss.item(), entropy.item())
