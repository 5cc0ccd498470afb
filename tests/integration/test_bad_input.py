"""Each bad input against the real server: a clear status, a counted rejection, parameters untouched."""
import hashlib
import json
import subprocess
import time

import grpc
import numpy as np
import pytest

from ps.api.convert import layout_to_proto
from ps.api.v1 import parameter_server_pb2 as pb
from ps.api.layout import Layout
from tests.conftest import cli, kill, start_server

LAYOUT = Layout.from_pairs([("w", (4, 2)), ("b", (2,))])
N = LAYOUT.size
MESSAGE_LIMIT = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("bad") / "run", "--total-steps", "1000000",
                          "--max-message-bytes", str(MESSAGE_LIMIT))
    yield server
    kill(server.proc)


@pytest.fixture
def joined(served, stub_for):
    stub = stub_for(served.address)
    reg = stub.Register(pb.RegisterRequest(host="test", pid=1), timeout=5)
    init = np.linspace(-1, 1, N, dtype=np.float32).tobytes()
    stub.Pull(pb.PullRequest(worker_id=reg.worker_id, layout=layout_to_proto(LAYOUT), incarnation=reg.incarnation,
                             initial_params=pb.Tensor(data=init, shape=[N], dtype="float32")), timeout=5)
    global INC
    INC = reg.incarnation
    return stub, reg.worker_id


INC = ""  # the served server's incarnation, set by `joined`


def _params_hash(stub, wid):
    reply = stub.Pull(pb.PullRequest(worker_id=wid, layout=layout_to_proto(LAYOUT), incarnation=INC), timeout=5)
    return hashlib.sha256(reply.params.data).hexdigest(), reply.version


def _rejected(stub):
    return json.loads(stub.Status(pb.StatusRequest(), timeout=5).status_json)["rejected"]


BAD_PUSHES = {
    "wrong length": (lambda: np.ones(N + 1, np.float32).tobytes(), "float32", 0, "bad_length", "elements"),
    "float64 payload": (lambda: np.ones(N, np.float64).tobytes(), "float64", 0, "bad_dtype", "dtype"),
    "NaN": (lambda: np.full(N, np.nan, np.float32).tobytes(), "float32", 0, "non_finite", "NaN"),
    "Inf": (lambda: np.array([np.inf] + [0] * (N - 1), np.float32).tobytes(), "float32", 0, "non_finite", "Inf"),
    "future version": (lambda: np.ones(N, np.float32).tobytes(), "float32", 10**6, "bad_version", "base_version"),
    "odd byte count": (lambda: b"\x00" * (4 * N - 1), "float32", 0, "bad_length", "whole number"),
}


@pytest.mark.parametrize("case", BAD_PUSHES, ids=list(BAD_PUSHES))
def test_bad_push_is_refused_counted_and_changes_nothing(joined, case):
    stub, wid = joined
    make, dtype, base, reason, words = BAD_PUSHES[case]
    before, version = _params_hash(stub, wid)
    count = _rejected(stub).get(reason, 0)
    with pytest.raises(grpc.RpcError) as err:
        stub.Push(pb.PushRequest(incarnation=INC, worker_id=wid, base_version=base,
                                 gradients=pb.Tensor(data=make(), shape=[N], dtype=dtype), env_steps=5), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.value.details()
    assert "\n" not in err.value.details()
    assert _rejected(stub)[reason] == count + 1
    assert _params_hash(stub, wid) == (before, version)


def test_a_good_push_does_change_the_parameters(joined):
    stub, wid = joined
    before, version = _params_hash(stub, wid)
    reply = stub.Push(pb.PushRequest(incarnation=INC, worker_id=wid, base_version=version,
                                     gradients=pb.Tensor(data=np.ones(N, np.float32).tobytes(), shape=[N],
                                                         dtype="float32"), env_steps=5), timeout=5)
    assert reply.version == version + 1
    assert hashlib.sha256(reply.params.data).hexdigest() != before


def test_unknown_worker_is_refused(joined):
    stub, _ = joined
    with pytest.raises(grpc.RpcError) as err:
        stub.Push(pb.PushRequest(incarnation=INC, worker_id=9999, base_version=0,
                                 gradients=pb.Tensor(data=np.ones(N, np.float32).tobytes(), dtype="float32")),
                  timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "9999" in err.value.details()


def test_layout_mismatch_names_both_hashes(joined):
    stub, _ = joined
    other = Layout.from_pairs([("w", (4, 3))])
    reg = stub.Register(pb.RegisterRequest(host="test", pid=2), timeout=5)
    with pytest.raises(grpc.RpcError) as err:
        stub.Pull(pb.PullRequest(incarnation=INC, worker_id=reg.worker_id, layout=layout_to_proto(other)), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert other.hash in err.value.details() and LAYOUT.hash in err.value.details()


def _grad(n=N):
    return pb.Tensor(data=np.ones(n, np.float32).tobytes(), shape=[n], dtype="float32")


def _layout(pairs):
    return pb.Layout(tensors=[pb.TensorSpec(name=n, shape=s) for n, s in pairs])


# Every other field of Register, Pull and Push: (call, status, counter, words in the message)
BAD_REQUESTS = {
    "host too long": (lambda s, w: s.Register(pb.RegisterRequest(host="h" * 300, pid=1), timeout=5),
                      "INVALID_ARGUMENT", "bad_register", "host"),
    "host with a newline": (lambda s, w: s.Register(pb.RegisterRequest(host="a\nb", pid=1), timeout=5),
                            "INVALID_ARGUMENT", "bad_register", "printable"),
    "negative pid": (lambda s, w: s.Register(pb.RegisterRequest(host="h", pid=-5), timeout=5),
                     "INVALID_ARGUMENT", "bad_register", "pid -5"),
    "layout with a negative dimension": (
        lambda s, w: s.Pull(pb.PullRequest(incarnation=INC, worker_id=w, layout=_layout([("w", [4, -2])])), timeout=5),
        "INVALID_ARGUMENT", "bad_layout", "positive dimensions"),
    "layout with duplicate names": (
        lambda s, w: s.Pull(pb.PullRequest(incarnation=INC, worker_id=w, layout=_layout([("w", [2]), ("w", [2])])), timeout=5),
        "INVALID_ARGUMENT", "bad_layout", "unique"),
    "empty layout": (lambda s, w: s.Pull(pb.PullRequest(incarnation=INC, worker_id=w), timeout=5),
                     "INVALID_ARGUMENT", "bad_layout", "1..4096 tensors"),
    "float64 initial parameters": (
        lambda s, w: s.Pull(pb.PullRequest(incarnation=INC, worker_id=w, layout=layout_to_proto(LAYOUT), initial_params=pb.Tensor(
            data=np.zeros(N, np.float64).tobytes(), dtype="float64")), timeout=5),
        "INVALID_ARGUMENT", "bad_dtype", "float32"),
    "NaN stat": (lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=5,
                                                    stats={"loss": float("nan")}), timeout=5),
                 "INVALID_ARGUMENT", "non_finite", "stat 'loss'"),
    "too many stats": (lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=5,
                                                          stats={f"s{i}": 1.0 for i in range(100)}), timeout=5),
                       "INVALID_ARGUMENT", "bad_stats", "at most"),
    "negative env steps": (lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=-1),
                                               timeout=5), "INVALID_ARGUMENT", "bad_env_steps", "env_steps -1"),
    "more episodes than steps": (
        lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=1, episode_returns=[1, 2],
                                           episode_lengths=[1, 1]), timeout=5),
        "INVALID_ARGUMENT", "bad_episodes", "2 episodes"),
    "negative episode length": (
        lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=5, episode_returns=[1],
                                           episode_lengths=[-3]), timeout=5),
        "INVALID_ARGUMENT", "bad_episodes", "length"),
    "push claiming 10,000,000 env steps": (
        lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=10_000_000),
                            timeout=5), "INVALID_ARGUMENT", "bad_env_steps", "outside 0..256 (one push covers"),
    "one env step more than a push covers": (
        lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=257),
                            timeout=5), "INVALID_ARGUMENT", "bad_env_steps", "envs 64 x t_max 4"),
    "400,000 returns in one push": (
        lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=5,
                                           episode_returns=[1.0] * 400_000), timeout=10),
        "INVALID_ARGUMENT", "bad_episodes", "400000 episodes finished in a push of 5"),
    "a return of 1e308": (
        lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=5,
                                           episode_returns=[1.0, 1e308]), timeout=5),
        "INVALID_ARGUMENT", "bad_episodes", "episode return is outside"),
    "an infinite return": (
        lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(), env_steps=5,
                                           episode_returns=[float("-inf")]), timeout=5),
        "INVALID_ARGUMENT", "non_finite", "NaN or Inf"),
    "push without an incarnation": (
        lambda s, w: s.Push(pb.PushRequest(worker_id=w, gradients=_grad(), env_steps=5), timeout=5),
        "NOT_FOUND", "unknown_worker", "no incarnation"),
    "pull without an incarnation": (
        lambda s, w: s.Pull(pb.PullRequest(worker_id=w, layout=layout_to_proto(LAYOUT)), timeout=5),
        "NOT_FOUND", "unknown_worker", "no incarnation"),
    "leave without an incarnation": (
        lambda s, w: s.Leave(pb.LeaveRequest(worker_id=w, reason="x"), timeout=5),
        "NOT_FOUND", "unknown_worker", "no incarnation"),
    "push from an earlier incarnation": (
        lambda s, w: s.Push(pb.PushRequest(worker_id=w, gradients=_grad(), env_steps=5, incarnation="0ld1ncarnat10n"),
                            timeout=5), "NOT_FOUND", "unknown_worker", "register again"),
    "pull from an earlier incarnation": (
        lambda s, w: s.Pull(pb.PullRequest(worker_id=w, incarnation="0ld1ncarnat10n"), timeout=5),
        "NOT_FOUND", "unknown_worker", "restarted"),
    "leave from an earlier incarnation": (
        lambda s, w: s.Leave(pb.LeaveRequest(worker_id=w, reason="x", incarnation="0ld1ncarnat10n"), timeout=5),
        "NOT_FOUND", "unknown_worker", "restarted"),
    "message over --max-message-bytes": (
        lambda s, w: s.Push(pb.PushRequest(incarnation=INC, worker_id=w, gradients=_grad(MESSAGE_LIMIT // 4 + 1000), env_steps=5),
                            timeout=30), "RESOURCE_EXHAUSTED", "too_large", "--max-message-bytes"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_every_other_bad_field_is_refused_counted_and_changes_nothing(joined, case):
    stub, wid = joined
    call, code, reason, words = BAD_REQUESTS[case]
    before = _params_hash(stub, wid)
    count = _rejected(stub).get(reason, 0)
    with pytest.raises(grpc.RpcError) as err:
        call(stub, wid)
    assert err.value.code() == getattr(grpc.StatusCode, code)
    assert words in err.value.details() and "\n" not in err.value.details()
    assert _rejected(stub)[reason] == count + 1
    assert _params_hash(stub, wid) == before


def _strict_status(stub) -> dict:
    """The status document, parsed as strict JSON: NaN, Infinity and -Infinity are not JSON."""
    def no_constants(name):
        raise AssertionError(f"status is not JSON: it holds {name}")
    return json.loads(stub.Status(pb.StatusRequest(), timeout=5).status_json, parse_constant=no_constants)


@pytest.mark.serial  # "at once": a wall-clock bound
def test_hostile_episode_data_is_refused_at_once_and_leaves_the_episode_window_alone(joined):
    stub, wid = joined
    before = _strict_status(stub)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        stub.Push(pb.PushRequest(incarnation=INC, worker_id=wid, gradients=_grad(), env_steps=256,
                                 episode_returns=[1e308] * 400_000), timeout=10)
    assert time.monotonic() - start < 3.0  # refused on the count, before any return is read
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "\n" not in err.value.details()
    for _ in range(100):  # the run that stopped as 'solved' on 100 returns of 1e308
        with pytest.raises(grpc.RpcError):
            stub.Push(pb.PushRequest(incarnation=INC, worker_id=wid, gradients=_grad(), env_steps=1,
                                     episode_returns=[1e308]), timeout=5)
    after = _strict_status(stub)
    assert (after["episodes"], after["final_mean100"], after["env_steps"]) == \
        (before["episodes"], before["final_mean100"], before["env_steps"])
    assert not after["solved"] and after["state"] == "running"


def test_status_is_strict_json_after_hostile_but_accepted_input(joined):
    stub, wid = joined
    version = _params_hash(stub, wid)[1]
    reply = stub.Push(pb.PushRequest(incarnation=INC, worker_id=wid, base_version=version, gradients=_grad(),
                                     env_steps=256, episode_returns=[1e9, -1e9] * 128, episode_lengths=[10**9] * 256,
                                     stats={"big": 1e308, "tiny": -1e308}), timeout=5)
    assert reply.version == version + 1
    status = _strict_status(stub)
    me = next(w for w in status["workers"] if w["id"] == wid)
    assert me["stats"] == {"big": 1e308, "tiny": -1e308}


def test_leave_reason_is_cut_and_escaped_and_the_worker_is_gone_after(joined):
    stub, _ = joined
    reg = stub.Register(pb.RegisterRequest(host="leaver", pid=3), timeout=5)
    forged = "bye\n2026-01-01 00:00:00 ps ERROR forged line\r\x1b[2J" + "x" * 1_000_000
    stub.Leave(pb.LeaveRequest(incarnation=reg.incarnation, worker_id=reg.worker_id, reason=forged), timeout=10)
    left = next(w for w in _strict_status(stub)["workers"] if w["id"] == reg.worker_id)
    assert not left["connected"] and len(left["left_reason"]) <= 100 and left["left_reason"].isprintable()
    assert left["left_reason"].startswith("bye\\n2026-01-01 00:00:00 ps ERROR forged line\\r\\x1b[2J")
    count = _rejected(stub).get("expired_worker", 0)
    with pytest.raises(grpc.RpcError) as err:  # its id is gone: anything more from it is NOT_FOUND
        stub.Push(pb.PushRequest(incarnation=reg.incarnation, worker_id=reg.worker_id, gradients=_grad(),
                                 env_steps=5), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "register again" in err.value.details()
    assert _rejected(stub)["expired_worker"] == count + 1


def test_worker_run_against_a_missing_server_names_the_address_and_exits_nonzero():
    start = time.monotonic()
    out = subprocess.run([cli("worker-run"), "--ps", "127.0.0.1:1", "--connect-timeout", "2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "127.0.0.1:1" in out.stderr and "unreachable" in out.stderr
    assert "Traceback" not in out.stderr
    assert time.monotonic() - start >= 2


def test_worker_whose_server_goes_away_mid_run_exits_nonzero(tmp_path):
    server = start_server(tmp_path / "run", "--total-steps", "100000000", "--target-return", "none")
    worker = subprocess.Popen([cli("worker-run"), "--ps", server.address, "--connect-timeout", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (server.run_dir / "pushes.csv").read_text().count("\n") > 3:
            time.sleep(0.2)
        server.proc.kill()
        _, err = worker.communicate(timeout=60)
        assert worker.returncode != 0
        assert server.address in err and "Traceback" not in err
    finally:
        kill(worker)
        kill(server.proc)


@pytest.mark.parametrize("args, words", [
    (["--env", "NoSuchEnv-v9"], "NoSuchEnv-v9"),
    (["--algo", "sarsa-lambda"], "a3c, one-step-q, one-step-sarsa, n-step-q"),  # lists the four
    (["--env", "Blackjack-v1", "--algo", "a3c"], "Blackjack-v1"),         # Tuple observations: unsupported
    (["--env", "Pendulum-v1", "--algo", "one-step-q"], "discrete action"),  # Q methods need discrete actions
    (["--env", "Pendulum-v1", "--algo", "n-step-q"], "discrete action space"),
    (["--t-max", "0"], "--t-max"),
])
def test_ps_serve_refuses_bad_configuration_in_one_line(tmp_path, args, words):
    out = subprocess.run([cli("ps-serve"), "--port", "0", "--run-dir", str(tmp_path), *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert words in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("ps-serve: error:")


def test_moments_naming_no_buffer_of_the_layout_are_refused_in_one_line(joined):
    stub, wid = joined
    before, version = _params_hash(stub, wid)
    with pytest.raises(grpc.RpcError) as err:
        stub.Push(pb.PushRequest(incarnation=INC, worker_id=wid, base_version=version, env_steps=5,
                                 gradients=pb.Tensor(data=np.ones(N, np.float32).tobytes(), shape=[N], dtype="float32"),
                                 moments=[pb.Moments(name="obs_norm", count=5, mean=[0.0] * 4, m2=[1.0] * 4)]),
                  timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "\n" not in err.value.details()
    assert "name no buffers" in err.value.details()
    assert _params_hash(stub, wid) == (before, version)
