"""The value-based methods' pieces against hand-computed numbers: the three targets, the loss, the
epsilon schedule and draw, the target network's copies (alone and through the server core), the
acting step's push points, and the refusals of bad configurations."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ps.api.spec import ALGORITHMS, ConfigError, RunSpec

from ps.config import ServerConfig

from ps.api.defaults import resolve_spec
from ps.records.checkpoint import decode, encode
from ps.core.parameter_server import ParameterServer
from ps.api.envs import check_env
from ps.api.layout import Layout
from ps.core.target import TargetNetwork
from worker.algorithms.q_learning import (FINAL_EPSILON_PROBS, FINAL_EPSILONS, dealt_final_epsilon, epsilon_at, n_step_q_targets,
                                          one_step_q_targets, one_step_sarsa_targets, q_loss)
from worker.algorithms.sampling import epsilon_greedy
from ps.api.source import Push

GAMMA = 0.9
# A hand-made 4-step trajectory of one env: rewards, and Q(s', .; theta-) after each step.
REWARDS = torch.tensor([1.0, 2.0, 3.0, 4.0])
NEXT_Q = torch.tensor([[1.0, 5.0], [2.0, 0.0], [9.0, 9.0], [3.0, 4.0]])
NEXT_ACTIONS = torch.tensor([0, 1, 1, 0])
NOT_ENDED = torch.tensor([False, False, False, False])
TERMINAL_AT_2 = torch.tensor([False, False, True, False])


def test_one_step_q_target_with_a_terminal_bootstraps_nothing_there():
    y = one_step_q_targets(REWARDS, TERMINAL_AT_2, NEXT_Q, GAMMA)
    assert y.tolist() == pytest.approx([1 + 0.9 * 5, 2 + 0.9 * 2, 3.0, 4 + 0.9 * 4])


def test_one_step_q_target_with_a_truncation_bootstraps_from_the_final_observation():
    # truncated at step 2: its "next" row holds Q(s_final) = [9, 9], and it is not a terminal
    y = one_step_q_targets(REWARDS, NOT_ENDED, NEXT_Q, GAMMA)
    assert y.tolist() == pytest.approx([5.5, 3.8, 3 + 0.9 * 9, 7.6])


def test_double_q_reads_theta_minus_at_the_online_networks_greedy_action():
    online = torch.tensor([[9.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # theta's argmax: 0, 1, 1, 0
    y = one_step_q_targets(REWARDS, TERMINAL_AT_2, NEXT_Q, GAMMA, online)
    assert y.tolist() == pytest.approx([1 + 0.9 * 1, 2 + 0.9 * 0, 3.0, 4 + 0.9 * 3])
    truncation_q = np.zeros((4, 1, 2), np.float32)
    truncation_q[1, 0] = [6.0, 5.0]
    truncation_online = np.zeros((4, 1, 2), np.float32)
    truncation_online[1, 0] = [0.0, 1.0]  # theta picks action 1 there: theta- says 5, not its max 6
    y = n_step_q_targets(REWARDS.numpy()[:, None], np.zeros((4, 1), bool), np.array([[False], [True], [False], [False]]),
                         truncation_q, np.array([[2.0, 10.0]], np.float32), GAMMA,
                         truncation_online, np.array([[1.0, 0.0]], np.float32))[:, 0]
    # R3 = 4 + .9*2 = 5.8; R2 = 3 + .9*5.8 = 8.22; R1 = 2 + .9*5 = 6.5; R0 = 1 + .9*6.5 = 6.85
    assert y.tolist() == pytest.approx([6.85, 6.5, 8.22, 5.8], abs=1e-4)


def test_one_step_sarsa_target_uses_the_next_action_taken_not_the_max():
    y = one_step_sarsa_targets(REWARDS, TERMINAL_AT_2, NEXT_Q, NEXT_ACTIONS, GAMMA)
    assert y.tolist() == pytest.approx([1 + 0.9 * 1, 2 + 0.9 * 0, 3.0, 4 + 0.9 * 3])
    y = one_step_sarsa_targets(REWARDS, NOT_ENDED, NEXT_Q, NEXT_ACTIONS, GAMMA)
    assert y.tolist() == pytest.approx([1.9, 2.0, 3 + 0.9 * 9, 6.7])


def _n_step(terminated, truncated, truncation_q):
    r = REWARDS.numpy()[:, None]                      # [T=4, K=1]
    bootstrap_q = np.array([[2.0, 10.0]], np.float32)  # Q(s_4, .; theta-): max 10
    return n_step_q_targets(r, np.array(terminated)[:, None], np.array(truncated)[:, None],
                            truncation_q, bootstrap_q, GAMMA)[:, 0]


def test_n_step_q_targets_bootstrap_from_the_max_at_t_max():
    no_cut = np.zeros((4, 1, 2), np.float32)
    y = _n_step([False] * 4, [False] * 4, no_cut)
    # R3 = 4 + .9*10 = 13; R2 = 3 + .9*13 = 14.7; R1 = 2 + .9*14.7 = 15.23; R0 = 1 + .9*15.23 = 14.707
    assert y.tolist() == pytest.approx([14.707, 15.23, 14.7, 13.0], abs=1e-4)


def test_n_step_q_targets_stop_at_a_terminal():
    y = _n_step([False, True, False, False], [False] * 4, np.zeros((4, 1, 2), np.float32))
    assert y.tolist() == pytest.approx([1 + 0.9 * 2, 2.0, 14.7, 13.0], abs=1e-4)


def test_n_step_q_targets_bootstrap_a_truncation_from_its_final_observation():
    truncation_q = np.zeros((4, 1, 2), np.float32)
    truncation_q[1, 0] = [6.0, 5.0]  # Q(s_final, .; theta-) of the episode cut at step 1: max 6
    y = _n_step([False] * 4, [False, True, False, False], truncation_q)
    # R1 = 2 + .9*6 = 7.4; R0 = 1 + .9*7.4 = 7.66; steps 2, 3 belong to the next episode
    assert y.tolist() == pytest.approx([7.66, 7.4, 14.7, 13.0], abs=1e-4)


def test_q_loss_is_the_summed_squared_error_and_no_gradient_reaches_the_targets():
    q = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    targets = torch.tensor([4.0, 1.0], requires_grad=True)
    loss = q_loss(q, torch.tensor([1, 0]), targets)
    assert loss.item() == pytest.approx((4 - 2) ** 2 + (1 - 3) ** 2)
    loss.backward()
    assert q.grad.tolist() == [[0.0, -4.0], [4.0, 0.0]]
    assert targets.grad is None


def test_huber_q_loss_is_squared_within_one_of_the_target_and_linear_beyond():
    q = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss = q_loss(q, torch.tensor([1, 0]), torch.tensor([2.5, -7.0]), "huber")
    assert loss.item() == pytest.approx(0.5 * 0.5 ** 2 + (10 - 0.5))
    loss.backward()
    assert q.grad.tolist() == [[0.0, -0.5], [1.0, 0.0]]   # the error of 10 pulls as hard as one of 1


def test_epsilon_anneals_linearly_from_one_to_the_final_value_then_stays():
    assert epsilon_at(0, 0.1, 1000) == 1.0
    assert epsilon_at(500, 0.1, 1000) == pytest.approx(0.55)
    assert epsilon_at(1000, 0.1, 1000) == pytest.approx(0.1)
    assert epsilon_at(50_000, 0.01, 1000) == pytest.approx(0.01)


def test_final_epsilons_are_dealt_by_worker_id_in_the_papers_proportions():
    dealt = [dealt_final_epsilon(worker_id) for worker_id in range(1, 1001)]
    for e, p in zip(FINAL_EPSILONS, FINAL_EPSILON_PROBS):
        assert all(dealt[i:i + 10].count(e) == round(10 * p) for i in range(0, 1000, 10))
    assert dealt[:2] == [0.1, 0.01]  # two workers: neither explores half at random
    assert dealt[:3] == [0.1, 0.01, 0.5]  # three hold one of each
    assert dealt_final_epsilon(0) == dealt_final_epsilon(1)


def test_epsilon_greedy_is_greedy_at_zero_and_uniform_at_one():
    rng = np.random.default_rng(0)
    q = np.tile([[0.0, 1.0, 0.5]], (3000, 1))
    assert (epsilon_greedy(q, 0.0, rng) == 1).all()
    counts = np.bincount(epsilon_greedy(q, 1.0, rng), minlength=3) / 3000
    assert counts == pytest.approx([1 / 3] * 3, abs=0.04)


def test_target_copies_when_the_global_step_crosses_a_multiple_and_only_then():
    theta = np.zeros(3, np.float32)
    target = TargetNetwork(theta, update_steps=100)
    for step, copies in [(40, False), (99, False), (100, True), (150, False), (199, False), (205, True),
                         (450, True), (460, False)]:
        theta += 1.0  # theta moves on every push
        assert target.maybe_copy(theta, step) is copies, step
        if copies:
            assert (target.params == theta).all()
        else:
            assert (target.params != theta).all()
    assert target.version == 4 and target.copies == 3
    assert target.age(470) == 20  # global steps since the last copy (at 450)


def test_server_copies_theta_minus_at_the_right_push_and_sends_it_only_on_a_version_change(tmp_path):
    spec = RunSpec(algo="n-step-q", target_update_steps=100, total_steps=10_000, target_return=None)
    core = ParameterServer(spec, ServerConfig(run_dir=str(tmp_path)))
    layout = Layout.from_pairs([("w", (3,))])
    wid, _ = core.register("h", 1)
    core.pull(wid, layout, np.zeros(3, np.float32).tobytes())
    held, data = core.target_reply(wid)   # a pull always carries theta-
    assert held == 1 and np.frombuffer(data, "<f4").tolist() == [0, 0, 0]
    g = np.ones(3, np.float32).tobytes()
    versions, sent = [], []
    for _ in range(6):  # 40 env steps per push: T = 40, 80, 120, 160, 200, 240
        r = core.push(Push(worker_id=wid, base_version=core.version, gradient=g, shape=[3], env_steps=40, target_version=held))
        versions.append(r.target_version)
        sent.append(bool(r.target_params))
        if r.target_params:
            held = r.target_version
            assert r.target_params == r.params  # copied from theta after this very push
    assert versions == [1, 1, 2, 2, 3, 3]     # copies when T reaches 120 and 200, not before
    assert sent == [False, False, True, False, True, False]
    status = core.status()["target_network"]
    assert status["version"] == 3 and status["age_steps"] == 40 and status["sends"] == {str(wid): 3}
    state = core.state_dict()
    assert state["meta"]["target"]["version"] == 3 and "target" in state["meta"]["flat_arrays"]
    core.close()
    restored = ParameterServer(spec, ServerConfig(run_dir=str(tmp_path / "restored")))
    restored.load_state_dict(decode(encode(state), "ckpt"))  # a checkpoint file carries theta- and its version
    assert restored.target.version == 3 and (restored.target.params == state["arrays"]["target"]).all()
    assert restored.target.age(restored.global_step) == 40
    restored.close()


def test_a3c_has_no_target_network(tmp_path):
    core = ParameterServer(RunSpec(total_steps=1000), ServerConfig(run_dir=str(tmp_path)))
    wid, _ = core.register("h", 1)
    core.pull(wid, Layout.from_pairs([("w", (3,))]), np.zeros(3, np.float32).tobytes())
    assert core.target_reply(wid) == (0, b"")
    assert core.status()["target_network"] is None
    core.close()


def _agent(algo, envs_per_worker=1, **fields):
    from worker.agents import make_agent
    from worker.envs import EnvBatch
    # the real RunSpec: a field added to the contract reaches the agent with its default
    spec = RunSpec(algo=algo, env_id="CartPole-v1", t_max=5, async_update_steps=5, gamma=0.99,
                   epsilon_anneal_steps=100, hidden_size=16, hidden_layers=1, network="mlp", **fields)
    envs = EnvBatch("CartPole-v1", envs_per_worker, seed=7)
    return make_agent(spec, envs, 7), envs


@pytest.mark.parametrize("algo", ["one-step-q", "one-step-sarsa"])
def test_one_step_methods_push_every_async_update_steps_or_at_an_episode_end(algo):
    agent, envs = _agent(algo)
    ended_early = 0
    for _ in range(40):
        steps, stats = agent.learn_step(envs)
        finished, _ = envs.take_finished()
        assert steps == 5 or (steps < 5 and len(finished) == 1)
        ended_early += steps < 5
        assert float(agent.flat.grads.norm()) > 0
    assert ended_early > 0
    assert stats["epsilon"] == pytest.approx(epsilon_at(agent.own_steps, agent.final_epsilon, 100), abs=1e-4)
    envs.close()


@pytest.mark.parametrize("algo", ["one-step-q", "n-step-q"])
def test_double_q_changes_what_one_step_and_n_step_q_learn(algo):
    grads = []
    for double in (False, True):
        agent, envs = _agent(algo, envs_per_worker=3, double_q=double)
        torch.manual_seed(0)
        with torch.no_grad():  # a theta- unlike theta (with theta- = theta the two bootstraps agree)
            for p in agent.target_model.parameters():
                p.add_(torch.randn_like(p))
        agent.learn_step(envs)
        grads.append(agent.flat.grads.clone())
        envs.close()
    assert not torch.allclose(grads[0], grads[1])


def test_n_step_q_pushes_every_t_max_steps_on_every_env():
    agent, envs = _agent("n-step-q", envs_per_worker=3)
    assert [agent.learn_step(envs)[0] for _ in range(30)] == [15] * 30
    envs.close()


def test_unknown_algo_is_refused_listing_the_four():
    with pytest.raises(ConfigError) as err:
        RunSpec(algo="double-q")
    assert all(name in str(err.value) for name in ALGORITHMS) and len(ALGORITHMS) == 4


def test_value_based_method_on_continuous_actions_is_refused_saying_why():
    with pytest.raises(ConfigError) as err:
        check_env(RunSpec(env_id="Pendulum-v1", algo="one-step-q"))
    assert "discrete action space" in str(err.value) and "Pendulum-v1" in str(err.value)


def test_value_based_defaults_fill_only_what_was_not_given_and_leave_a3c_alone():
    assert resolve_spec({"algo": "n-step-q", "lr": 1e-4}, "classic").lr == 1e-4
    assert resolve_spec({"algo": "n-step-q"}, "classic").lr == 3e-3
    assert resolve_spec({}, "classic") == RunSpec()
    atari = resolve_spec({"algo": "one-step-q"}, "atari")
    assert atari.target_update_steps == 10_000 and atari.epsilon_anneal_steps == 1_000_000


def test_sarsa_takes_first_the_next_action_it_bootstrapped_from():
    agent, envs = _agent("one-step-sarsa", envs_per_worker=4)
    for _ in range(20):
        agent.learn_step(envs)
        pending, goes_on = agent.pending_actions.copy(), agent.pending_mask.copy()
        agent.learn_step(envs)
        assert (agent.actions[0][goes_on] == pending[goes_on]).all()
    envs.close()


@pytest.mark.parametrize("shape, torso", [((4,), "Linear"), ((4, 10, 10), "Conv2d"), ((4, 84, 84), "Conv2d")])
def test_q_network_has_a3cs_torso_for_the_observations_and_one_output_per_action(shape, torso):
    from gymnasium import spaces

    from worker.networks import build_q_network
    spec = SimpleNamespace(network="auto", hidden_size=16, hidden_layers=2, dense_size=0, lstm=False)
    net = build_q_network(spec, spaces.Box(0.0, 1.0, shape, np.float32), spaces.Discrete(6))
    assert type(next(iter(net.torso))).__name__ == torso
    assert net(torch.zeros(3, *shape)).shape == (3, 6)


@pytest.mark.parametrize("algo", ["a3c", "one-step-sarsa"])
def test_double_q_outside_the_max_bootstrapping_methods_is_refused(algo):
    with pytest.raises(ConfigError, match="--double-q is for one-step-q and n-step-q"):
        RunSpec(algo=algo, double_q=True)


def test_lstm_with_a_value_based_method_is_refused():
    with pytest.raises(ConfigError, match="--lstm is for a3c"):
        RunSpec(algo="n-step-q", lstm=True)
