"""The push reply the core frames: theta after the push, one version exactly, on every path.

An applied asynchronous push without a target network has its reply written by the update kernel in
the same pass (ps/_kernels.c); dropped pushes, synchronous rounds and the Q methods' target network
frame theta after the update instead. Each is checked against the server's state after the push,
and the kernels' replies against the numpy reference's.
"""
import numpy as np
import pytest

from ps.core import optim
from ps.api.framing import split_tensor
from ps.api.v1 import parameter_server_pb2 as pb
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.layout import Layout
from ps.service.grpc_service import _push_frame

N = 1001  # not a multiple of the kernels' vector width
SPECS = {
    "a3c": dict(),
    "per-worker-rmsprop": dict(optimizer="rmsprop"),
    "momentum-sgd": dict(optimizer="momentum-sgd"),
    "clipped": dict(max_grad_norm=0.5),
    "some-dropped": dict(max_staleness=1),
    "n-step-q": dict(algo="n-step-q", target_update_steps=30),
    "sync": dict(sync=True),
}


def _pushes(tmp_path, spec_args: dict, tag: str):
    """Six pushes from two workers at staggered base versions; each reply, read back, beside the
    server's theta and version right after it."""
    core = ParameterServer(RunSpec(target_return=None, **spec_args), ServerConfig(run_dir=str(tmp_path / tag)))
    rng = np.random.default_rng(7)
    try:
        layout = Layout.from_pairs([("w", (N,))])
        ids = [core.register("h", 1)[0] for _ in range(1 if spec_args.get("sync") else 2)]
        for wid in ids:
            core.pull(wid, layout, rng.normal(size=N).astype(np.float32).tobytes())
        out = []
        for i in range(6):
            base = max(0, core.version - i % 3)
            grad = rng.normal(size=N).astype(np.float32).tobytes()
            result = core.push(ids[i % len(ids)], base, grad, "float32", [N], 10, [], [], {}, frame=_push_frame)
            reply, tensor, data = split_tensor(result.params, pb.PushReply, "params")
            out.append((reply, list(tensor.shape), np.frombuffer(data, np.float32).copy(),
                        core.params_snapshot()[1], core.version))
        return out
    finally:
        core.close()


@pytest.mark.parametrize("name", SPECS)
def test_reply_holds_theta_and_version_right_after_the_push(tmp_path, name):
    replies = _pushes(tmp_path, SPECS[name], "c")
    for reply, shape, params, theta, version in replies:
        assert reply.version == version and shape == [N]
        np.testing.assert_array_equal(params, theta)
    applied = [r[0].applied for r in replies]
    assert (False in applied) == (name == "some-dropped")  # the dropped path was taken where meant
    assert replies[-1][0].global_step == 60


@pytest.mark.parametrize("name", SPECS)
def test_kernel_replies_match_the_numpy_reference(tmp_path, monkeypatch, name):
    assert optim.KERNEL == "c"
    fused = _pushes(tmp_path, SPECS[name], "c")
    monkeypatch.setattr(optim, "_kernels", None)
    reference = _pushes(tmp_path, SPECS[name], "numpy")
    for (reply, _, params, *_), (ref_reply, _, ref_params, *_) in zip(fused, reference):
        target, ref_target = (np.frombuffer(r.target_params.data, np.float32) for r in (reply, ref_reply))
        for r in (reply, ref_reply):
            r.ClearField("target_params")  # theta- is a copy of theta: compared as floats below
        assert reply == ref_reply  # every other field: the same
        np.testing.assert_allclose(params, ref_params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(target, ref_target, rtol=1e-5, atol=1e-6)
