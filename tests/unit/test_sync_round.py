"""Synchronous mode in the server core: one update per round, and a dead worker cannot hang it."""
import threading

import numpy as np

from ps.api.spec import RunSpec

from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.layout import Layout
from ps.api.source import Push

LAYOUT = Layout.from_pairs([("w", (2,))])


def _core(tmp_path, timeout=5.0):
    core = ParameterServer(RunSpec(sync=True, sync_timeout=timeout, target_return=None, max_grad_norm=0,
                                   optimizer="momentum-sgd", momentum=0.0, lr=1.0),
                           ServerConfig(run_dir=str(tmp_path)))
    ids = [core.register("h", 1)[0] for _ in range(3)]
    for wid in ids:
        core.pull(wid, LAYOUT, np.zeros(2, np.float32).tobytes())
    return core, ids


def _push_all(core, ids, grads):
    results = {}

    def push(wid, g):
        results[wid] = core.push(Push(worker_id=wid, base_version=0, gradient=np.array(g, np.float32).tobytes(), shape=[2], env_steps=5))
    threads = [threading.Thread(target=push, args=(w, g)) for w, g in zip(ids, grads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_a_round_applies_the_sum_of_every_workers_push_once(tmp_path):
    core, ids = _core(tmp_path)
    try:
        results = _push_all(core, ids, [[1, 0], [0, 2], [1, 1]])
        assert {r.version for r in results.values()} == {1}
        assert {r.staleness for r in results.values()} == {0}
        # momentum 0, lr 1: theta = -(sum of the three gradients)
        np.testing.assert_allclose(core.params_snapshot()[1], [-2.0, -3.0], rtol=1e-4)  # lr(T) ~ 1
        assert core.status()["updates"] == 1
    finally:
        core.close()


def test_a_silent_worker_is_dropped_from_the_round_after_the_timeout(tmp_path):
    core, ids = _core(tmp_path, timeout=0.5)
    try:
        results = _push_all(core, ids[:2], [[1, 0], [0, 1]])  # the third never pushes
        assert {r.version for r in results.values()} == {1}
        assert core.status()["sync_round_timeouts"] == 1
        # the next round does not wait for the absent worker again
        results = _push_all(core, ids[:2], [[1, 0], [0, 1]])
        assert {r.version for r in results.values()} == {2}
        assert core.status()["sync_round_timeouts"] == 1
    finally:
        core.close()


def test_leaving_worker_completes_a_waiting_round(tmp_path):
    core, ids = _core(tmp_path, timeout=30.0)
    try:
        done = {}
        t = threading.Thread(target=lambda: done.update(_push_all(core, ids[:2], [[1, 0], [0, 1]])))
        t.start()
        threading.Event().wait(0.3)
        core.leave(ids[2], "test")
        t.join(timeout=10)
        assert not t.is_alive() and {r.version for r in done.values()} == {1}
    finally:
        core.close()
