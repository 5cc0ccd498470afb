"""One parameter-server process from start to exit: serve, watch, stop, write what the run leaves.

The only module that owns the process's lifetime (signals, local worker subprocesses, exit code).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ps.records import resume
from ps.service.auth import local_worker_args
from ps.records.checkpoint import CheckpointError, Checkpointer, checkpoint_dir
from ps.records.faults import DiskFaults, describe
from ps.records.rundir import RunDirBusy, RunDirLock, remove_stale_temps
from ps.shard_peers import peer_progress
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.malloc_tuning import keep_freed_buffers, release_free_memory
from ps.service.metrics import serve_metrics
from ps.service.progress import ProgressReporter, summary_lines
from ps.service.rates import RateWindow
from ps.tools.report import report_at_end
from ps.service.grpc_service import start_server
from ps.records.summary import (SHARD_PARAMS, summary_from_status, write_final_params, write_json_atomic,
                                write_shard_params)
from ps.service.tensorboard import TensorBoardWriter

log = logging.getLogger("ps")
WATCH_SECONDS = 0.25
TRIM_SECONDS = 5.0  # how often freed memory goes back to the kernel (ps/api/malloc_tuning.py)
STATUS_LINGER_SECONDS = 1.0  # a finished run stays visible this long to ps-status --watch before the server goes
# Set by the Kubernetes manifests (deploy/k8s/base/server.yaml): ps-serve runs under a supervisor that
# restarts it (a Job with restartPolicy OnFailure) and a signal interrupts the run, never ends it.
RESTARTABLE_ENV = "A3C_RESTARTABLE"
LOCK_WAIT_SECONDS = 120.0  # a replacement waits this long for the last server's final writes


def restartable() -> bool:
    """A3C_RESTARTABLE=1: a signal interrupts the run instead of ending it. Workers are not told to
    stop (they retry, then register with the next server), the exit code is 128 + the signal's number
    (so restartPolicy OnFailure restarts a container its liveness probe killed), and a start that
    finds the run dir locked waits up to LOCK_WAIT_SECONDS for the previous server to let go (a Job
    starts a deleted pod's replacement while the old one still writes its final checkpoint)."""
    return os.environ.get(RESTARTABLE_ENV, "").strip().lower() in ("1", "true", "yes")


def start_local_workers(count: int, port: int, extra: list[str] = ()) -> list[subprocess.Popen]:
    """One worker-run subprocess on this host running `count` workers (fork+exec; it forks them after
    its imports, so they share torch's memory: see worker/zygote.py)."""
    if count <= 0:
        return []
    cmd = [sys.executable, "-m", "worker.cli", "--ps", f"127.0.0.1:{port}", "--processes", str(count), *extra]
    return [subprocess.Popen(cmd)]


def start_local_evaluator(spec: RunSpec, port: int, extra: list[str] = ()) -> list[subprocess.Popen]:
    """With --eval-every, the run's evaluator beside the local workers: its own worker-run process
    (worker/evaluator.py), outside the learners' zygote, so that it plays while they learn."""
    if spec.eval_every <= 0:
        return []
    cmd = [sys.executable, "-m", "worker.cli", "--ps", f"127.0.0.1:{port}", "--evaluator", *extra]
    return [subprocess.Popen(cmd)]


def run_node(spec: RunSpec, config: ServerConfig, local_workers: int = 0) -> int:
    """One server's life on its run dir, holding the run dir's lock throughout (ps/records/rundir.py).

    A start that fails before serving (a port in use, a refused checkpoint ...) raises one line for
    ps-serve to print, and leaves no half-made run dir: one this invocation created is removed."""
    keep_freed_buffers()  # no page-fault churn on message-sized buffers (ps/malloc_tuning.py)
    lock = _take_lock(Path(config.run_dir))  # before anything in the run dir is touched; RunDirBusy -> exit 2
    started: dict = {}
    try:
        return _run(spec, config, local_workers, lock, started)
    except BaseException:
        if "port" not in started:
            core = started.get("core")
            if core is not None:
                core.close()
            lock.abandon()
        raise
    finally:
        lock.release()


def _take_lock(run_dir: Path) -> RunDirLock:
    if not restartable():
        return RunDirLock(run_dir)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    said = False
    while True:
        try:
            return RunDirLock(run_dir)
        except RunDirBusy as busy:
            if time.monotonic() >= deadline:
                raise
            if not said:
                print(f"ps-serve: {busy}; waiting up to {LOCK_WAIT_SECONDS:.0f} s for it to exit",
                      file=sys.stderr, flush=True)
                said = True
            time.sleep(0.5)


def check_port_free(host: str, port: int) -> None:
    """A fixed port already bound fails here in one line, before the run dir is touched (gRPC's own
    failure comes with a C-level log line)."""
    if port == 0:
        return
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: TIME_WAIT is no conflict
            s.bind(addr)
    except OSError as err:
        raise OSError(f"cannot bind {host}:{port}: {err.strerror or err} (another server on it? "
                      f"--port 0 picks a free one)") from None


def _run(spec: RunSpec, config: ServerConfig, local_workers: int, lock: RunDirLock, started: dict) -> int:
    check_port_free(config.host, config.port)
    remove_stale_temps(lock.run_dir)  # the lock is ours: no other server is writing them
    try:
        resumed = resume.prepare(spec, config)  # before the core opens pushes.csv; CheckpointError -> exit 2
    except resume.RunFinished as done:
        # A finished run is left exactly as it is (its summary names the workers that trained it).
        summary = "" if (lock.run_dir / "summary.json").exists() else "; its summary.json is missing"
        print(f"ps-serve: {done}{summary}: nothing to do", file=sys.stderr, flush=True)
        return 0
    core = started["core"] = ParameterServer(spec, config)
    faults = DiskFaults()  # every record writer counts its failures here: status, summary.json, /metrics
    core.pushlog.faults = faults
    core.observers.append(faults)
    if resumed is not None:
        try:
            core.load_state_dict(resumed[1])
        except Exception as err:  # verified array by array already; anything else is still one line
            raise CheckpointError(f"checkpoint {resumed[0]} cannot be restored ({describe(err)}): "
                                  f"move it away to resume from an older one, or pass --fresh") from None
        print(f"ps-serve: resuming from {resumed[0]} (T {core.global_step}, version {core.version})",
              file=sys.stderr, flush=True)
    if core.sharding.addresses:  # a shard restarted mid-run: the other shards' T and stop
        core.catch_up(*peer_progress(config, core.sharding.addresses))
    core.pushlog.expect_version(core.version)
    checkpointer = Checkpointer(core.state_dict, checkpoint_dir(core.run_dir), config.checkpoint_every_seconds,
                                aligned=config.shards > 1,
                                faults=faults, pushlog=core.pushlog)
    core.observers += [RateWindow(), TensorBoardWriter(core.run_dir / "tb", faults=faults)]
    if config.metrics_port >= 0:
        serve_metrics(core, config.metrics_host, config.metrics_port, faults)
    server = start_server(core)
    port = server.port
    started["port"] = port
    core.sharding.bound(port)
    lock.note(port=port)
    # The port file is the "ready" sign others wait for (tests, the shard launcher): written last, so a
    # reader of it also finds the lock naming the port.
    (core.run_dir / "port").write_text(f"{port}\n")
    print(f"ps-serve: listening on {config.host}:{port}", file=sys.stderr, flush=True)

    interrupted: list[int] = []  # restartable: the signal that interrupted the run (workers are not told)
    ending: list[int] = []       # otherwise: the signal that ends the run (the workers are told to stop)

    def on_signal(signum, _frame):
        # Only noted: the watch loop acts on it. A handler runs between two bytecodes of the main thread,
        # which may hold the core's lock right then (expire_workers, an earlier signal's stop): taking
        # the lock here would wait for itself.
        (interrupted if restartable() else ending).append(signum)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    checkpointer.start()
    children = start_local_workers(local_workers, port, local_worker_args(config))
    # not among `children`: the learners' exit ends a run, the evaluator's does not
    evaluators = start_local_evaluator(spec, port, local_worker_args(config)) if children else []
    progress = ProgressReporter(core.status, config.progress_seconds)
    progress.start()
    exit_code = 0
    try:
        trimmed_at = time.monotonic()
        while not core.stopped.wait(WATCH_SECONDS) and not interrupted:
            if ending:
                core.request_stop(f"signal {signal.Signals(ending[0]).name}")
                continue
            core.expire_workers()
            if time.monotonic() - trimmed_at >= TRIM_SECONDS:  # memory back after a burst
                release_free_memory()
                trimmed_at = time.monotonic()
            if children and all(c.poll() is not None for c in children):
                codes = [c.returncode for c in children]
                core.request_stop(f"all local workers exited (codes {codes})")
                exit_code = 1
        if not interrupted:
            _wait_for_workers(core, children + evaluators, config.stop_grace_seconds)
            time.sleep(STATUS_LINGER_SECONDS)
    finally:
        progress.stop()
        server.enter_graceful_shutdown()
        server.stop(grace=1.0)
        if interrupted and not core.stopped.is_set():  # said now, when no reply can carry 'stop' any more
            core.request_stop(f"signal {signal.Signals(interrupted[0]).name} (restartable: workers keep going)")
            exit_code = 128 + interrupted[0]
        # What the run leaves, most valuable first, each write attempted on its own: one failing
        # (a full disk ...) is counted and said, and never skips the others.
        _attempt(faults, "checkpoint", checkpointer.stop)  # the final checkpoint, once no push can land any more
        layout, theta = core.params_snapshot()
        if layout is not None and core.shard.whole:
            _attempt(faults, "params_final", write_final_params, core.run_dir / "params_final.npz", layout, theta)
        elif layout is not None:  # one slice: the launcher (ps/shard_launcher.py) joins them
            _attempt(faults, "params_final", write_shard_params, core.run_dir / SHARD_PARAMS, layout, core.shard, theta)
        core.close()  # pushes.csv's last rows, TensorBoard's last events; never raises
        summary = summary_from_status(core.status())
        wrote_summary = _attempt(faults, "summary", write_json_atomic, core.run_dir / "summary.json", summary)
        for child in children + evaluators:
            if child.poll() is None:
                child.terminate()
                child.wait(timeout=10)
    for line in summary_lines(summary):
        print(line, file=sys.stderr)
    if wrote_summary:
        print(f"ps-serve: wrote {core.run_dir / 'summary.json'}", file=sys.stderr)
    if summary.get("disk_faults"):
        print(f"ps-serve: disk faults (training went on): {summary['disk_faults']}", file=sys.stderr)
    report_at_end(core.run_dir, faults)  # plots; a failure here is counted and logged, never fails the run
    return exit_code


def _attempt(faults: DiskFaults, kind: str, write, *args) -> bool:
    """One of the final writes: True when done; a failure is counted and logged, never raised."""
    try:
        write(*args)
        return True
    except Exception as err:  # noqa: BLE001 - the other writes still get their turn
        faults.record(kind, err, "not written")
        return False


def _wait_for_workers(core: ParameterServer, children: list[subprocess.Popen], grace: float) -> None:
    """Give connected workers up to `grace` seconds to hear 'stop' (on their next push) and leave."""
    done = threading.Event()
    deadline_steps = int(grace / WATCH_SECONDS)
    for _ in range(deadline_steps):
        core.expire_workers()
        if core.connected_workers() == 0 and all(c.poll() is not None for c in children):
            return
        done.wait(WATCH_SECONDS)
    log.warning("%d workers still connected after %.0f s; exiting anyway", core.connected_workers(), grace)
