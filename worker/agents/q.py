"""The acting + learning step of the value-based methods: one-step Q, one-step Sarsa, n-step Q.

Acting is epsilon-greedy on the worker's copy of theta; every bootstrap reads the target network
theta-, which the server sends only when its version changed (load_target). The gradient of the
summed loss over the step's transitions is the SUM of the per-transition gradients the paper
accumulates, since theta does not change between two pushes of one worker.
"""
from __future__ import annotations

import numpy as np
import torch

from ..algorithms.q_learning import (dealt_final_epsilon, epsilon_at, n_step_q_targets, one_step_q_targets,
                                     one_step_sarsa_targets, q_loss)
from ..algorithms.sampling import epsilon_greedy
from .base import EVAL_EPSILON
from ..networks import FlatParams, build_q_network
from ..normalize import normalization_buffers


class QAgent:
    """The Agent protocol (base.py) for one-step Q, one-step Sarsa and n-step Q."""

    def __init__(self, spec, envs, seed: int, worker_id: int = 1) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.model = build_q_network(spec, envs.observation_space, envs.action_space)
        buffers = normalization_buffers(spec, envs.observation_space)  # theta- carries them too
        self.flat = FlatParams(self.model, buffers)
        self.target_model = build_q_network(spec, envs.observation_space, envs.action_space)
        self.target = FlatParams(self.target_model, buffers)
        self.target.load(self.flat.values_bytes())  # theta- = theta until the server sends its own
        self.target_version = 0   # 0: none received yet (the server's versions start at 1)
        self.target_fetches = 0   # times theta- arrived from the server
        self.final_epsilon = dealt_final_epsilon(worker_id)
        self.own_steps = 0        # this worker's env steps, over all its envs (the epsilon clock)
        self.one_step = spec.algo != "n-step-q"
        self.sarsa = spec.algo == "one-step-sarsa"
        self.horizon = spec.async_update_steps if self.one_step else spec.t_max
        T, K = self.horizon, len(envs)
        obs_shape = envs.observation_space.shape
        self.obs = torch.zeros((T, K, *obs_shape))
        self.next_obs = torch.zeros((T, K, *obs_shape))  # s' per transition (the final one where truncated)
        self.actions = np.zeros((T, K), dtype=np.int64)
        self.rewards = np.zeros((T, K), dtype=np.float32)
        self.terminated = np.zeros((T, K), dtype=bool)
        self.truncated = np.zeros((T, K), dtype=bool)
        # Sarsa: a' chosen in s' before the push, taken first after it (where the episode goes on)
        self.pending_actions: np.ndarray | None = None
        self.pending_mask = np.zeros(K, dtype=bool)

    @property
    def epsilon(self) -> float:
        return epsilon_at(self.own_steps, self.final_epsilon, self.spec.epsilon_anneal_steps)

    def load_target(self, data: bytes, version: int) -> None:
        self.target.load(data)
        self.target_version = version
        self.target_fetches += 1

    def summary(self) -> str:
        return f"target network fetched {self.target_fetches} times (last version {self.target_version})"

    def play_step(self, envs, deterministic: bool) -> None:
        with torch.inference_mode():
            q_values = self.model(torch.from_numpy(envs.obs)).numpy()
        envs.step(epsilon_greedy(q_values, 0.0 if deterministic else EVAL_EPSILON, self.rng))

    def _act(self, obs: torch.Tensor) -> np.ndarray:
        return epsilon_greedy(self.model(obs).numpy(), self.epsilon, self.rng)

    def learn_step(self, envs) -> tuple[int, dict]:
        """Act, then backward the summed loss into self.flat.grads. Returns (env steps, stats).

        One-step methods act async_update_steps steps, or fewer when an episode ends (the paper
        pushes at episode end too); n-step Q acts t_max steps.
        """
        K = len(envs)
        cut: list[tuple[int, int, np.ndarray]] = []
        with torch.inference_mode():
            for t in range(self.horizon):
                obs_t = torch.from_numpy(envs.obs)
                self.obs[t].copy_(obs_t)
                actions = self._act(obs_t)
                if t == 0 and self.pending_actions is not None:  # Sarsa: take the a' already learned from
                    actions = np.where(self.pending_mask, self.pending_actions, actions)
                self.actions[t] = actions
                r, term, trunc, final_obs = envs.step(actions)
                self.own_steps += K
                self.rewards[t], self.terminated[t], self.truncated[t] = r, term, trunc
                self.next_obs[t].copy_(torch.from_numpy(envs.obs))
                for k, o in final_obs.items():
                    self.next_obs[t, k] = torch.from_numpy(o)
                    cut.append((t, k, o))
                if self.one_step and (term.any() or trunc.any()):
                    break
        T = t + 1
        if self.one_step:
            targets = self._one_step_targets(T, K)
        else:
            targets = self._n_step_targets(T, K, cut)
        self.flat.zero_grads()
        q = self.model(self.obs[:T].flatten(0, 1))
        actions = torch.from_numpy(self.actions[:T].reshape(-1))
        loss = q_loss(q, actions, targets, self.spec.q_loss)
        loss.backward()
        n = T * K
        return n, {"epsilon": round(self.epsilon, 4), "q_loss": loss.item() / n,
                   "q_mean": float(q.detach().gather(1, actions.unsqueeze(1)).mean()),
                   "target_version": float(self.target_version)}

    def _one_step_targets(self, T: int, K: int) -> torch.Tensor:
        with torch.no_grad():  # the targets read theta-: no gradient flows into them
            next_obs = self.next_obs[:T].flatten(0, 1)
            next_q = self.target_model(next_obs)
            rewards = torch.from_numpy(self.rewards[:T].reshape(-1))
            terminated = torch.from_numpy(self.terminated[:T].reshape(-1))
            if not self.sarsa:
                online_q = self.model(next_obs) if self.spec.double_q else None
                return one_step_q_targets(rewards, terminated, next_q, self.spec.gamma, online_q)
            # a' of each transition: the action taken next in the same episode, else chosen in s' now
            # (the last step's a' is then taken first in the next step, after the push).
            next_actions = np.empty((T, K), dtype=np.int64)
            next_actions[:-1] = self.actions[1:T]
            ended = self.terminated[:T] | self.truncated[:T]
            chosen_now = self._act(next_obs).reshape(T, K)
            next_actions[ended] = chosen_now[ended]
            next_actions[-1] = chosen_now[-1]
            self.pending_actions, self.pending_mask = chosen_now[-1], ~ended[-1]
            return one_step_sarsa_targets(rewards, terminated, next_q, torch.from_numpy(next_actions.reshape(-1)),
                                          self.spec.gamma)

    def _n_step_targets(self, T: int, K: int, cut) -> torch.Tensor:
        nets = (self.target_model, self.model) if self.spec.double_q else (self.target_model,)
        with torch.no_grad():  # per net: its Q-values of s_T, and of each truncated episode's final state
            bootstrap_q = [net(self.next_obs[T - 1]).numpy() for net in nets]
            truncation_q = [np.zeros((T, K, q.shape[-1]), dtype=np.float32) for q in bootstrap_q]
            if cut:
                finals = torch.from_numpy(np.stack([o for _, _, o in cut]))
                for net, out in zip(nets, truncation_q):
                    for (t, k, _), q in zip(cut, net(finals).numpy()):
                        out[t, k] = q
        online = (truncation_q[1], bootstrap_q[1]) if self.spec.double_q else (None, None)
        targets = n_step_q_targets(self.rewards[:T], self.terminated[:T], self.truncated[:T], truncation_q[0],
                                   bootstrap_q[0], self.spec.gamma, *online)
        return torch.from_numpy(targets.reshape(-1))
