"""One parameter-server process from start to exit: serve, watch, stop, write what the run leaves.

The only module that owns the process's lifetime (signals, local worker subprocesses, exit code).
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading

from ps.records import resume
from ps.service.auth import local_worker_args
from ps.records.checkpoint import Checkpointer, checkpoint_dir
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.malloc_tuning import keep_freed_buffers
from ps.service.metrics import serve_metrics
from ps.service.progress import ProgressReporter, summary_lines
from ps.service.rates import RateWindow
from ps.tools.report import report_at_end
from ps.service.grpc_service import start_server
from ps.records.summary import summary_from_status, write_final_params, write_json_atomic
from ps.service.tensorboard import TensorBoardWriter

log = logging.getLogger("ps")
WATCH_SECONDS = 0.25


def start_local_workers(count: int, port: int, extra: list[str] = ()) -> list[subprocess.Popen]:
    """One worker-run subprocess on this host running `count` workers (fork+exec; it forks them after
    its imports, so they share torch's memory: see worker/zygote.py)."""
    if count <= 0:
        return []
    cmd = [sys.executable, "-m", "worker.cli", "--ps", f"127.0.0.1:{port}", "--processes", str(count), *extra]
    return [subprocess.Popen(cmd)]


def run_node(spec: RunSpec, config: ServerConfig, local_workers: int = 0) -> int:
    keep_freed_buffers()  # no page-fault churn on message-sized buffers (ps/malloc_tuning.py)
    resumed = resume.prepare(spec, config)  # before the core opens pushes.csv; CheckpointError -> exit 2
    core = ParameterServer(spec, config)
    if resumed is not None:
        core.load_state_dict(resumed[1])
        print(f"ps-serve: resuming from {resumed[0]} (T {core.global_step}, version {core.version})",
              file=sys.stderr, flush=True)
    checkpointer = Checkpointer(core.state_dict, checkpoint_dir(core.run_dir), config.checkpoint_every_seconds)
    core.observers += [RateWindow(), TensorBoardWriter(core.run_dir / "tb")]
    if config.metrics_port >= 0:
        serve_metrics(core, config.host, config.metrics_port)
    server = start_server(core)
    port = server.port
    print(f"ps-serve: listening on {config.host}:{port}", file=sys.stderr, flush=True)

    def on_signal(signum, _frame):
        core.request_stop(f"signal {signal.Signals(signum).name}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    checkpointer.start()
    children = start_local_workers(local_workers, port, local_worker_args(config))
    progress = ProgressReporter(core.status, config.progress_seconds)
    progress.start()
    exit_code = 0
    try:
        while not core.stopped.wait(WATCH_SECONDS):
            core.expire_workers()
            if children and all(c.poll() is not None for c in children):
                codes = [c.returncode for c in children]
                core.request_stop(f"all local workers exited (codes {codes})")
                exit_code = 1
        _wait_for_workers(core, children, config.stop_grace_seconds)
    finally:
        progress.stop()
        summary = summary_from_status(core.status())
        write_json_atomic(core.run_dir / "summary.json", summary)
        layout, theta = core.params_snapshot()
        if layout is not None:
            write_final_params(core.run_dir / "params_final.npz", layout, theta)
        core.close()
        server.enter_graceful_shutdown()
        server.stop(grace=1.0)
        checkpointer.stop()  # the final checkpoint, once no push can land any more
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait(timeout=10)
    for line in summary_lines(summary):
        print(line, file=sys.stderr)
    print(f"ps-serve: wrote {core.run_dir / 'summary.json'}", file=sys.stderr)
    report_at_end(core.run_dir)  # plots; a failure here is logged, never fails the run
    return exit_code


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
