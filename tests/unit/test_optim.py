import numpy as np

from ps.core.optim import clip_by_global_norm, linear_lr, shared_rmsprop


def test_one_shared_rmsprop_apply_matches_hand_computed_numbers():
    theta = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    g = np.array([0.0, 1.0, 4.0], dtype=np.float32)
    d = np.array([2.0, -1.0, 0.0], dtype=np.float32)
    shared_rmsprop(theta, g, d, d_scale=1.0, lr=0.1, alpha=0.5, eps=0.01, scratch=np.empty(3, dtype=np.float32))
    # g' = .5*g + .5*d^2 = [2, 1, 2]
    np.testing.assert_allclose(g, [2.0, 1.0, 2.0], rtol=1e-6)
    # theta' = theta - .1 * d / sqrt(g' + .01)
    expected = [1.0 - 0.2 / np.sqrt(2.01), -2.0 + 0.1 / np.sqrt(1.01), 0.5]
    np.testing.assert_allclose(theta, expected, rtol=1e-6)


def test_statistics_are_shared_across_successive_applies():
    theta = np.zeros(1, dtype=np.float32)
    g = np.zeros(1, dtype=np.float32)
    s = np.empty(1, dtype=np.float32)
    shared_rmsprop(theta, g, np.array([1.0], np.float32), 1.0, 1.0, 0.9, 1e-8, s)
    shared_rmsprop(theta, g, np.array([1.0], np.float32), 1.0, 1.0, 0.9, 1e-8, s)
    # g1 = .1, g2 = .09 + .1 = .19 ; theta = -(1/sqrt(.1) + 1/sqrt(.19))
    np.testing.assert_allclose(g, [0.19], rtol=1e-5)
    np.testing.assert_allclose(theta, [-(1 / np.sqrt(0.1) + 1 / np.sqrt(0.19))], rtol=1e-5)


def test_learning_rate_anneals_linearly_to_zero():
    assert linear_lr(1e-3, 0, 100) == 1e-3
    assert abs(linear_lr(1e-3, 25, 100) - 7.5e-4) < 1e-12
    assert linear_lr(1e-3, 100, 100) == 0.0
    assert linear_lr(1e-3, 150, 100) == 0.0


def test_clip_scales_only_gradients_above_the_norm():
    d = np.array([3.0, 4.0], dtype=np.float32)
    assert clip_by_global_norm(d, 10.0, 5.0) == 1.0
    np.testing.assert_allclose(d, [3.0, 4.0])
    clip_by_global_norm(d, 1.0, 5.0)
    np.testing.assert_allclose(d, [0.6, 0.8], rtol=1e-5)
    clip_by_global_norm(d, 0.0, 1.0)  # disabled
    np.testing.assert_allclose(d, [0.6, 0.8], rtol=1e-5)
