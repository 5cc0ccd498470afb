"""The pushed gradient is the SUM of the per-step gradients, read from the flat buffer."""
import numpy as np
import torch

from worker.algorithms.a3c import a3c_loss
from worker.models import ActorCritic, FlatParams


def _model():
    torch.manual_seed(0)
    return ActorCritic(obs_dim=4, n_actions=2, hidden=8, layers=2)


def test_flat_gradient_equals_sum_of_per_step_gradients():
    model = _model()
    flat = FlatParams(model)
    obs = torch.randn(6, 4)
    actions = torch.tensor([0, 1, 1, 0, 1, 0])
    returns = torch.randn(6)

    flat.zero_grads()
    logits, values = model(obs)
    a3c_loss(logits, values, actions, returns, 0.01, 0.5).total.backward()
    summed = np.frombuffer(flat.grads_bytes(), dtype=np.float32).copy()

    per_step = np.zeros_like(summed)
    for i in range(6):
        flat.zero_grads()
        logits, values = model(obs[i:i + 1])
        a3c_loss(logits, values, actions[i:i + 1], returns[i:i + 1], 0.01, 0.5).total.backward()
        per_step += np.frombuffer(flat.grads_bytes(), dtype=np.float32)
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
    logits, values = model(torch.randn(3, 4))
    (logits.sum() + values.sum()).backward()
    assert first.grad.data_ptr() == flat.grads.data_ptr()
    assert flat.grad_norm() > 0


def test_layout_hash_depends_on_names_and_shapes():
    a = FlatParams(ActorCritic(4, 2, 8, 2)).layout
    b = FlatParams(ActorCritic(4, 2, 8, 2)).layout
    c = FlatParams(ActorCritic(4, 3, 8, 2)).layout
    assert a.hash == b.hash != c.hash


def test_entropy_bonus_lowers_the_loss():
    logits = torch.zeros(2, 2, requires_grad=True)
    values = torch.zeros(2, requires_grad=True)
    no_bonus = a3c_loss(logits, values, torch.tensor([0, 1]), torch.zeros(2), 0.0, 0.5)
    bonus = a3c_loss(logits, values, torch.tensor([0, 1]), torch.zeros(2), 0.1, 0.5)
    assert abs(no_bonus.entropy - 2 * np.log(2)) < 1e-6
    assert bonus.total.item() < no_bonus.total.item()
