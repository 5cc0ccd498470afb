"""The push reply: theta after the push, one version exactly, on every path.

An applied asynchronous push without a target network has theta written into the reply's parameter
region by the update kernel in the same pass (ps/core/_kernels.c, the core's out=); dropped pushes,
synchronous rounds and the Q methods' target network copy theta there after the update instead. Each
reply (ps/service/reply.py, read back as a PushReply) is checked against the server's state after the
push, and the kernels' replies against the numpy reference's.
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
from ps.api.source import Push
from ps.service import reply as reply_module
from ps.service.reply import PushReplyBuffer

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
            buffer = PushReplyBuffer(core.params_nbytes())
            raw = buffer.finish(core.push(Push(ids[i % len(ids)], base, grad, 10, shape=(N,)), out=buffer.params))
            assert type(raw) is bytes
            reply, tensor, data = split_tensor(raw, pb.PushReply, "params")
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
    monkeypatch.setattr(reply_module, "BytesBuf", None)  # the reply in a bytearray, as without the extension
    reference = _pushes(tmp_path, SPECS[name], "numpy")
    for (reply, _, params, *_), (ref_reply, _, ref_params, *_) in zip(fused, reference):
        target, ref_target = (np.frombuffer(r.target_params.data, np.float32) for r in (reply, ref_reply))
        for r in (reply, ref_reply):
            r.ClearField("target_params")  # theta- is a copy of theta: compared as floats below
        assert reply == ref_reply  # every other field: the same
        np.testing.assert_allclose(params, ref_params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(target, ref_target, rtol=1e-5, atol=1e-6)


def test_the_reply_parses_as_protobuf_itself_does_and_padding_fills_it_exactly():
    for dropped_reason in ("", "x" * 200):  # a long reason is cut, never spills past the fixed size
        buffer = PushReplyBuffer(4 * 3)
        buffer.params[:] = [1.5, -2.0, 3.25]
        from ps.api.source import PushOutcome
        raw = buffer.finish(PushOutcome(False, dropped_reason, 2**40, 7, True, 2**50, 1e-3))
        whole = pb.PushReply.FromString(raw)
        assert list(np.frombuffer(whole.params.data, np.float32)) == [1.5, -2.0, 3.25]
        assert (whole.version, whole.staleness, whole.stop, whole.global_step) == (2**40, 7, True, 2**50)
        assert whole.dropped_reason == dropped_reason[:64]


def test_a_reply_is_handed_out_once_and_never_written_after():
    buffer = PushReplyBuffer(8)
    if reply_module.BytesBuf is None:
        pytest.skip("built without the _bytesbuf extension")
    view = memoryview(reply_module.BytesBuf(4))
    with pytest.raises(BufferError, match="still alive"):
        reply_module.BytesBuf.take(view.obj)
    view.release()
    from ps.api.source import PushOutcome
    raw = buffer.finish(PushOutcome(True, "", 1, 0, False, 5, 0.1))
    with pytest.raises(BufferError):
        memoryview(buffer._buf)  # taken: no more writers
    assert pb.PushReply.FromString(raw).version == 1


def test_a_view_that_outlives_the_push_costs_a_copy_not_the_reply():
    from ps.api.source import PushOutcome
    buffer = PushReplyBuffer(8)
    kept = buffer.params  # as an exception's traceback can keep the core's out= alive
    kept[:] = [1.0, 2.0]
    raw = buffer.finish(PushOutcome(True, "", 3, 0, False, 5, 0.1))
    kept[:] = [9.0, 9.0]  # writing through the old view afterwards does not reach the reply
    assert list(np.frombuffer(pb.PushReply.FromString(raw).params.data, np.float32)) == [1.0, 2.0]
