"""A saved policy: the run spec, layout and parameters a run leaves on disk, and the checkpoint format.

A run dir holds params_final.npz (named tensors and the layout; summary.json beside it has the run
spec) and checkpoints/ckpt-N.a3c. A checkpoint file is a short text header (magic, SHA-256 of the
payload) and an uncompressed .npz payload: the server's arrays plus a JSON `meta`. The format lives
here because both sides read it: the server resumes from it (ps/records/checkpoint.py), and ps-eval
(worker/evaluate.py) loads a policy from it.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ps.api.layout import Layout
from ps.api.spec import ConfigError, RunSpec

MAGIC = b"A3C-CHECKPOINT 1\n"
FINAL_PARAMS = "params_final.npz"


class UnreadableCheckpoint(ValueError):
    """The bytes are not a checkpoint (bad header, checksum, payload); the message is one line."""


def encode_checkpoint(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    buf = io.BytesIO()
    write_checkpoint(buf, arrays, meta)
    return buf.getvalue()


def write_checkpoint(f, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write a checkpoint into the seekable binary file f, array by array: no copy of the whole
    payload is ever in memory (200 per-worker RMSProp states of an Atari net are ~560 MB)."""
    header_at = f.tell()
    f.write(MAGIC + b"0" * 64 + b"\n")  # the digest, filled in once the payload is written
    payload_at = f.tell()
    np.savez(f, __meta__=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    end = f.tell()
    digest = hashlib.sha256()
    f.seek(payload_at)
    while chunk := f.read(min(1 << 20, end - f.tell())):
        digest.update(chunk)
    f.seek(header_at + len(MAGIC))
    f.write(digest.hexdigest().encode())
    f.seek(end)


def decode_checkpoint(blob: bytes, name: str) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of a checkpoint file's bytes; UnreadableCheckpoint if they are not one."""
    head = len(MAGIC) + 65
    if not blob.startswith(MAGIC) or len(blob) < head or blob[head - 1:head] != b"\n":
        raise UnreadableCheckpoint(f"checkpoint {name} is not a checkpoint file (bad header, or truncated)")
    digest, payload = blob[len(MAGIC):head - 1].decode("ascii", "replace"), blob[head:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise UnreadableCheckpoint(f"checkpoint {name} fails its checksum (truncated or corrupted)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop("__meta__")))
    except Exception as err:  # checksum was right, so this is a writer bug or a foreign file
        raise UnreadableCheckpoint(f"checkpoint {name} cannot be read: {type(err).__name__}: {err}") from None
    return arrays, meta


@dataclass(frozen=True)
class SavedPolicy:
    spec: RunSpec
    layout: Layout
    theta: np.ndarray   # flat float32, in layout order
    source: Path        # the file it came from
    version: int | None = None  # the update it was saved at (a checkpoint's; None for params_final)


def load_policy(path: str | Path) -> SavedPolicy:
    """The policy at `path`: a run dir (its params_final.npz, else its newest checkpoint), a
    params_final.npz, or a checkpoint file. ConfigError, in one line, when it cannot be loaded."""
    path = Path(path)
    if path.is_dir():
        final = path / FINAL_PARAMS
        newest = sorted((path / "checkpoints").glob("ckpt-*.a3c"))
        if final.exists():
            path = final
        elif newest:
            path = newest[-1]
        else:
            raise ConfigError(f"{path} holds neither {FINAL_PARAMS} nor checkpoints/ckpt-*.a3c: not a run dir")
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    if blob.startswith(MAGIC):
        try:
            arrays, meta = decode_checkpoint(blob, str(path))
            layout = Layout.from_dict(meta["layout"])
            spec = RunSpec.from_json(json.dumps(meta["run_spec"]))
        except (UnreadableCheckpoint, KeyError, TypeError) as err:
            raise ConfigError(str(err) if isinstance(err, UnreadableCheckpoint)
                              else f"checkpoint {path} has no run spec or layout") from None
        return SavedPolicy(spec, layout, _flat(arrays.get("theta"), layout, path), path, int(meta.get("version", 0)))
    return _load_final(path, blob)


def _load_final(path: Path, blob: bytes) -> SavedPolicy:
    summary = path.with_name("summary.json")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        layout = Layout.from_dict(json.loads(str(arrays["__layout__"])))
        theta = np.concatenate([arrays[e.name].reshape(-1) for e in layout.entries]).astype(np.float32)
    except Exception as err:  # not an .npz of ours
        raise ConfigError(f"{path} is neither a checkpoint nor a params_final.npz ({type(err).__name__})") from None
    try:
        spec = RunSpec.from_json(json.dumps(json.loads(summary.read_text())["run_spec"]))
    except (OSError, KeyError, ValueError):
        raise ConfigError(f"{path} needs its run's summary.json beside it (for the run spec)") from None
    return SavedPolicy(spec, layout, _flat(theta, layout, path), path)


def _flat(theta, layout: Layout, path: Path) -> np.ndarray:
    if theta is None or theta.dtype != np.float32 or theta.shape != (layout.size,) or not np.isfinite(theta).all():
        raise ConfigError(f"{path}: its parameters do not fit its layout {layout.hash}, or are not finite")
    return theta
