"""--wire-dtype: the worker's float16 gradient is what the server decodes, and never turns into Inf."""
import numpy as np

from ps.core.validate import decode_gradient
from worker.wire import FLOAT16_MAX, wire_gradients


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


def test_float32_is_sent_unchanged():
    g = np.arange(5, dtype=np.float32)
    assert wire_gradients(g, "float32") is g  # float32 goes out as it is, no copy
