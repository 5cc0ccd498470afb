"""The losses against numbers computed here by hand (plain math/numpy, not the code under test), and
where their gradients may not flow: not into A3C's advantage, not into the Q methods' targets."""
import math

import numpy as np
import pytest
import torch

from ps.api.spec import RunSpec
from worker.algorithms.a3c import a3c_loss

# Two samples. Sample 0: probabilities (1/4, 3/4), action 1, V = 1, R = 3 -> advantage +2.
#              Sample 1: probabilities (1/2, 1/2), action 0, V = 0.5, R = 0 -> advantage -0.5.
LOGITS = [[0.0, math.log(3.0)], [0.0, 0.0]]
PROBS = [[0.25, 0.75], [0.5, 0.5]]
ACTIONS = [1, 0]
VALUES = [1.0, 0.5]
RETURNS = [3.0, 0.0]
BETA, VALUE_COEF = 0.01, 0.5


def _loss(beta=BETA, value_coef=VALUE_COEF):
    logits = torch.tensor(LOGITS, requires_grad=True)
    values = torch.tensor(VALUES, requires_grad=True)
    loss = a3c_loss(logits, values, torch.tensor(ACTIONS), torch.tensor(RETURNS), beta, value_coef)
    return loss, logits, values


def test_each_term_and_the_total_match_the_hand_computed_sums():
    adv = [RETURNS[i] - VALUES[i] for i in range(2)]                                   # [2, -0.5]
    policy = -sum(math.log(PROBS[i][ACTIONS[i]]) * adv[i] for i in range(2))           # 0.2287898
    value = sum(a * a for a in adv)                                                    # 4.25
    entropy = -sum(p * math.log(p) for row in PROBS for p in row)                      # 1.2554823
    loss, _, _ = _loss()
    assert loss.policy_loss == pytest.approx(0.2287898, abs=1e-6)
    assert loss.policy_loss == pytest.approx(policy, abs=1e-6)
    assert loss.value_loss == pytest.approx(4.25)
    assert loss.entropy == pytest.approx(1.2554823, abs=1e-6)
    assert loss.entropy == pytest.approx(entropy, abs=1e-6)
    # total = policy + c * value - beta * entropy = 0.2287898 + 2.125 - 0.0125548
    assert loss.total.item() == pytest.approx(2.3412350, abs=1e-6)
    assert loss.total.item() == pytest.approx(policy + VALUE_COEF * value - BETA * entropy, abs=1e-6)


def test_gradients_match_the_hand_derived_formulas():
    """d/dz_j of -A log p_a is -A (1[j=a] - p_j); of -beta H it is beta p_j (log p_j + H);
    d/dV of c (R - V)^2 is -2c (R - V)."""
    loss, logits, values = _loss()
    loss.total.backward()
    p = np.array(PROBS)
    onehot = np.eye(2)[ACTIONS]
    adv = np.array(RETURNS) - np.array(VALUES)
    h = -(p * np.log(p)).sum(axis=1, keepdims=True)
    expected_logits = -adv[:, None] * (onehot - p) + BETA * p * (np.log(p) + h)
    np.testing.assert_allclose(logits.grad.numpy(), expected_logits, atol=1e-6)
    # the value gradient is the value term's alone: [-2 * 0.5 * 2, -2 * 0.5 * -0.5] = [-2, 0.5]
    np.testing.assert_allclose(values.grad.numpy(), -2 * VALUE_COEF * adv, atol=1e-6)
    np.testing.assert_allclose(values.grad.numpy(), [-2.0, 0.5], atol=1e-6)


def test_no_gradient_flows_from_the_policy_term_into_the_value():
    """With the value and entropy terms off, the loss is the policy term alone: were the advantage
    R - V not detached, dL/dV would be log pi(a|s) (here log 3/4 and log 1/2), not 0."""
    loss, logits, values = _loss(beta=0.0, value_coef=0.0)
    loss.total.backward()
    assert values.grad is None or torch.count_nonzero(values.grad) == 0
    assert torch.count_nonzero(logits.grad) > 0  # the policy itself does learn


def _q_agent(algo):
    from worker.agents import make_agent
    from worker.envs import EnvBatch
    # the real RunSpec: a field added to the contract reaches the agent with its default
    spec = RunSpec(algo=algo, env_id="CartPole-v1", t_max=5, async_update_steps=5, gamma=0.9,
                   epsilon_anneal_steps=100, hidden_size=16, hidden_layers=1, network="mlp")
    envs = EnvBatch("CartPole-v1", 3, seed=11)
    torch.set_num_threads(1)
    return make_agent(spec, envs, 11), envs


def _expected_grads(agent, targets: np.ndarray) -> np.ndarray:
    """d/dtheta of sum (y - Q(s, a; theta))^2 with y a constant, written out here (2 (Q - y) dQ)."""
    obs = agent.obs.flatten(0, 1)
    actions = torch.from_numpy(agent.actions.reshape(-1))
    agent.flat.zero_grads()
    q = agent.model(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
    residual = q.detach().numpy() - targets.reshape(-1)
    q.backward(torch.from_numpy(2.0 * residual).float())
    return agent.flat.grads.numpy().copy()


def test_no_gradient_flows_into_the_n_step_q_target_it_comes_from_theta_minus():
    agent, envs = _q_agent("n-step-q")
    # theta- differs from theta: the server's copy, sent with a pull
    rng = np.random.default_rng(0)
    theta_minus = (agent.flat.values.numpy() + rng.normal(0, 0.3, agent.flat.layout.size)).astype(np.float32)
    agent.load_target(theta_minus.tobytes(), 7)
    steps, _ = agent.learn_step(envs)
    assert steps == 15 and not agent.terminated.any() and not agent.truncated.any()  # 5 steps from a reset
    got = agent.flat.grads.numpy().copy()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in agent.target_model.parameters())

    # y_t = sum_{i>=t} gamma^(i-t) r_i + gamma^(T-t) max_a Q(s_T, a; theta-), computed here from theta-
    with torch.no_grad():
        bootstrap = agent.target_model(torch.from_numpy(envs.obs)).max(dim=1).values.numpy()
        from_theta = agent.model(torch.from_numpy(envs.obs)).max(dim=1).values.numpy()
    T, gamma = 5, 0.9

    def targets(q_last):
        y = np.zeros((T, 3))
        for t in range(T):
            y[t] = sum(gamma ** (i - t) * agent.rewards[i] for i in range(t, T)) + gamma ** (T - t) * q_last
        return y

    np.testing.assert_allclose(got, _expected_grads(agent, targets(bootstrap)), rtol=1e-4, atol=1e-5)
    # ... and not the gradient with targets from theta: the test tells them apart
    assert not np.allclose(got, _expected_grads(agent, targets(from_theta)), rtol=1e-4, atol=1e-5)
    envs.close()


@pytest.mark.parametrize("algo", ["one-step-q", "one-step-sarsa"])
def test_one_step_targets_are_constants_read_from_theta_minus(algo):
    agent, envs = _q_agent(algo)
    seen = []
    forward = agent.target_model.forward
    agent.target_model.forward = lambda obs: seen.append(torch.is_grad_enabled()) or forward(obs)
    agent.learn_step(envs)
    assert seen and not any(seen)  # every read of theta- ran without autograd
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in agent.target_model.parameters())
    assert torch.count_nonzero(agent.flat.grads) > 0
    envs.close()
