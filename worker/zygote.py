"""Several actor-learners from one process image: import torch once, then fork.

Importing torch leaves ~140 MB of private heap in every process (operator tables, Python objects).
Forked after the imports, and before any gRPC channel exists, the workers share those pages
copy-on-write, so N local workers cost far less than N separate `worker-run` processes, and start
without N concurrent torch imports. Each child then creates its own channel (gRPC state never
crosses a fork) and registers as an ordinary worker.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys

log = logging.getLogger("worker")
PR_SET_PDEATHSIG = 1


def _preload() -> None:
    """Import what every worker needs (not grpc's channel: that is created after the fork)."""
    import gymnasium  # noqa: F401
    import numpy  # noqa: F401
    import torch  # noqa: F401

    from . import envs, loop, networks  # noqa: F401
    from .agents import a3c  # noqa: F401


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the parent dies, so no worker outlives its launcher."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def run_forked(count: int, run_one) -> int:
    """Run run_one() (returns an exit code) in `count` processes: this one and count-1 forks.

    Returns 0 if all succeeded, else the first non-zero exit code.
    """
    _preload()
    gc.collect()
    gc.freeze()  # the collector would otherwise touch (and so copy) every shared object
    children = []
    for _ in range(count - 1):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _die_with_parent()
                code = run_one()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)

    def forward(signum, _frame):
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    signal.signal(signal.SIGTERM, forward)
    codes = [run_one()]
    for pid in children:
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    failed = [c for c in codes if c != 0]
    if failed:
        log.warning("forked workers exited with codes %s", codes)
    return failed[0] if failed else 0
