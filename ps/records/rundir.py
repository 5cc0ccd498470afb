"""One run dir, one server: an exclusive lock held for the server's life, and the start's housekeeping.

The lock is fcntl.flock on <run-dir>/.lock, taken before anything in the run dir is touched (before
a resume cuts pushes.csv or --fresh moves records aside) and released by the kernel when the process
ends, however it ends (kill -9 included). The file says who holds it ("pid N port P"), so a second
server on the same dir refuses in one line naming them.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from pathlib import Path

from ps.records.checkpoint import DIR_NAME

log = logging.getLogger("ps.records")
LOCK_NAME = ".lock"
# Temp files of the run's atomic writes: checkpoints/.ckpt-N.a3c.tmp, summary.json.tmp, pushes.csv.tmp,
# params_final.npz.tmp.npz, <plot>.tmp.png. A crash (or a full disk) can leave one behind.
_TEMP = re.compile(r"\.tmp(\.npz|\.png)?$")


class RunDirBusy(OSError):
    """Another live server holds the run dir."""


class RunDirLock:
    """Holds <run-dir>/.lock exclusively until release() or the process's end."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.created = not self.run_dir.exists()  # this invocation made the dir: a failed start removes it
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise RunDirBusy(f"run dir {self.run_dir} is in use by another ps-serve ({holder}): stop it, "
                             f"or give another --run-dir") from None
        except OSError:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self.note(pid=os.getpid())

    def note(self, **fields) -> None:
        """Say who holds the lock: 'pid N' at once, 'pid N port P' once the port is bound. Best effort."""
        text = " ".join(f"{k} {v}" for k, v in {"pid": os.getpid(), **fields}.items()) + "\n"
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text.encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None

    def abandon(self) -> None:
        """A start that failed before serving: remove the run dir if this invocation created it
        (nothing of an earlier run can be in it), then release."""
        if self.created:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.release()


def _read(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temp files an earlier server left (killed mid-write, or on a full disk): they hold
    space and are never read. Only ever called with the run dir's lock held."""
    removed = []
    for directory in (Path(run_dir), Path(run_dir) / DIR_NAME):
        if not directory.is_dir():
            continue
        for p in directory.iterdir():
            if _TEMP.search(p.name) and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    if removed:
        log.info("removed %d stale temporary files: %s", len(removed), ", ".join(p.name for p in removed))
    return removed
