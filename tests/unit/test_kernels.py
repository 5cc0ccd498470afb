"""The fused C kernels (ps/_kernels.c): built in this install, equal to the numpy reference, loud on bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ps.core import optim
from ps.core.optim import MomentumSGD, SharedRMSProp, momentum_sgd, shared_rmsprop

kernels = optim._kernels  # None when not built: test_the_c_kernel_is_built_and_in_use says so

SIZES = st.one_of(st.sampled_from([0, 1, 7, 8, 1023]), st.integers(0, 3000))
SCALES = st.floats(0.01, 1.0)
LRS = st.floats(1e-5, 0.1)
ALPHAS = st.floats(0.0, 0.999)
EPSILONS = st.floats(1e-8, 0.1)


def test_the_c_kernel_is_built_and_in_use():
    # A broken or skipped build would silently fall back to numpy; here it fails instead.
    assert optim.KERNEL == "c", "ps._kernels is missing: `pip install --no-deps -e .` needs a C compiler"


def arrays(size: int, seed: int, steps: int):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=size).astype(np.float32)
    state = rng.uniform(0.0, 1.0, size=size).astype(np.float32)
    ds = [rng.normal(scale=3.0, size=size).astype(np.float32) for _ in range(steps)]
    return theta, state, ds


@settings(max_examples=60, deadline=None)
@given(size=SIZES, d_scale=SCALES, lr=LRS, alpha=ALPHAS, eps=EPSILONS, seed=st.integers(0, 2**32 - 1),
       steps=st.integers(1, 4))
def test_rmsprop_kernel_matches_the_numpy_reference(size, d_scale, lr, alpha, eps, seed, steps):
    theta, g, ds = arrays(size, seed, steps)
    ref_theta, ref_g, scratch = theta.copy(), g.copy(), np.empty_like(theta)
    for d in ds:
        kernels.rmsprop(theta, g, d, d_scale, lr, alpha, eps)
        shared_rmsprop(ref_theta, ref_g, d, d_scale, lr, alpha, eps, scratch)
    np.testing.assert_allclose(g, ref_g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(theta, ref_theta, rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(size=SIZES, d_scale=SCALES, lr=LRS, alpha=ALPHAS, seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 4))
def test_momentum_kernel_matches_the_numpy_reference(size, d_scale, lr, alpha, seed, steps):
    theta, m, ds = arrays(size, seed, steps)
    ref_theta, ref_m, scratch = theta.copy(), m.copy(), np.empty_like(theta)
    for d in ds:
        kernels.momentum(theta, m, d, d_scale, lr, alpha)
        momentum_sgd(ref_theta, ref_m, d, d_scale, lr, alpha, scratch)
    np.testing.assert_allclose(m, ref_m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(theta, ref_theta, rtol=1e-5, atol=1e-6)


def test_scale_is_the_same_as_scaling_a_copy_of_the_gradient():
    d = np.array([3.0, -4.0, 0.5], np.float32)
    wire = np.frombuffer(d.tobytes(), np.float32)  # read-only, as the server receives it
    a, b = SharedRMSProp(3, 0.9, 1e-5), SharedRMSProp(3, 0.9, 1e-5)
    theta_a, theta_b = np.ones(3, np.float32), np.ones(3, np.float32)
    a.apply(theta_a, wire, 0.01, worker_id=1, scale=0.2)
    b.apply(theta_b, d * np.float32(0.2), 0.01, worker_id=1)
    np.testing.assert_allclose(theta_a, theta_b, rtol=1e-6)
    np.testing.assert_allclose(a.g, b.g, rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: SharedRMSProp(3, 0.9, 1e-5), lambda: MomentumSGD(3, 0.9)],
                         ids=["shared-rmsprop", "momentum-sgd"])
def test_a_float16_gradient_is_widened_before_the_step(make):
    d32 = np.array([0.5, -1.25, 60000.0], np.float32)  # exact in float16; 60000^2 overflows float16
    theta_16, theta_32 = np.zeros(3, np.float32), np.zeros(3, np.float32)
    make().apply(theta_16, d32.astype(np.float16), 0.1, worker_id=1, scale=0.5)
    make().apply(theta_32, d32, 0.1, worker_id=1, scale=0.5)
    assert np.isfinite(theta_16).all()
    np.testing.assert_array_equal(theta_16, theta_32)


@settings(max_examples=40, deadline=None)
@given(size=SIZES, seed=st.integers(0, 2**32 - 1), rule=st.sampled_from(["rmsprop", "momentum"]))
def test_a_step_with_out_writes_the_new_theta_there_and_steps_as_the_plain_one(size, seed, rule):
    theta, state, (d,) = arrays(size, seed, 1)
    plain_theta, plain_state = theta.copy(), state.copy()
    args = (0.7, 0.01, 0.9) + ((1e-3,) if rule == "rmsprop" else ())
    out = np.full(size, np.nan, np.float32)
    assert getattr(kernels, rule)(theta, state, d, *args, out) is None
    assert getattr(kernels, rule)(plain_theta, plain_state, d, *args) is None
    np.testing.assert_array_equal(out, theta)
    np.testing.assert_array_equal(theta, plain_theta)
    np.testing.assert_array_equal(state, plain_state)


@pytest.mark.parametrize("make", [lambda: SharedRMSProp(9, 0.99, 0.1), lambda: MomentumSGD(9, 0.9)],
                         ids=["shared-rmsprop", "momentum-sgd"])
def test_the_numpy_fallback_writes_out_like_the_kernel(make, monkeypatch):
    theta, _, (d,) = arrays(9, seed=4, steps=1)
    out = np.zeros(9, np.float32)
    monkeypatch.setattr(optim, "_kernels", None)
    make().apply(theta, d, 0.01, worker_id=1, scale=0.7, out=out)
    np.testing.assert_array_equal(out, theta)


def f32(n: int) -> np.ndarray:
    return np.zeros(n, np.float32)


@pytest.mark.parametrize("call, message", [
    (lambda: kernels.rmsprop(f32(3), f32(3), f32(2), 1.0, 0.1, 0.9, 1e-8), "same length"),
    (lambda: kernels.momentum(f32(3), f32(4), f32(3), 1.0, 0.1, 0.9), "same length"),
    (lambda: kernels.rmsprop(np.zeros(3), f32(3), f32(3), 1.0, 0.1, 0.9, 1e-8), "theta must be float32"),
    (lambda: kernels.momentum(f32(3), f32(3), np.zeros(3), 1.0, 0.1, 0.9), "d must be float32"),
    (lambda: kernels.rmsprop(f32(3), f32(3), np.zeros(3, np.int32), 1.0, 0.1, 0.9, 1e-8), "d must be float32"),
    (lambda: kernels.rmsprop(np.frombuffer(bytes(12), np.float32), f32(3), f32(3), 1.0, 0.1, 0.9, 1e-8),
     "theta is read-only"),
    (lambda: kernels.momentum(f32(6)[::2], f32(3), f32(3), 1.0, 0.1, 0.9), "C-contiguous"),
    (lambda: kernels.rmsprop(*[f32(3)] * 3, 1.0, 0.1, 0.9, 1e-8), "must not overlap"),
])
def test_bad_buffers_are_refused_with_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("make", [lambda: SharedRMSProp(5, 0.99, 0.1), lambda: MomentumSGD(5, 0.9)],
                         ids=["shared-rmsprop", "momentum-sgd"])
def test_the_numpy_fallback_steps_like_the_kernel(make, monkeypatch):
    theta_c, _, ds = arrays(5, seed=3, steps=3)
    theta_np = theta_c.copy()
    with_kernel, without = make(), make()
    for d in ds:
        with_kernel.apply(theta_c, d, 0.01, worker_id=1, scale=0.7)
    monkeypatch.setattr(optim, "_kernels", None)  # as in an install built without a compiler
    for d in ds:
        without.apply(theta_np, d, 0.01, worker_id=1, scale=0.7)
    np.testing.assert_allclose(theta_np, theta_c, rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(size=SIZES, seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float16]))
def test_sum_of_squares_matches_float64_numpy(size, seed, dtype):
    d = np.random.default_rng(seed).normal(scale=10.0, size=size).astype(dtype)
    wide = d.astype(np.float64)
    assert optim.sum_of_squares(d) == pytest.approx(float(np.dot(wide, wide)), rel=1e-12, abs=1e-12)


def test_sum_of_squares_is_finite_for_huge_finite_floats_and_not_for_nan_or_inf():
    huge = np.full(1000, np.finfo(np.float32).max, np.float32)  # float32 squares would overflow
    assert np.isfinite(optim.sum_of_squares(huge))
    for bad in (np.nan, np.inf, -np.inf):
        d = np.ones(999, np.float32)
        d[500] = bad
        assert not np.isfinite(optim.sum_of_squares(d))


@settings(max_examples=40, deadline=None)
@given(size=SIZES, seed=st.integers(0, 2**32 - 1))
def test_widening_float16_gives_exactly_numpys_float32(size, seed):
    d = np.random.default_rng(seed).normal(scale=100.0, size=size).astype(np.float16)
    specials = np.array([np.inf, -np.inf, np.nan, 65504, -0.0, 6e-8, 1e-5], np.float16)
    for half in (d, specials):
        np.testing.assert_array_equal(optim.widen_float16(half), half.astype(np.float32))


def test_widen_refuses_what_is_not_float16_into_float32():
    with pytest.raises(ValueError, match="src must be float16"):
        kernels.widen(np.zeros(4, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="elements"):
        kernels.widen(np.zeros(4, np.float16), np.zeros(5, np.float32))


@pytest.mark.parametrize("offset", [1, 2, 3])
def test_kernels_read_and_write_buffers_at_any_address(offset):
    # A pushed gradient is a view into the received message and starts wherever its header ends.
    def at(dtype, n, values):
        raw = memoryview(bytearray(np.dtype(dtype).itemsize * n + 8))
        array = np.ndarray((n,), dtype, buffer=raw[offset:offset + np.dtype(dtype).itemsize * n])
        array[...] = values
        return array

    n = 1001
    values = np.random.default_rng(offset).normal(size=n).astype(np.float32)
    d, theta, g = at(np.float32, n, values), at(np.float32, n, 0.5), at(np.float32, n, 0.1)
    assert not d.flags.aligned
    ref_theta, ref_g = np.full(n, 0.5, np.float32), np.full(n, 0.1, np.float32)
    kernels.rmsprop(theta, g, d, 0.5, 0.01, 0.9, 1e-3)
    shared_rmsprop(ref_theta, ref_g, values, 0.5, 0.01, 0.9, 1e-3, np.empty(n, np.float32))
    np.testing.assert_allclose(theta, ref_theta, rtol=1e-5)
    np.testing.assert_allclose(g, ref_g, rtol=1e-5)
    assert kernels.sumsq(d) == pytest.approx(float(np.dot(values.astype(np.float64), values)), rel=1e-12)
    half = at(np.float16, n, values)
    np.testing.assert_array_equal(optim.widen_float16(half), values.astype(np.float16).astype(np.float32))
    out = at(np.float32, n, 0)
    kernels.momentum(at(np.float32, n, 0.5), at(np.float32, n, 0.0), d, 1.0, 0.1, 0.9, out)
    assert np.isfinite(out).all() and not out.flags.aligned


@pytest.mark.parametrize("rule, out, message", [
    ("rmsprop", np.zeros(4, np.float32), "theta's length"),
    ("momentum", np.zeros(3, np.float16), "out must be float32"),
    ("momentum", b"\0" * 12, "read-only"),
])
def test_a_bad_out_is_refused_and_nothing_is_stepped(rule, out, message):
    theta, state, d = np.ones(3, np.float32), np.ones(3, np.float32), np.ones(3, np.float32)
    args = (1.0, 0.1, 0.9) + ((1e-8,) if rule == "rmsprop" else ())
    with pytest.raises(ValueError, match=message):
        getattr(kernels, rule)(theta, state, d, *args, out)
    assert theta.tolist() == [1.0] * 3 and state.tolist() == [1.0] * 3


def test_out_may_not_overlap_the_operands():
    theta, state, d = np.ones(3, np.float32), np.ones(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="overlap"):
        kernels.rmsprop(theta, state, d, 1.0, 0.1, 0.9, 1e-8, theta)
    assert theta.tolist() == [1.0] * 3
