"""Staleness accounting through the server core, with pushes from 3 clients interleaved."""
import numpy as np
import pytest

from ps.api.spec import RunSpec

from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.layout import Layout
from ps.core.staleness import StalenessStats
from ps.api.source import Push

LAYOUT = Layout.from_pairs([("w", (3,))])


@pytest.fixture
def core(tmp_path):
    c = ParameterServer(RunSpec(total_steps=10_000, target_return=None), ServerConfig(run_dir=str(tmp_path)))
    yield c
    c.close()


def _push(core, wid, base):
    g = np.ones(3, dtype=np.float32).tobytes()
    return core.push(Push(worker_id=wid, base_version=base, gradient=g, shape=[3], env_steps=5))


def test_interleaved_pushes_from_three_clients(core):
    ids = [core.register("h", 1)[0] for _ in range(3)]
    base = {}
    for wid in ids:
        _, v, _, _ = core.pull(wid, LAYOUT, np.zeros(3, np.float32).tobytes())
        base[wid] = v                      # all pulled version 0
    r1 = _push(core, ids[0], base[ids[0]])  # applied on v0: staleness 0 -> v1
    r2 = _push(core, ids[1], base[ids[1]])  # computed on v0, applied on v1: 1 -> v2
    r3 = _push(core, ids[2], base[ids[2]])  # computed on v0, applied on v2: 2 -> v3
    r4 = _push(core, ids[0], r1.version)    # computed on v1, applied on v3: 2 -> v4
    r5 = _push(core, ids[1], r2.version)    # computed on v2, applied on v4: 2 -> v5
    r6 = _push(core, ids[1], r5.version)    # fresh: 0 -> v6
    assert [r.staleness for r in (r1, r2, r3, r4, r5, r6)] == [0, 1, 2, 2, 2, 0]
    assert [r.version for r in (r1, r2, r3, r4, r5, r6)] == [1, 2, 3, 4, 5, 6]
    st = core.status()
    assert st["updates"] == 6 and st["env_steps"] == 30
    assert st["staleness"]["max"] == 2 and st["staleness"]["p50"] == 1  # sorted 0,0,1,2,2,2
    per_worker = {w["id"]: w for w in st["workers"]}
    assert per_worker[ids[0]]["mean_staleness"] == 1.0
    assert per_worker[ids[1]]["pushes"] == 3


def test_percentiles_and_buckets():
    s = StalenessStats()
    for v in [0] * 50 + [1] * 40 + [3] * 9 + [70]:
        s.record(v)
    assert (s.percentile(50), s.percentile(90), s.percentile(99), s.max()) == (0, 1, 3, 70)
    h = s.histogram()
    assert h["0"] == 50 and h["1"] == 40 and h["3-4"] == 9 and h["65+"] == 1
    assert sum(h.values()) == 100
