"""Hostile input against the server's handlers: random and mutated protobuf messages and random bytes.

The bulk drives the real servicer and core in-process (fast); a slice goes through real gRPC on
loopback as raw bytes. Whatever comes in: no crash (never INTERNAL, the server keeps answering),
and an input that is refused leaves the parameters, version and T exactly as they were.
"""
import hashlib
import json

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ps.api.convert import layout_to_proto
from ps.api.v1 import parameter_server_pb2 as pb
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.layout import Layout
from ps.core.workers import WorkerInfo
from ps.service.grpc_service import ParameterServerServicer, _in_pool, start_server

LAYOUT = Layout.from_pairs([("w", (4, 2)), ("b", (2,))])
N = LAYOUT.size
BATCH = 25            # drawn inputs per hypothesis example ...
MUTANTS = 3           # ... each also sent as this many byte-mutated copies (cheap to make, seeded by the draw)
EXAMPLES = 105        # 105 x 25 x (1 + 3) = 10,500 in-process inputs
RAW_OVER_GRPC = 300   # plus this many through real gRPC
METHODS = {"Register": pb.RegisterRequest, "Pull": pb.PullRequest, "Push": pb.PushRequest,
           "Leave": pb.LeaveRequest, "Status": pb.StatusRequest, "ReportEvaluation": pb.ReportEvaluationRequest}


class Aborted(Exception):
    def __init__(self, code, details):
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


class Context:
    """What a handler uses of grpc.ServicerContext."""

    def abort(self, code, details):
        raise Aborted(code, details)

    def peer(self):
        return "ipv4:127.0.0.1:1"

    def invocation_metadata(self):
        return ()


class Target:
    """A served core with parameters, and a fingerprint of everything a push may change."""

    def __init__(self, run_dir):
        self.core = ParameterServer(RunSpec(total_steps=10**12, target_return=None, eval_every=1.0),
                                    ServerConfig(run_dir=str(run_dir), max_message_bytes=4 * 1024 * 1024))
        self.servicer = ParameterServerServicer(self.core)
        self.wid, _ = self.core.register("fuzz", 1)
        self.evaluator, _ = self.core.register("fuzz", 2, evaluator=True)
        self.core.pull(self.wid, LAYOUT, np.linspace(-1, 1, N, dtype=np.float32).tobytes())
        self.inputs = self.accepted = 0

    def fingerprint(self):
        c = self.core
        return hashlib.sha256(c.theta.tobytes()).hexdigest(), c.version, c.global_step

    def rejoin(self) -> None:
        """A fuzzed Leave may have reaped the fuzz worker (its id is then gone): put it back under the
        same id, which the strategies were built with, so valid pushes keep being applied."""
        with self.core._lock:
            if self.wid not in self.core.workers.workers:
                self.core.workers.workers[self.wid] = WorkerInfo(self.wid, "fuzz", 1, 0)
            if self.evaluator not in self.core.workers.workers:
                self.core.workers.workers[self.evaluator] = WorkerInfo(self.evaluator, "fuzz", 2, 0, evaluator=True)

    def handle(self, method: str, request) -> None:
        """One input through the handler; a refusal must leave the fingerprint as it was, and the
        status stays JSON (no NaN or Infinity, whatever was accepted)."""
        self.rejoin()
        before = self.fingerprint()
        self.inputs += 1
        if method == "Push" and not isinstance(request, bytes):
            request = request.SerializeToString()  # Push takes the raw bytes (ps/api/framing.py)
        try:
            _in_pool(getattr(self.servicer, method))(request, Context())  # as the threaded handlers run
            self.accepted += 1
            if method == "ReportEvaluation":  # an evaluation, even a recorded one, changes no parameter
                assert self.fingerprint() == before
        except Aborted as err:
            assert err.code != grpc.StatusCode.INTERNAL, f"{method} crashed on {request!r:.300}: {err.details}"
            assert "\n" not in err.details
            assert self.fingerprint() == before, f"refused {method} changed the parameters: {err.details}"
        if method in ("Push", "Leave") or self.inputs % 50 == 0:
            json.dumps(self.core.status(), allow_nan=False)

    def handle_bytes(self, method: str, blob: bytes) -> None:
        if method == "Push":  # no deserializer in front of Push: its handler reads the bytes itself
            self.handle(method, blob)
            return
        try:
            request = METHODS[method].FromString(blob)
        except DecodeError:
            self.inputs += 1  # refused by the deserializer, as gRPC would: nothing reaches the core
            return
        self.handle(method, request)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    t = Target(tmp_path_factory.mktemp("fuzz"))
    yield t
    t.core.close()


# --- strategies ------------------------------------------------------------------------------------
int64 = st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-3, 12))
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
text = st.text(max_size=40)


def tensors(size=N):
    return st.builds(pb.Tensor, data=st.one_of(st.binary(max_size=64), st.binary(min_size=4 * size, max_size=4 * size)),
                     shape=st.lists(int64, max_size=3), dtype=st.sampled_from(["float32", "float16", "", "float64", "x"]))


layouts = st.one_of(st.just(layout_to_proto(LAYOUT)), st.builds(
    pb.Layout, tensors=st.lists(st.builds(pb.TensorSpec, name=text, shape=st.lists(int64, max_size=3)), max_size=4),
    hash=text))


def messages(wid_and_incarnation):
    wid, inc, evaluator = wid_and_incarnation
    wids = st.one_of(st.just(wid), int64)
    incs = st.sampled_from(["", inc, "0ld"])
    return st.one_of(
        st.tuples(st.just("Register"), st.builds(pb.RegisterRequest, host=text, pid=int64, evaluator=st.booleans())),
        st.tuples(st.just("Pull"), st.builds(pb.PullRequest, worker_id=wids, layout=layouts,
                                             initial_params=tensors(), incarnation=incs)),
        st.tuples(st.just("Push"), st.builds(
            pb.PushRequest, worker_id=wids, base_version=st.one_of(st.integers(0, 3), int64), gradients=tensors(),
            env_steps=st.one_of(st.integers(0, 50), int64), episode_returns=st.lists(floats, max_size=3),
            episode_lengths=st.lists(int64, max_size=3), stats=st.dictionaries(text, floats, max_size=3),
            target_version=int64, incarnation=incs)),
        st.tuples(st.just("Leave"), st.builds(pb.LeaveRequest, worker_id=int64, reason=text, incarnation=incs)),
        st.tuples(st.just("Status"), st.just(pb.StatusRequest())),
        st.tuples(st.just("ReportEvaluation"), st.builds(
            pb.ReportEvaluationRequest, worker_id=st.one_of(st.just(evaluator), wids), incarnation=incs,
            version=st.one_of(st.integers(0, 3), int64), returns=st.lists(floats, max_size=3),
            lengths=st.lists(int64, max_size=3))),
        st.tuples(st.just("ReportEvaluation"), st.builds(  # well-formed, so some are recorded
            pb.ReportEvaluationRequest, worker_id=st.just(evaluator), incarnation=st.just(inc), version=st.just(0),
            returns=st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=2), lengths=st.just([5, 6]))),
    )


def valid_push(wid, inc) -> bytes:
    return pb.PushRequest(worker_id=wid, base_version=0, gradients=pb.Tensor(
        data=np.full(N, 0.01, np.float32).tobytes(), shape=[N], dtype="float32"), env_steps=5,
        episode_returns=[1.0], episode_lengths=[5], stats={"loss": 0.5}, incarnation=inc).SerializeToString()


@st.composite
def mutated(draw, wid, inc):
    """A valid Push or Pull with bytes flipped, inserted or cut (or none), sent to some handler."""
    seed = draw(st.sampled_from([valid_push(wid, inc), pb.PullRequest(
        worker_id=wid, layout=layout_to_proto(LAYOUT), incarnation=inc).SerializeToString()]))
    blob = bytearray(seed)
    for _ in range(draw(st.integers(0, 3))):  # 0: the valid message itself, so pushes also get applied
        op, at = draw(st.sampled_from(["flip", "insert", "cut"])), draw(st.integers(0, len(blob)))
        if op == "flip" and at < len(blob):
            blob[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            blob[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[at:at + draw(st.integers(1, 8))]
    return draw(st.sampled_from(["Push", "Pull", "Register"])), bytes(blob)


def inputs(target):
    key = (target.wid, target.core.incarnation)
    drawn = st.one_of(
        messages((*key, target.evaluator)).map(lambda m: ("msg", *m)),
        mutated(*key).map(lambda m: ("bytes", *m)),
        st.tuples(st.just("bytes"), st.sampled_from(list(METHODS)), st.binary(max_size=120)),
    )
    return st.tuples(drawn, st.integers(0, 2**32 - 1))


def mutants(kind, payload, seed):
    """MUTANTS copies of an input's bytes, each with 1-4 bytes flipped, inserted or cut, for any handler."""
    rng = np.random.default_rng(seed)
    blob = payload.SerializeToString() if kind == "msg" else payload
    for _ in range(MUTANTS):
        b = bytearray(blob)
        for _ in range(int(rng.integers(1, 5))):
            at = int(rng.integers(0, len(b) + 1))
            op = rng.integers(0, 3)
            if op == 0 and at < len(b):
                b[at] ^= 1 << int(rng.integers(0, 8))
            elif op == 1:
                b[at:at] = rng.bytes(int(rng.integers(1, 9)))
            else:
                del b[at:at + int(rng.integers(1, 9))]
        yield list(METHODS)[int(rng.integers(0, len(METHODS)))], bytes(b)


def test_ten_thousand_hostile_inputs_never_crash_a_handler_nor_touch_parameters_when_refused(target):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(inputs(target), min_size=BATCH, max_size=BATCH))
    def run(batch):
        for (kind, method, payload), seed in batch:
            if kind == "msg":
                target.handle(method, payload)
            else:
                target.handle_bytes(method, payload)
            for other, blob in mutants(kind, payload, seed):
                target.handle_bytes(other, blob)

    run()
    assert target.inputs >= 10_000
    assert 0 < target.accepted < target.inputs and target.core.version > 0  # both paths, pushes applied too
    assert np.isfinite(target.core.theta).all()
    assert target.core.status()["rejected"]  # refusals were counted
    assert target.core.evaluations.rounds > 0  # some reports were well-formed, and recorded
    json.dumps(target.core.status(), allow_nan=False)


def test_random_bytes_over_real_grpc_get_a_status_and_the_server_keeps_serving(tmp_path):
    t = Target(tmp_path)
    server = start_server(t.core)
    port = server.port
    rng = np.random.default_rng(7)
    codes = set()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            calls = {m: channel.unary_unary(f"/a3c.ps.v1.ParameterServer/{m}") for m in METHODS}
            for i in range(RAW_OVER_GRPC):
                method = list(METHODS)[i % len(METHODS)]
                blob = bytearray(valid_push(t.wid, t.core.incarnation)) if i % 2 else bytearray()
                blob += rng.bytes(int(rng.integers(0, 64)))
                if blob:
                    blob[int(rng.integers(0, len(blob)))] ^= 0xFF
                before = t.fingerprint()
                try:
                    calls[method](bytes(blob), timeout=10)
                    codes.add("OK")
                except grpc.RpcError as err:
                    assert err.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED)
                    codes.add(err.code().name)
                    assert t.fingerprint() == before
            status = pb.StatusReply.FromString(calls["Status"](b"", timeout=10))
        assert json.loads(status.status_json)["state"] == "running"
        assert {"OK", "INVALID_ARGUMENT"} <= codes
    finally:
        server.stop(0)
        t.core.close()
