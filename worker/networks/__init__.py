"""The worker's networks: torsos, heads, the LSTM, the two network classes and the flat-buffer view
of their parameters. Imports go one way: torsos, heads, recurrent <- nets <- this module; flat stands alone.

    build_policy_value_net(spec, obs_space, act_space)   A3C: softmax or Gaussian policy, and V
    build_q_network(spec, obs_space, act_space)          one-step Q / Sarsa, n-step Q
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .flat import FlatParams
from .heads import GaussianHead, LogStdGaussianHead, q_head, softmax_head
from .nets import PolicyValueNet, QNetwork
from .recurrent import reset_state
from .torsos import build_torso, choose_network, flat_mlp

__all__ = ["FlatParams", "PolicyValueNet", "QNetwork", "build_policy_value_net", "build_q_network",
           "choose_network", "reset_state"]


def build_policy_value_net(spec, observation_space, action_space) -> PolicyValueNet:
    """A3C's network for this run: the torso from the observations (or spec.network), [--lstm,] a softmax
    head for discrete actions or a Gaussian one for continuous actions, and a value head.

    The MLP without an LSTM gives the value head a torso of its own (CartPole's two-torso MLP)."""
    kind = choose_network(spec.network, observation_space)
    shape = tuple(observation_space.shape)
    torso, features = build_torso(kind, shape, spec)
    v_torso = flat_mlp(shape, spec.hidden_size, spec.hidden_layers) if kind == "mlp" and not spec.lstm else None
    if isinstance(action_space, spaces.Box):
        dims = int(np.prod(action_space.shape))
        if spec.gaussian_std == "parameter":
            return PolicyValueNet(torso, features, lambda n: LogStdGaussianHead(n, dims, spec.log_std_init),
                                  spec.lstm, v_torso)
        return PolicyValueNet(torso, features, lambda n: GaussianHead(n, dims), spec.lstm, v_torso)
    actions = int(action_space.n)
    return PolicyValueNet(torso, features, lambda n: softmax_head(n, actions), spec.lstm, v_torso)


def build_q_network(spec, observation_space, action_space) -> QNetwork:
    """The value-based methods' network: A3C's torso for the same observations, one Q-value per action."""
    kind = choose_network(spec.network, observation_space)
    torso, features = build_torso(kind, tuple(observation_space.shape), spec)
    actions = int(action_space.n)
    return QNetwork(torso, features, lambda n: q_head(n, actions))
