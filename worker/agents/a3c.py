"""The A3C actor-learner step: t_max steps on each env with fixed parameters, then the summed loss."""
from __future__ import annotations

import numpy as np
import torch

from ..algorithms.a3c import a3c_loss
from ..algorithms.returns import n_step_returns
from ..models import FlatParams, build_model
from .sampling import sample_categorical


class A3CAgent:
    def __init__(self, spec, envs, seed: int) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.model = build_model(spec, envs.observation_space, envs.action_space)
        self.flat = FlatParams(self.model)
        T, K = spec.t_max, len(envs)
        obs_shape = envs.observation_space.shape
        self.obs = torch.zeros((T, K, *obs_shape))
        self.actions = np.zeros((T, K), dtype=np.int64)
        self.rewards = np.zeros((T, K), dtype=np.float32)
        self.terminated = np.zeros((T, K), dtype=bool)
        self.truncated = np.zeros((T, K), dtype=bool)
        self.truncation_values = np.zeros((T, K), dtype=np.float32)

    def learn_step(self, envs) -> tuple[int, dict]:
        """Act t_max steps on every env, then backward the summed A3C loss into self.flat.grads.

        Returns (env steps taken, loss figures for the server's logs).
        """
        T, K = self.spec.t_max, len(envs)
        self.truncation_values.fill(0.0)
        cut: list[tuple[int, int, np.ndarray]] = []
        with torch.inference_mode():
            for t in range(T):
                obs_t = torch.from_numpy(envs.obs)
                self.obs[t].copy_(obs_t)
                logits, _ = self.model(obs_t)
                actions = sample_categorical(logits, self.rng)
                self.actions[t] = actions
                r, term, trunc, final_obs = envs.step(actions)
                self.rewards[t], self.terminated[t], self.truncated[t] = r, term, trunc
                cut.extend((t, k, o) for k, o in final_obs.items())
            _, bootstrap = self.model(torch.from_numpy(envs.obs))
            if cut:
                _, v_final = self.model(torch.from_numpy(np.stack([o for _, _, o in cut])))
                for (t, k, _), v in zip(cut, v_final.numpy()):
                    self.truncation_values[t, k] = v
        returns = n_step_returns(self.rewards, self.terminated, self.truncated, self.truncation_values,
                                 bootstrap.numpy(), self.spec.gamma)
        self.flat.zero_grads()
        logits, values = self.model(self.obs.flatten(0, 1))
        loss = a3c_loss(logits, values, torch.from_numpy(self.actions.reshape(-1)),
                        torch.from_numpy(returns.reshape(-1)), self.spec.entropy_beta, self.spec.value_coef)
        loss.total.backward()
        n = T * K
        return n, {"policy_loss": loss.policy_loss / n, "value_loss": loss.value_loss / n,
                   "entropy": loss.entropy / n}
