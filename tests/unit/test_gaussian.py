"""The Gaussian policy's log-probability and entropy against hand-computed values, and its A3C loss."""
import math

import numpy as np
import pytest
import torch

from worker.algorithms.a3c import a3c_gaussian_loss
from worker.algorithms.gaussian import gaussian_entropy, gaussian_log_prob
from worker.algorithms.sampling import sample_gaussian

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)  # 0.9189385...


@pytest.mark.parametrize("a, mu, var, expected", [
    (0.0, 0.0, 1.0, -0.9189385),                                # -1/2 log 2pi
    (1.0, 0.0, 1.0, -1.4189385),                                # -1/2 (1 + log 2pi)
    (3.0, 1.0, 4.0, -0.5 * (4 / 4 + math.log(4)) - HALF_LOG_2PI),  # -1.6120857
    (-0.5, 0.5, 0.25, -0.5 * (1 / 0.25 + math.log(0.25)) - HALF_LOG_2PI),  # -2.2257914
])
def test_log_prob_of_one_dimension_matches_the_formula(a, mu, var, expected):
    got = gaussian_log_prob(torch.tensor([[a]]), torch.tensor([[mu]]), torch.tensor([[var]]))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_log_prob_adds_over_independent_dimensions():
    got = gaussian_log_prob(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    assert got.item() == pytest.approx(-0.9189385 - 1.4189385, abs=1e-6)


@pytest.mark.parametrize("var, expected", [
    (1.0, 1.4189385),                     # 1/2 log(2 pi e)
    (4.0, 1.4189385 + 0.5 * math.log(4)),  # 2.1120857: doubling sigma adds log 2
    (0.01, 1.4189385 + 0.5 * math.log(0.01)),  # -0.8836466: narrow Gaussians have negative entropy
])
def test_entropy_matches_the_formula(var, expected):
    assert gaussian_entropy(torch.tensor([[var]])).item() == pytest.approx(expected, abs=1e-6)


def test_log_prob_agrees_with_torch_distributions():
    g = torch.Generator().manual_seed(0)
    a, mu = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    var = torch.rand(5, 3, generator=g) + 0.1
    ref = torch.distributions.Normal(mu, var.sqrt())
    assert torch.allclose(gaussian_log_prob(a, mu, var), ref.log_prob(a).sum(-1), atol=1e-5)
    assert torch.allclose(gaussian_entropy(var), ref.entropy().sum(-1), atol=1e-5)


def test_samples_have_the_policy_mean_and_variance():
    rng = np.random.default_rng(0)
    mean, var = torch.full((20000, 1), 1.5), torch.full((20000, 1), 0.25)
    x = sample_gaussian(mean, var, rng)
    assert x.shape == (20000, 1) and x.dtype == np.float32
    assert abs(x.mean() - 1.5) < 0.02 and abs(x.var() - 0.25) < 0.02


def test_gaussian_loss_pushes_the_mean_toward_an_action_with_positive_advantage():
    mean = torch.zeros(1, 1, requires_grad=True)
    var = torch.ones(1, 1, requires_grad=True)
    loss = a3c_gaussian_loss(mean, var, torch.zeros(1), torch.tensor([[1.0]]), torch.tensor([2.0]), 0.0, 0.5)
    loss.total.backward()
    # policy loss = -log pi(a) * A with A = 2: d/dmu = -(a - mu)/var * A = -2
    assert mean.grad.item() == pytest.approx(-2.0)
    assert loss.policy_loss == pytest.approx(2 * 1.4189385, abs=1e-5)
    assert loss.value_loss == pytest.approx(4.0)
    assert loss.entropy == pytest.approx(1.4189385, abs=1e-6)


def test_entropy_bonus_widens_the_gaussian():
    var = torch.ones(1, 1, requires_grad=True)
    loss = a3c_gaussian_loss(torch.zeros(1, 1), var, torch.zeros(1), torch.zeros(1, 1), torch.zeros(1), 0.1, 0.5)
    loss.total.backward()
    assert var.grad.item() == pytest.approx(-0.1 * 0.5)  # d(-beta * 1/2 log var)/dvar at var = 1


def test_the_parameter_std_head_does_not_depend_on_the_state_and_learns():
    from worker.networks.heads import LogStdGaussianHead
    head = LogStdGaussianHead(4, 2, log_std_init=-1.0)
    mean, var = head(torch.randn(5, 4))
    assert mean.shape == var.shape == (5, 2)
    assert torch.allclose(var, torch.full((5, 2), math.exp(-2.0)), atol=2e-4)  # sigma^2 = exp(2 log sigma)
    loss = a3c_gaussian_loss(mean, var, torch.zeros(5), torch.ones(5, 2), torch.ones(5), 0.01, 0.5)
    loss.total.backward()
    assert head.log_std.grad is not None and head.log_std.grad.abs().sum() > 0


def test_normalized_advantages_change_the_policy_term_only():
    mean, var = torch.zeros(4, 1, requires_grad=True), torch.ones(4, 1)
    actions, values = torch.tensor([[1.0], [-1.0], [0.5], [0.0]]), torch.zeros(4)
    returns = torch.tensor([10.0, 20.0, 30.0, 40.0])
    plain = a3c_gaussian_loss(mean, var, values, actions, returns, 0.0, 0.5)
    scaled = a3c_gaussian_loss(mean, var, values, actions, returns, 0.0, 0.5, normalize_advantage=True)
    assert scaled.value_loss == plain.value_loss
    adv = (returns - returns.mean()) / returns.std()
    expected = -(gaussian_log_prob(actions, mean, var) * adv).sum().item()
    assert scaled.policy_loss == pytest.approx(expected, rel=1e-5) and scaled.policy_loss != plain.policy_loss
