"""Checkpoint files: atomic, checksummed, the last 3 kept, and a full round trip of the server's state."""
import csv
import dataclasses

import numpy as np
import pytest

from ps.records import checkpoint

from ps.records import resume
from ps.records.checkpoint import CheckpointError
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.layout import Layout
from ps.api.source import Push

LAYOUT = Layout.from_pairs([("w", (4, 2)), ("b", (2,))])
N = LAYOUT.size


def _state(version: int, theta=None) -> dict:
    theta = np.arange(N, dtype=np.float32) + version if theta is None else theta
    return {"arrays": {"theta": theta, "opt.g": np.ones(N, np.float32)},
            "meta": {"version": version, "global_step": 10 * version, "layout": LAYOUT.to_dict(),
                     "layout_hash": LAYOUT.hash, "flat_arrays": ["opt.g"]}}


def test_save_load_round_trip_keeps_the_last_three_and_leaves_no_temp_files(tmp_path):
    for v in range(1, 6):
        checkpoint.save(tmp_path, _state(v))
    files = checkpoint.list_checkpoints(tmp_path)
    assert [p.name for p in files] == ["ckpt-00000005.a3c", "ckpt-00000004.a3c", "ckpt-00000003.a3c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files)
    path, state = checkpoint.load_latest(tmp_path)
    assert path == files[0] and state["meta"]["version"] == 5
    np.testing.assert_array_equal(state["arrays"]["theta"], np.arange(N, dtype=np.float32) + 5)


def _corrupt(path, how):
    blob = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(blob[: len(blob) * 2 // 3]))
    else:
        blob[len(blob) // 2] ^= 0x10
        path.write_bytes(bytes(blob))


@pytest.mark.parametrize("how", ["truncated", "bit-flipped"])
def test_a_damaged_newest_checkpoint_is_refused_naming_it_and_offering_the_older_good_one(tmp_path, how):
    older = checkpoint.save(tmp_path, _state(1))
    newest = checkpoint.save(tmp_path, _state(2))
    _corrupt(newest, how)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_latest(tmp_path)
    message = str(err.value)
    assert str(newest) in message and "checksum" in message and str(older) in message
    assert "\n" not in message


def test_without_an_older_good_one_the_error_says_fresh(tmp_path):
    newest = checkpoint.save(tmp_path, _state(1))
    _corrupt(newest, "bit-flipped")
    with pytest.raises(CheckpointError, match="--fresh"):
        checkpoint.load_latest(tmp_path)


def test_a_layout_that_does_not_fit_its_arrays_is_refused_even_with_a_good_checksum(tmp_path):
    bad = _state(1, theta=np.zeros(N + 1, np.float32))
    path = checkpoint.save(tmp_path, bad)
    with pytest.raises(CheckpointError, match=r"array 'theta' is 11 float32, layout .* needs 10"):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        (tmp_path / "x").write_bytes(b"hello")
        checkpoint.load(tmp_path / "x")


def _server(run_dir, **spec) -> ParameterServer:
    spec = RunSpec(total_steps=10_000, target_return=None, **spec)
    return ParameterServer(spec, ServerConfig(run_dir=str(run_dir)))


def _drive(core: ParameterServer, pushes: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    wid, _ = core.register("test", 1)
    core.pull(wid, LAYOUT, np.linspace(-1, 1, N, dtype=np.float32).tobytes())
    for i in range(pushes):
        core.push(Push(worker_id=wid, base_version=max(0, core.version - i % 3), gradient=rng.normal(size=N).astype(np.float32).tobytes(), shape=[N], env_steps=40, episode_returns=[float(i)], episode_lengths=[10]))


def test_core_state_round_trips_through_a_checkpoint_and_training_continues_identically(tmp_path):
    a = _server(tmp_path / "a")
    _drive(a, 7)
    path = checkpoint.save(tmp_path / "ck", a.state_dict())
    b = _server(tmp_path / "b")
    b.load_state_dict(checkpoint.load(path))
    assert (b.version, b.global_step) == (a.version, a.global_step) == (7, 280)
    np.testing.assert_array_equal(b.theta, a.theta)
    np.testing.assert_array_equal(b.optimizer.state()["g"], a.optimizer.state()["g"])
    assert b.status()["staleness"] == a.status()["staleness"]
    assert list(b.episodes.returns) == list(a.episodes.returns) and b.episodes.episodes == 7
    assert b.status()["learning_rate"] == a.status()["learning_rate"]
    wid_b, _ = b.register("again", 2)
    assert wid_b > max(a.workers.workers)  # ids never repeat across a restart
    # the same next push gives the same parameters on both
    d = np.full(N, 0.5, np.float32).tobytes()
    wid_a, _ = a.register("again", 2)
    ra = a.push(Push(worker_id=wid_a, base_version=a.version, gradient=d, shape=[N], env_steps=40))
    rb = b.push(Push(worker_id=wid_b, base_version=b.version, gradient=d, shape=[N], env_steps=40))
    assert ra.params == rb.params and ra.version == rb.version
    a.close()
    b.close()


def test_resume_refuses_a_checkpoint_of_a_different_run_and_cuts_pushes_csv(tmp_path):
    run_dir = tmp_path / "run"
    a = _server(run_dir)
    _drive(a, 5)
    checkpoint.save(checkpoint.checkpoint_dir(run_dir), a.state_dict())
    _drive(a, 3)  # lost "after the checkpoint"
    a.close()
    config = ServerConfig(run_dir=str(run_dir))
    with pytest.raises(CheckpointError, match=r"different run \(hidden_size 64 -> 32\).*--fresh"):
        resume.prepare(RunSpec(total_steps=10_000, target_return=None, hidden_size=32), config)
    path, state = resume.prepare(RunSpec(total_steps=20_000, target_return=None), config)
    assert state["meta"]["version"] == 5
    with open(run_dir / "pushes.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["applied_version"]) for r in rows) == list(range(5))
    assert resume.prepare(RunSpec(), dataclasses.replace(config, fresh=True)) is None
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "pushes.csv").exists()
    kept = next(run_dir.glob("replaced-*"))
    assert (kept / "checkpoints" / path.name).exists()


def test_a_finished_run_restarted_from_its_checkpoint_stops_at_once(tmp_path):
    spec = RunSpec(total_steps=200, target_return=None)
    a = ParameterServer(spec, ServerConfig(run_dir=str(tmp_path / "a")))
    _drive(a, 5)  # 5 pushes x 40 steps = the total
    assert a.stopped.is_set()
    b = ParameterServer(spec, ServerConfig(run_dir=str(tmp_path / "b")))
    b.load_state_dict(a.state_dict())
    assert b.stopped.is_set() and "total steps" in b.stop_reason and b.version == 5
    a.close()
    b.close()


# --- pushes.csv and checkpoints agree; disk faults never reach the apply path -------------------------
import os  # noqa: E402
import time  # noqa: E402

from ps.api.source import PushOutcome  # noqa: E402
from ps.records.faults import DiskFaults  # noqa: E402
from ps.records.pushlog import PushLog  # noqa: E402


def _outcome(version_at_apply: int, applied: bool = True) -> PushOutcome:
    o = PushOutcome(applied, "" if applied else "too_stale", version_at_apply + int(applied), 0, False, 0, 0.01,
                    None, 0, b"", version_at_apply, 1.0, 0.0, 0.0, 0.0, None)
    return o._replace(time=time.time())


def _csv_versions(path) -> list[tuple[int, int]]:
    with open(path, newline="") as f:
        return [(int(r["applied_version"]), int(r["applied"])) for r in csv.DictReader(f)]


def test_pushlog_writes_rows_in_version_order_and_a_checkpoint_sync_counts_exactly_its_rows(tmp_path):
    log = PushLog(tmp_path / "pushes.csv", flush_seconds=3600)
    push = Push(worker_id=1, base_version=0, gradient=b"", shape=[0], env_steps=4)
    for v in (1, 0, 2):                  # arrival order differs from the order of the lock
        log.append(push, _outcome(v))
    log.append(push, _outcome(3, applied=False))  # dropped while the version was 3
    log.append(push, _outcome(5))        # version 4's row is late
    assert log.flush()
    assert _csv_versions(tmp_path / "pushes.csv") == [(0, 1), (1, 1), (2, 1), (3, 0)]  # 5 waits for 4
    with log.checkpoint_sync() as sync:
        log.append(push, _outcome(4))
        assert sync(5) == 5              # rows of versions 0..4 (and the drop at 3), fsynced; not 5's
    assert _csv_versions(tmp_path / "pushes.csv")[-1] == (4, 1)
    log.close()
    assert _csv_versions(tmp_path / "pushes.csv") == [(0, 1), (1, 1), (2, 1), (3, 0), (4, 1), (5, 1)]


def test_pushlog_keeps_rows_the_disk_refuses_and_writes_them_when_it_has_room(tmp_path):
    faults = DiskFaults()
    log = PushLog(tmp_path / "pushes.csv", flush_seconds=3600, faults=faults)
    push = Push(worker_id=1, base_version=0, gradient=b"", shape=[0], env_steps=4)
    good_fd, log._fd = log._fd, os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    for v in range(50):
        log.append(push, _outcome(v))
    assert not log.flush() and not log.flush()
    assert faults.counts() == {"pushes_csv": 2} and log.rows_on_disk == 0
    with log.checkpoint_sync() as sync:
        assert sync(50) is None          # a checkpoint must not claim rows that are not on disk
    os.close(log._fd)
    log._fd = good_fd                    # room again
    assert log.flush() and log.rows_on_disk == 50
    log.close()
    assert [v for v, _ in _csv_versions(tmp_path / "pushes.csv")] == list(range(50))


def test_an_observer_that_raises_never_reaches_the_worker_and_is_counted(tmp_path):
    from ps.core.observers import Observer

    class Broken(Observer):
        fault_kind = "broken"

        def on_push(self, push, outcome):
            raise OSError(28, "No space left on device")

    core = _server(tmp_path / "run")
    faults = DiskFaults()
    core.pushlog.faults = faults
    core.observers += [Broken(), faults]
    _drive(core, 5)
    assert core.version == 5 and faults.counts() == {"broken": 5}
    assert core.status()["disk_faults"] == {"broken": 5}
    core.close()


def test_tensorboard_fails_alone_and_opens_a_new_file_later(tmp_path):
    from ps.service.tensorboard import TensorBoardWriter

    class FullDisk:
        def add_event(self, event):
            raise OSError(28, "No space left on device")

        def close(self):
            raise OSError(28, "No space left on device")

    faults = DiskFaults()
    clock = [0.0]
    tb = TensorBoardWriter(tmp_path / "tb", interval_seconds=0.0, clock=lambda: clock[0], faults=faults,
                           retry_seconds=10.0)
    first = tb._writer
    tb._writer = FullDisk()
    push = Push(worker_id=1, base_version=0, gradient=b"", shape=[0], env_steps=4, episode_returns=[1.0],
                episode_lengths=[3])
    for _ in range(3):
        tb.on_push(push, _outcome(0))    # never raises
    assert faults.counts() == {"tensorboard": 1} and tb._writer is None
    clock[0] = 11.0
    tb.on_push(push, _outcome(1))
    assert tb._writer is not None and faults.counts() == {"tensorboard": 1}
    tb.close()
    first.close()
    assert len(list((tmp_path / "tb").iterdir())) == 2
