import numpy as np
import pytest

from worker.algorithms.returns import gae_advantages, n_step_returns

G = 0.9


def test_mid_episode_cut_bootstraps_from_value_of_last_state():
    r = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    none = np.zeros((3, 1), dtype=bool)
    out = n_step_returns(r, none, none, np.zeros((3, 1)), np.array([10.0]), G)
    # R2 = 3 + .9*10 = 12 ; R1 = 2 + .9*12 = 12.8 ; R0 = 1 + .9*12.8 = 12.52
    np.testing.assert_allclose(out[:, 0], [12.52, 12.8, 12.0], rtol=1e-6)


def test_termination_is_not_bootstrapped():
    r = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
    term = np.array([[False], [True], [False], [False]])
    none = np.zeros((4, 1), dtype=bool)
    out = n_step_returns(r, term, none, np.zeros((4, 1)), np.array([10.0]), G)
    # after the terminal at t=1 a new episode starts: R3 = 4 + 9 = 13, R2 = 3 + 11.7 = 14.7
    # R1 = 2 (terminal: nothing after it), R0 = 1 + .9*2 = 2.8
    np.testing.assert_allclose(out[:, 0], [2.8, 2.0, 14.7, 13.0], rtol=1e-6)


def test_truncation_is_bootstrapped_from_the_final_observation_value():
    r = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    trunc = np.array([[False], [True], [False]])
    term = np.zeros((3, 1), dtype=bool)
    tv = np.array([[0.0], [5.0], [0.0]], dtype=np.float32)
    out = n_step_returns(r, term, trunc, tv, np.array([10.0]), G)
    # R2 = 3 + 9 = 12 ; R1 = 2 + .9*5 = 6.5 (V(s_final) of the cut episode) ; R0 = 1 + .9*6.5 = 6.85
    np.testing.assert_allclose(out[:, 0], [6.85, 6.5, 12.0], rtol=1e-6)


def test_columns_are_independent_environments():
    r = np.ones((2, 2), dtype=np.float32)
    term = np.array([[False, True], [False, False]])
    none = np.zeros((2, 2), dtype=bool)
    out = n_step_returns(r, term, none, np.zeros((2, 2)), np.array([0.0, 100.0]), 1.0)
    np.testing.assert_allclose(out, [[2.0, 1.0], [1.0, 101.0]])


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_gamma_extremes(gamma):
    r = np.array([[1.0], [1.0]], dtype=np.float32)
    none = np.zeros((2, 1), dtype=bool)
    out = n_step_returns(r, none, none, np.zeros((2, 1)), np.array([1.0]), gamma)
    expected = [1.0, 1.0] if gamma == 0.0 else [3.0, 2.0]
    np.testing.assert_allclose(out[:, 0], expected)


def _rollout(seed: int, T: int = 6, K: int = 3):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(T, K)).astype(np.float32)
    v = rng.normal(size=(T, K)).astype(np.float32)
    term = rng.random((T, K)) < 0.2
    trunc = ~term & (rng.random((T, K)) < 0.2)
    return r, v, term, trunc, rng.normal(size=(T, K)).astype(np.float32), rng.normal(size=K).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_with_lambda_one_is_the_n_step_return_minus_the_value(seed):
    r, v, term, trunc, tv, boot = _rollout(seed)
    got = gae_advantages(r, v, term, trunc, tv, boot, G, 1.0)
    np.testing.assert_allclose(got, n_step_returns(r, term, trunc, tv, boot, G) - v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_with_lambda_zero_is_the_one_step_td_error(seed):
    r, v, term, trunc, tv, boot = _rollout(seed)
    following = np.concatenate([v[1:], boot[None]], axis=0)
    following = np.where(term, 0.0, np.where(trunc, tv, following))
    np.testing.assert_allclose(gae_advantages(r, v, term, trunc, tv, boot, G, 0.0), r + G * following - v,
                               rtol=1e-5, atol=1e-5)


def test_gae_by_hand_across_an_episode_end():
    r = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    v = np.array([[0.5], [1.0], [2.0]], dtype=np.float32)
    term = np.array([[False], [True], [False]])
    none = np.zeros((3, 1), dtype=bool)
    got = gae_advantages(r, v, term, none, np.zeros((3, 1)), np.array([4.0]), G, 0.5)
    a2 = 3 + G * 4 - 2            # 4.6
    a1 = 2 - 1.0                  # terminal: nothing after it, and A2 is not carried back
    a0 = (1 + G * 1.0 - 0.5) + G * 0.5 * a1
    np.testing.assert_allclose(got[:, 0], [a0, a1, a2], rtol=1e-6)
