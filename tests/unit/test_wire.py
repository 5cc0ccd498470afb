"""--wire-dtype: the worker's float16 gradient is what the server decodes, and never turns into Inf."""
import math

import numpy as np
import pytest

from ps.core.validate import decode_gradient
from worker.wire import FLOAT16_MAX, narrow_to_float16, wire_gradients


def test_float16_gradient_round_trips_through_the_servers_decoder():
    g = np.array([0.5, -1.25, 3e-3, 100.0], dtype=np.float32)
    d, norm = decode_gradient(wire_gradients(g, "float16").tobytes(), "float16", [4], 4)
    np.testing.assert_allclose(d.astype(np.float32), g, rtol=1e-3)
    assert abs(norm - float(np.linalg.norm(g))) < 0.1


def test_float16_cast_saturates_instead_of_overflowing():
    g = np.array([1e6, -1e6, 1.0], dtype=np.float32)
    d, norm = decode_gradient(wire_gradients(g, "float16").tobytes(), "float16", [3], 3)
    assert np.isfinite(norm)
    assert d[0] == FLOAT16_MAX and d[1] == -FLOAT16_MAX


def test_narrowing_saturates_infinities_keeps_nan_and_rounds_like_numpy():
    g = np.array([np.inf, -np.inf, np.nan, 65504.0, 65519.0, 1e-8, -0.0, 1.0 / 3], dtype=np.float32)
    half = narrow_to_float16(g)
    assert half.dtype == np.float16 and half.shape == g.shape
    assert half[0] == FLOAT16_MAX and half[1] == -FLOAT16_MAX and math.isnan(half[2])
    assert half[3] == FLOAT16_MAX and half[4] == FLOAT16_MAX
    finite = np.isfinite(g)
    np.testing.assert_array_equal(half[finite], np.clip(g[finite], -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16))


@pytest.mark.parametrize("size", [0, 1, 700_001])
def test_narrowing_matches_numpys_saturating_cast_at_any_size(size):
    g = (np.random.default_rng(size).standard_normal(size) * 3e4).astype(np.float32)
    expected = np.clip(g, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
    np.testing.assert_array_equal(narrow_to_float16(g), expected)


def test_float32_is_sent_unchanged():
    g = np.arange(5, dtype=np.float32)
    assert wire_gradients(g, "float32") is g  # float32 goes out as it is, no copy
