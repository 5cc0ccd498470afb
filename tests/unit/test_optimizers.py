"""The three update rules against hand-computed numbers, and per-worker state isolation."""
import numpy as np
import pytest

from ps.api.spec import ConfigError, RunSpec
from ps.core.optim import MomentumSGD, PerWorkerRMSProp, SharedRMSProp, make_optimizer, momentum_sgd


def f32(*x):
    return np.array(x, dtype=np.float32)


def test_momentum_sgd_step_matches_hand_computed_numbers():
    theta, m = f32(1.0, 2.0), f32(0.5, -1.0)
    momentum_sgd(theta, m, f32(2.0, 0.0), d_scale=1.0, lr=0.1, alpha=0.9, scratch=np.empty(2, np.float32))
    # m = .9*[.5, -1] + .1*[2, 0] = [.65, -.9] ; theta = [1, 2] - .1*m = [.935, 2.09]
    np.testing.assert_allclose(m, [0.65, -0.9], rtol=1e-6)
    np.testing.assert_allclose(theta, [0.935, 2.09], rtol=1e-6)


def test_per_worker_rmsprop_keeps_statistics_apart():
    opt = PerWorkerRMSProp(1, alpha=0.5, eps=0.0)
    opt.add_worker(1)
    opt.add_worker(2)
    theta = f32(0.0)
    opt.apply(theta, f32(2.0), 1.0, worker_id=1)   # g1 = .5*4 = 2 ; step 2/sqrt(2)
    opt.apply(theta, f32(2.0), 1.0, worker_id=2)   # g2 starts from 0 again: = 2 ; same step
    assert opt.per_worker[1][0] == pytest.approx(2.0) and opt.per_worker[2][0] == pytest.approx(2.0)
    np.testing.assert_allclose(theta, [-2 * 2 / np.sqrt(2.0)], rtol=1e-6)
    opt.apply(theta, f32(2.0), 1.0, worker_id=1)   # only worker 1's g moves: .5*2 + .5*4 = 3
    assert opt.per_worker[1][0] == pytest.approx(3.0) and opt.per_worker[2][0] == pytest.approx(2.0)


def test_shared_rmsprop_shares_statistics_across_workers():
    opt = SharedRMSProp(1, alpha=0.5, eps=0.0)
    theta = f32(0.0)
    opt.apply(theta, f32(2.0), 1.0, worker_id=1)
    opt.apply(theta, f32(2.0), 1.0, worker_id=2)
    assert opt.g[0] == pytest.approx(3.0)  # .5*(.5*4) + .5*4


def test_momentum_is_per_worker_and_dropped_when_a_worker_leaves():
    opt = MomentumSGD(1, alpha=0.5)
    theta = f32(0.0)
    opt.add_worker(7)
    opt.apply(theta, f32(1.0), 1.0, worker_id=7)
    assert opt.per_worker[7][0] == pytest.approx(0.5)
    opt.apply(theta, f32(1.0), 1.0, worker_id=8)   # a worker seen first at a push gets fresh state
    assert opt.per_worker[8][0] == pytest.approx(0.5)
    opt.remove_worker(7)
    opt.add_worker(7)                                # rejoining starts fresh
    assert opt.per_worker[7][0] == 0.0


def test_state_round_trips_for_checkpoints():
    opt = PerWorkerRMSProp(2, 0.9, 1e-5)
    opt.apply(np.zeros(2, np.float32), f32(1.0, 2.0), 0.1, worker_id=3)
    other = PerWorkerRMSProp(2, 0.9, 1e-5)
    other.load_state({k: v.copy() for k, v in opt.state().items()})
    np.testing.assert_array_equal(other.per_worker[3], opt.per_worker[3])


def test_run_spec_picks_the_optimizer_and_refuses_unknown_names():
    assert isinstance(make_optimizer(RunSpec(optimizer="momentum-sgd"), 3), MomentumSGD)
    assert isinstance(make_optimizer(RunSpec(optimizer="rmsprop"), 3), PerWorkerRMSProp)
    assert isinstance(make_optimizer(RunSpec(), 3), SharedRMSProp)
    with pytest.raises(ConfigError, match="shared-rmsprop, rmsprop, momentum-sgd"):
        RunSpec(optimizer="adam")
