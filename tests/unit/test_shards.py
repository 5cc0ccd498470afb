"""Gorila's sharded parameter server, the math: N shards applying their slices of the same pushes hold,
joined, bit for bit what one server holds: theta, the optimizer's statistics (shared RMSProp,
per-worker RMSProp, momentum), theta- and the running moments, with the global clip in force.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ps.api.layout import Layout
from ps.api.moments import Moments
from ps.api.shards import shard_addresses, shard_slices, ordinal
from ps.api.source import Push, UnknownWorker
from ps.api.spec import ConfigError, RunSpec
from ps.config import ServerConfig
from ps.core import optim
from ps.core.errors import RequestError
from ps.core.parameter_server import ParameterServer
from ps.service.reply import PushReplyBuffer

LAYOUT = Layout.from_pairs([("torso.w", (37, 11)), ("torso.b", (11,)), ("obs_norm.mean", (5,), True),
                            ("obs_norm.var", (5,), True), ("obs_norm.count", (1,), True), ("head.w", (11, 3)),
                            ("head.b", (3,))])
SPECS = {
    "shared-rmsprop": dict(),
    "per-worker-rmsprop": dict(optimizer="rmsprop"),
    "momentum-sgd": dict(optimizer="momentum-sgd"),
    "n-step-q (theta-)": dict(algo="n-step-q", target_update_steps=25),
}


@given(sizes=st.lists(st.tuples(st.integers(1, 300), st.booleans()), min_size=1, max_size=12),
       count=st.integers(1, 9))
@settings(max_examples=200, deadline=None)
def test_slices_cover_the_buffer_once_in_order_and_never_cut_a_run_of_buffers(sizes, count):
    layout = Layout.from_pairs([(f"t{i}", (n,), buf) for i, (n, buf) in enumerate(sizes)])
    slices = shard_slices(layout, count)
    assert [s.index for s in slices] == list(range(count))
    assert slices[0].start == 0 and slices[-1].end == layout.size
    assert all(a.end == b.start for a, b in zip(slices, slices[1:]))
    cuts = {s.start for s in slices[1:]}
    run_start = None
    for entry, start in layout.offsets() + [(None, layout.size)]:
        if entry is not None and entry.buffer:
            run_start = start if run_start is None else run_start
            assert not any(run_start < c < start + entry.size for c in cuts)
        else:
            run_start = None


def test_slices_are_balanced_when_nothing_pins_the_cuts():
    layout = Layout.from_pairs([("w", (1000,)), ("b", (1,))])
    assert sorted(s.size for s in shard_slices(layout, 4)) == [250, 250, 250, 251]


def _servers(tmp_path, spec_args: dict, count: int) -> list[ParameterServer]:
    spec = RunSpec(target_return=None, max_grad_norm=3.0, total_steps=10_000, **spec_args)
    return [ParameterServer(spec, ServerConfig(run_dir=str(tmp_path / f"{count}-{i}"), shards=count,
                                               shard=str(i) if count > 1 else ""))
            for i in range(count)]


def _run(servers: list[ParameterServer], seed: int = 3) -> list[ParameterServer]:
    """The same 24 pushes from 3 workers, at staggered base versions, some clipped, with moments."""
    rng = np.random.default_rng(seed)
    initial = rng.normal(size=LAYOUT.size).astype(np.float32)
    for entry, start in LAYOUT.buffers():  # the running moments start empty
        initial[start:start + entry.size] = 0
    ids = [[s.register("h", 1)[0] for s in servers] for _ in range(3)]
    for wid in ids:
        for s, i in zip(servers, wid):
            s.pull(i, LAYOUT, initial.tobytes())
    for n in range(24):
        worker = ids[n % 3]
        grad = (rng.normal(size=LAYOUT.size) * (0.2 if n % 2 else 3.0)).astype(np.float32)
        norm = math.sqrt(optim.sum_of_squares(grad))  # what one server computes for itself
        obs = rng.normal(size=(5, 5))
        moments = (Moments("obs_norm", 5.0, obs.mean(0), ((obs - obs.mean(0)) ** 2).sum(0)),)
        for s, wid in zip(servers, worker):
            s_ = s.shard
            base = max(0, s.version - n % 4)
            part = grad[s_.start:s_.end].tobytes()
            out = PushReplyBuffer(s.params_nbytes())
            s.push(Push(wid, base, part, 5, episode_returns=(1.0,) if n % 5 == 0 else (), episode_lengths=(5,)
                        if n % 5 == 0 else (), moments=moments, grad_norm=norm if len(servers) > 1 else 0.0),
                   out=out.params)
    return servers


def _joined(servers: list[ParameterServer]) -> dict[str, np.ndarray]:
    states = [s.state_dict() for s in servers]
    return {k: np.concatenate([st["arrays"][k] for st in states]) for k in states[0]["arrays"]}


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("count", [2, 3])
def test_shards_hold_bit_for_bit_what_one_server_holds(tmp_path, name, count):
    one = _run(_servers(tmp_path, SPECS[name], 1))
    shards = _run(_servers(tmp_path, SPECS[name], count))
    try:
        whole, joined = one[0].state_dict()["arrays"], _joined(shards)
        assert sorted(whole) == sorted(joined)
        for key in whole:
            assert whole[key].tobytes() == joined[key].tobytes(), key
        assert {s.version for s in shards} == {one[0].version} and {s.global_step for s in shards} == {120}
        assert {s.episodes.mean for s in shards} == {one[0].episodes.mean}
    finally:
        for s in one + shards:
            s.close()


def test_a_shard_refuses_a_norm_below_its_own_slices(tmp_path):
    servers = _servers(tmp_path, {}, 2)
    try:
        wid = servers[1].register("h", 1)[0]
        servers[1].pull(wid, LAYOUT, np.zeros(LAYOUT.size, np.float32).tobytes())
        s = servers[1].shard
        grad = np.ones(s.size, np.float32)
        for claimed in (0.0, math.sqrt(s.size) * 0.5, math.nan, math.inf):
            with pytest.raises(RequestError, match="grad_norm"):
                servers[1].push(Push(wid, 0, grad.tobytes(), 5, grad_norm=claimed))
        assert servers[1].version == 0 and servers[1].rejected["bad_norm"] == 4
        servers[1].push(Push(wid, 0, grad.tobytes(), 5, grad_norm=math.sqrt(s.size) * 2))
        assert servers[1].version == 1
    finally:
        for s in servers:
            s.close()


def test_shard_flags_are_checked_in_one_line():
    assert shard_addresses("ps-{i}.ps-shards:50051", 3) == ("ps-0.ps-shards:50051", "ps-1.ps-shards:50051",
                                                           "ps-2.ps-shards:50051")
    assert shard_addresses("a:1, b:2", 2) == ("a:1", "b:2")
    assert ordinal("a3c-ps-shard-12") == 12
    with pytest.raises(ValueError, match="StatefulSet"):
        ordinal("laptop")
    for bad in (dict(shards=0), dict(shards=2, shard="2"), dict(shards=2, shard="x"),
                dict(shards=3, shard="0", shard_addresses="a:1,b:2")):
        with pytest.raises(ConfigError):
            ServerConfig(**bad)


def test_the_runs_staleness_is_recorded_by_a_sharded_server_and_refused_by_one_that_is_not(tmp_path):
    one, shards = _servers(tmp_path, {}, 1)[0], _servers(tmp_path, {}, 2)
    try:
        for server in (one, shards[0]):
            wid = server.register("h", 1)[0]
            server.pull(wid, LAYOUT, np.zeros(LAYOUT.size, np.float32).tobytes())
            size = server.shard.size
            grad = np.full(size, 0.01, np.float32).tobytes()
            norm = 0.01 * math.sqrt(LAYOUT.size) if server is not one else 0.0
            bad = (3,) if server is one else (-5, 1 << 21)
            for value in bad:
                with pytest.raises(RequestError, match="run_staleness"):
                    server.push(Push(wid, 0, grad, 5, grad_norm=norm, run_staleness=value))
            assert server.version == 0 and server.rejected["bad_run_staleness"] == len(bad)
        shards[0].push(Push(wid, 0, grad, 5, grad_norm=norm, run_staleness=4))
        assert shards[0].status()["run_staleness"]["max"] == 4 and one.status()["run_staleness"] is None
    finally:
        for s in [one, *shards]:
            s.close()


def _checkpoint(directory, tag: str, version: int) -> None:
    from ps.records.checkpoint import save
    layout = Layout.from_pairs([("w", (4,))])
    save(directory, {"arrays": {"theta": np.zeros(4, np.float32)},
                     "meta": {"layout": layout.to_dict(), "layout_hash": layout.hash, "version": version,
                              "global_step": version * 10, "tag": tag}})


def test_a_whole_sharded_run_resumes_from_the_newest_tag_all_its_shards_have(tmp_path):
    from ps.records.checkpoint import checkpoint_dir, load_tagged
    from ps.shard_launcher import consistent_tag
    dirs = [checkpoint_dir(tmp_path / f"shard-{i}") for i in range(2)]
    for tag, version in (("t10", 1), ("t11", 2), ("final", 3)):
        _checkpoint(dirs[0], tag, version)
    for tag, version in (("t10", 1), ("t11", 2)):  # shard 1 was killed before its final checkpoint
        _checkpoint(dirs[1], tag, version)
    assert consistent_tag(tmp_path, 2) == "t11"
    assert load_tagged(dirs[0], "t11")[1]["meta"]["version"] == 2
    _checkpoint(dirs[1], "final", 3)
    assert consistent_tag(tmp_path, 2) == ""  # the newest agree: each resumes its newest


def test_sharded_checkpoints_are_written_at_the_same_wall_clock_instants(tmp_path, monkeypatch):
    import time as clock

    from ps.records.checkpoint import Checkpointer
    writer = Checkpointer(lambda: None, tmp_path, 30.0, aligned=True)
    monkeypatch.setattr(clock, "time", lambda: 900_000_012.5)  # 12.5 s past a multiple of 30 s
    assert writer._wait() == pytest.approx(17.5)
    assert Checkpointer(lambda: None, tmp_path, 30.0)._wait() == 30.0


def _sharded_source(tmp_path, count: int = 2):
    """worker/sharded.py over in-process shards (the protocol without the network) at made-up addresses."""
    from ps.core.in_process import InProcessSource
    from worker.sharded import ShardedSource
    addresses = [f"shard{i}:5005{i}" for i in range(count)]
    spec = RunSpec(target_return=None, max_grad_norm=3.0, total_steps=10_000)
    cores = [ParameterServer(spec, ServerConfig(run_dir=str(tmp_path / f"s{i}"), shards=count, shard=str(i),
                                                shard_addresses=",".join(addresses))) for i in range(count)]
    sources = {a: InProcessSource(c) for a, c in zip(addresses, cores)}
    return ShardedSource(sources[addresses[0]], sources.__getitem__), cores, sources, addresses


def test_the_workers_sharded_source_assembles_the_shards_and_rejoins_a_restarted_one(tmp_path):
    source, cores, sources, addresses = _sharded_source(tmp_path)
    one = _servers(tmp_path / "one", {}, 1)[0]
    try:
        reg = source.register("h", 1)
        assert reg.shards == tuple(addresses) and source.sharded
        rng = np.random.default_rng(0)
        initial = rng.normal(size=LAYOUT.size).astype(np.float32)
        weights = source.pull(reg.worker_id, LAYOUT, initial.tobytes())
        assert bytes(weights.params) == initial.tobytes()
        one_id = one.register("h", 1)[0]
        one.pull(one_id, LAYOUT, initial.tobytes())
        for n in range(3):
            grad = (rng.normal(size=LAYOUT.size) * 3).astype(np.float32)
            out = source.push(Push(reg.worker_id, weights.version, memoryview(grad).cast("B"), 5))
            expect = one.push(Push(one_id, n, grad.tobytes(), 5))
            assert bytes(out.params) == bytes(expect.params) and out.version == n + 1 and out.applied
        assert source.last_staleness == 0 and cores[0].sharding.run_staleness.total == 2

        # shard 1 restarts from its checkpoint: the push fails there (a worker it does not know), the
        # re-pull registers again and takes its slice as restored; shard 0's work goes on
        held = bytes(source.params)
        restarted = ParameterServer(cores[1].spec, cores[1].config)
        restarted.load_state_dict(cores[1].state_dict())
        sources[addresses[1]].core = restarted
        with pytest.raises(UnknownWorker):
            source.push(Push(reg.worker_id, 3, np.zeros(LAYOUT.size, np.float32).tobytes(), 5))
        again = source.pull(reg.worker_id, LAYOUT)
        assert source.rejoins == 1 and bytes(again.params)[cores[1].shard.start * 4:] == held[cores[1].shard.start * 4:]
        assert source.versions == [4, 3]  # shard 0 applied the zero push; shard 1 resumed at 3
        restarted.close()
    finally:
        for core in [*cores, one]:
            core.close()


def test_an_address_that_answers_as_another_shard_is_one_line(tmp_path):
    from worker.sharded import ShardMismatch
    source, cores, sources, addresses = _sharded_source(tmp_path)
    sources[addresses[1]] = sources[addresses[0]]  # shard 1's address reaches shard 0
    source.connect = sources.__getitem__
    try:
        with pytest.raises(ShardMismatch, match="says it is shard 0"):
            source.register("h", 1)
    finally:
        for core in cores:
            core.close()
