"""The A3C actor-learner step: t_max steps on each env with fixed parameters, then the summed loss.

With --lstm the recurrent state of each env is carried from one rollout to the next and zeroed when
its episode ends; the loss unrolls the LSTM from the state the rollout started with, which enters as
a constant, so gradients are truncated at t_max steps (truncated backpropagation through time).
"""
from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from ..algorithms.a3c import a3c_gaussian_loss, a3c_loss
from ..algorithms.returns import gae_advantages, n_step_returns
from ..algorithms.sampling import most_likely, sample_categorical, sample_gaussian
from ..networks import FlatParams, build_policy_value_net
from ..networks.recurrent import reset_state, row, stack_rows
from ..normalize import normalization_buffers


class A3CAgent:
    """The Agent protocol (base.py) for A3C; it has no target network."""

    target_version = 0

    def __init__(self, spec, envs, seed: int) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.model = build_policy_value_net(spec, envs.observation_space, envs.action_space)
        self.flat = FlatParams(self.model, normalization_buffers(spec, envs.observation_space))
        self.continuous = isinstance(envs.action_space, spaces.Box)
        T, K = spec.t_max, len(envs)
        obs_shape = envs.observation_space.shape
        self.obs = torch.zeros((T, K, *obs_shape))
        if self.continuous:
            self.actions = np.zeros((T, K, *envs.action_space.shape), dtype=np.float32)
        else:
            self.actions = np.zeros((T, K), dtype=np.int64)
        self.rewards = np.zeros((T, K), dtype=np.float32)
        self.values = np.zeros((T, K), dtype=np.float32)  # V(s_t) while acting, for GAE
        self.terminated = np.zeros((T, K), dtype=bool)
        self.truncated = np.zeros((T, K), dtype=bool)
        self.truncation_values = np.zeros((T, K), dtype=np.float32)
        self.state = self.model.initial_state(K)  # recurrent state per env, carried across rollouts

    def learn_step(self, envs) -> tuple[int, dict]:
        """Act t_max steps on every env, then backward the summed A3C loss into self.flat.grads.

        Returns (env steps taken, loss figures for the server's logs).
        """
        T, K = self.spec.t_max, len(envs)
        self.truncation_values.fill(0.0)
        # A plain copy of the carried state: the rollout's loss starts from it as a constant.
        start_state = None if self.state is None else tuple(s.clone() for s in self.state)
        state = self.state
        cut: list[tuple[int, int, np.ndarray, object]] = []
        with torch.inference_mode():
            for t in range(T):
                obs_t = torch.from_numpy(envs.obs)
                self.obs[t].copy_(obs_t)
                policy, values, state = self.model.step(obs_t, state)
                self.values[t] = values.numpy()
                actions = self._sample(policy)
                self.actions[t] = actions
                r, term, trunc, final_obs = envs.step(actions)
                self.rewards[t], self.terminated[t], self.truncated[t] = r, term, trunc
                cut.extend((t, k, o, row(state, k)) for k, o in final_obs.items())
                state = reset_state(state, torch.from_numpy(term | trunc))
            _, bootstrap, _ = self.model.step(torch.from_numpy(envs.obs), state)
            if cut:
                self._truncation_values(cut)
        self.state = state
        returns = self._returns(bootstrap.numpy())
        self.flat.zero_grads()
        dones = torch.from_numpy(self.terminated | self.truncated)
        policy, values = self.model.unroll(self.obs, start_state, dones)
        loss = self._loss(policy, values, torch.from_numpy(returns.reshape(-1)))
        loss.total.backward()
        n = T * K
        return n, {"policy_loss": loss.policy_loss / n, "value_loss": loss.value_loss / n,
                   "entropy": loss.entropy / n}

    def _returns(self, bootstrap: np.ndarray) -> np.ndarray:
        """The value targets R_t [T, K]: the paper's n-step returns, or with gae_lambda < 1 the GAE
        advantages plus V(s_t), so that R_t - V(s_t) in the loss is the GAE advantage."""
        spec = self.spec
        if spec.gae_lambda >= 1.0:
            return n_step_returns(self.rewards, self.terminated, self.truncated, self.truncation_values,
                                  bootstrap, spec.gamma)
        return gae_advantages(self.rewards, self.values, self.terminated, self.truncated, self.truncation_values,
                              bootstrap, spec.gamma, spec.gae_lambda) + self.values

    def play_step(self, envs, deterministic: bool) -> None:
        with torch.inference_mode():
            policy, _, state = self.model.step(torch.from_numpy(envs.obs), self.state)
            actions = most_likely(policy, self.continuous) if deterministic else self._sample(policy)
            _, term, trunc, _ = envs.step(actions)
            self.state = reset_state(state, torch.from_numpy(term | trunc))

    def load_target(self, data, version: int) -> None:
        """A3C has no theta-: nothing to load."""

    def summary(self) -> str:
        return ""

    def _sample(self, policy) -> np.ndarray:
        if self.continuous:
            return sample_gaussian(*policy, self.rng)  # the env's ClipAction keeps it within bounds
        return sample_categorical(policy, self.rng)

    def _loss(self, policy, values: torch.Tensor, returns: torch.Tensor):
        spec = self.spec
        weights = (spec.entropy_beta, spec.value_coef, spec.normalize_advantage)
        if self.continuous:
            actions = torch.from_numpy(self.actions.reshape(-1, self.actions.shape[-1]))
            return a3c_gaussian_loss(*policy, values, actions, returns, *weights)
        return a3c_loss(policy, values, torch.from_numpy(self.actions.reshape(-1)), returns, *weights)

    def _truncation_values(self, cut) -> None:
        """V(s_final) of episodes cut by a time limit, from each env's state before its reset."""
        obs = torch.from_numpy(np.stack([o for _, _, o, _ in cut]))
        _, v_final, _ = self.model.step(obs, stack_rows([s for _, _, _, s in cut]))
        for (t, k, _, _), v in zip(cut, v_final.numpy()):
            self.truncation_values[t, k] = v

