"""The pushed gradient is the SUM of the per-step gradients, read from the flat buffer."""
import numpy as np
import torch
from gymnasium import spaces

from ps.api.spec import RunSpec
from worker.algorithms.a3c import a3c_loss
from worker.networks import FlatParams, build_policy_value_net


def _net(n_actions=2):
    """CartPole's two-torso MLP: 4 observations, 2 layers of 8."""
    spec = RunSpec(hidden_size=8, hidden_layers=2)
    return build_policy_value_net(spec, spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Discrete(n_actions))


def _model():
    torch.manual_seed(0)
    return _net()


def _forward(model, obs):
    logits, values, _ = model.step(obs)
    return logits, values


def test_flat_gradient_equals_sum_of_per_step_gradients():
    model = _model()
    flat = FlatParams(model)
    obs = torch.randn(6, 4)
    actions = torch.tensor([0, 1, 1, 0, 1, 0])
    returns = torch.randn(6)

    flat.zero_grads()
    logits, values = _forward(model, obs)
    a3c_loss(logits, values, actions, returns, 0.01, 0.5).total.backward()
    summed = flat.grads.numpy().copy()

    per_step = np.zeros_like(summed)
    for i in range(6):
        flat.zero_grads()
        logits, values = _forward(model, obs[i:i + 1])
        a3c_loss(logits, values, actions[i:i + 1], returns[i:i + 1], 0.01, 0.5).total.backward()
        per_step += flat.grads.numpy()
    assert np.abs(summed).sum() > 0
    np.testing.assert_allclose(summed, per_step, rtol=1e-4, atol=1e-6)


def test_loading_flat_bytes_changes_the_model_and_grads_stay_aliased():
    model = _model()
    flat = FlatParams(model)
    new = np.arange(flat.layout.size, dtype=np.float32) / 1000
    flat.load(new.tobytes())
    first = next(model.parameters())
    np.testing.assert_allclose(first.detach().numpy().reshape(-1), new[: first.numel()])
    flat.zero_grads()
    logits, values = _forward(model, torch.randn(3, 4))
    (logits.sum() + values.sum()).backward()
    assert first.grad.data_ptr() == flat.grads.data_ptr()
    assert float(flat.grads.norm()) > 0


def test_layout_hash_depends_on_names_and_shapes():
    a = FlatParams(_net()).layout
    b = FlatParams(_net()).layout
    c = FlatParams(_net(n_actions=3)).layout
    assert a.hash == b.hash != c.hash


def test_cartpoles_network_has_a_policy_torso_a_value_torso_and_two_heads():
    names = [e.name for e in FlatParams(_net()).layout.entries]
    assert names == ["torso.0.weight", "torso.0.bias", "torso.2.weight", "torso.2.bias",
                     "v_torso.0.weight", "v_torso.0.bias", "v_torso.2.weight", "v_torso.2.bias",
                     "pi.weight", "pi.bias", "v.weight", "v.bias"]


def test_entropy_bonus_lowers_the_loss():
    logits = torch.zeros(2, 2, requires_grad=True)
    values = torch.zeros(2, requires_grad=True)
    no_bonus = a3c_loss(logits, values, torch.tensor([0, 1]), torch.zeros(2), 0.0, 0.5)
    bonus = a3c_loss(logits, values, torch.tensor([0, 1]), torch.zeros(2), 0.1, 0.5)
    assert abs(no_bonus.entropy - 2 * np.log(2)) < 1e-6
    assert bonus.total.item() < no_bonus.total.item()
