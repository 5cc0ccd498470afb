"""The LSTM state of A3C --lstm: carried across rollouts within an episode, zeroed at its end per env,
and the start of each rollout a constant for the loss (gradients truncated at t_max)."""
import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

from ps.api.spec import RunSpec
from worker.agents.a3c import A3CAgent
from worker.envs import EnvBatch
from worker.networks import reset_state

EPISODE_LENGTHS = (3, 1000)  # env 0 ends every 3 steps; env 1 never within these tests


class Countdown(gymnasium.Env):
    """Terminates after a fixed number of steps, chosen by the reset seed's parity."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.length = EPISODE_LENGTHS[seed % 2]
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.t >= self.length, False, {}

    def _obs(self):
        return np.array([self.t / 10.0, 0.5 - 0.1 * self.t], dtype=np.float32)


gymnasium.register(id="tests/Countdown-v0", entry_point=Countdown)


@pytest.fixture
def agent_and_envs():
    torch.set_num_threads(1)
    spec = RunSpec(env_id="tests/Countdown-v0", lstm=True, t_max=3, envs_per_worker=2, hidden_size=8)
    envs = EnvBatch(spec.env_id, 2, seed=0)  # env k is reset with seed k: lengths 3 and 1000
    yield A3CAgent(spec, envs, seed=0), envs
    envs.close()


def replay(agent, state):
    """Step the network over the last rollout's observations from `state`, zeroing ended episodes."""
    dones = agent.terminated | agent.truncated
    with torch.no_grad():
        for t in range(agent.spec.t_max):
            _, _, state = agent.model.step(agent.obs[t], state)
            state = reset_state(state, torch.from_numpy(dones[t]))
    return state


def test_the_network_has_an_lstm_of_256_cells(agent_and_envs):
    agent, _ = agent_and_envs
    assert agent.model.recurrent and agent.state[0].shape == (2, 256)
    assert {"lstm.weight_ih", "lstm.weight_hh"} <= {e.name for e in agent.flat.layout.entries}


def test_state_is_reset_at_episode_end_and_carried_otherwise(agent_and_envs):
    agent, envs = agent_and_envs
    agent.learn_step(envs)
    assert agent.terminated[:, 0].tolist() == [False, False, True]  # env 0's episode ended at the last step
    assert not agent.terminated[:, 1].any()
    h, c = agent.state
    assert torch.count_nonzero(h[0]) == 0 and torch.count_nonzero(c[0]) == 0
    assert torch.count_nonzero(h[1]) > 0 and torch.count_nonzero(c[1]) > 0


def test_next_rollout_starts_from_the_carried_state(agent_and_envs):
    agent, envs = agent_and_envs
    agent.learn_step(envs)
    carried = tuple(s.clone() for s in agent.state)
    agent.learn_step(envs)
    from_carried = replay(agent, carried)
    from_zero = replay(agent, agent.model.initial_state(2))
    assert torch.allclose(agent.state[0], from_carried[0], atol=1e-6)
    assert torch.allclose(agent.state[1], from_carried[1], atol=1e-6)
    # env 1's episode goes on, so its state remembers the earlier rollout; env 0 started afresh.
    assert not torch.allclose(agent.state[0][1], from_zero[0][1], atol=1e-6)
    assert torch.allclose(agent.state[0][0], from_zero[0][0], atol=1e-6)


def test_the_loss_unrolls_what_acting_computed_with_the_same_resets(agent_and_envs):
    agent, envs = agent_and_envs
    agent.learn_step(envs)
    start = tuple(s.clone() for s in agent.state)
    agent.learn_step(envs)
    dones = torch.from_numpy(agent.terminated | agent.truncated)
    with torch.no_grad():
        _, values = agent.model.unroll(agent.obs, start, dones)
        state, stepped = start, []
        for t in range(agent.spec.t_max):
            _, vt, state = agent.model.step(agent.obs[t], state)
            stepped.append(vt)
            state = reset_state(state, dones[t])
    assert torch.allclose(values, torch.cat(stepped), atol=1e-6)


def test_the_loss_starts_each_rollout_from_the_carried_state_as_a_constant(agent_and_envs):
    """Truncated BPTT: the state the loss unrolls from carries the earlier rollout's values, not its graph."""
    agent, envs = agent_and_envs
    seen = []
    unroll = agent.model.unroll
    agent.model.unroll = lambda obs, state, dones: seen.append(state) or unroll(obs, state, dones)
    agent.learn_step(envs)
    carried = tuple(s.clone() for s in agent.state)
    agent.learn_step(envs)
    assert all(torch.count_nonzero(s) == 0 for s in seen[0])  # the first rollout starts from zeros
    assert all(torch.equal(a, b) for a, b in zip(seen[1], carried))
    assert all(not s.requires_grad and s.grad_fn is None for s in seen[1])
    norm = float(agent.flat.grads.norm())
    assert norm > 0 and np.isfinite(norm)


def test_without_lstm_there_is_no_state():
    spec = RunSpec(env_id="tests/Countdown-v0", t_max=3, envs_per_worker=2, hidden_size=8)
    envs = EnvBatch(spec.env_id, 2, seed=0)
    agent = A3CAgent(spec, envs, seed=0)
    agent.learn_step(envs)
    assert agent.state is None and not agent.model.recurrent
    envs.close()
