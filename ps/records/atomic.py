"""Writing a record so that a crash at any moment leaves the old file or the new one, never half."""
from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data, tmp: Path | None = None) -> None:
    """data (bytes, or a function that writes into the open file) to `tmp` (default path + ".tmp"),
    fsynced, renamed over path. On any failure the temp file is removed: on a full disk a
    half-written one must not keep its space."""
    tmp = tmp or path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w+b") as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
