"""ps-serve --shards N (without --shard): a whole sharded run on this host.

Shards 1..N-1 start as ps-serve subprocesses on free ports, each in <run-dir>/shard-I (its log in
<run-dir>/shard-I.log); then shard 0 runs in this process, in <run-dir>/shard-0, handing their
addresses to the workers, with --local-workers pointed at it. When it ends, the others end with it
(each sees the same pushes, so each stops at the same one; any still up seconds later is sent
SIGTERM), and the run dir gets the run's params_final.npz, joined from the shards' slices, and
summary.json: shard 0's (T, episodes, the stop) with every shard's own figures under "shards".
"""
from __future__ import annotations

import dataclasses
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.records.checkpoint import checkpoint_dir, tags
from ps.records.rundir import RunDirLock
from ps.records.summary import SHARD_PARAMS, join_shard_params, write_final_params, write_json_atomic

log = logging.getLogger("ps")
START_SECONDS = 120.0  # a shard subprocess has this long to bind its port
MAX_RESTARTS = 10      # shards restarted in one run, at most: past it a shard that keeps dying stays down
END_SECONDS = 5.0      # after shard 0 exits, how long the others have to exit on their own
SHARD_FIGURES = ("updates", "env_steps", "staleness", "rejected", "dropped", "stop_reason", "shard", "disk_faults")


def run_sharded(spec: RunSpec, config: ServerConfig, local_workers: int) -> int:
    from ps.node import run_node
    root = Path(config.run_dir)
    lock = RunDirLock(root)  # one launcher per run dir; each shard also locks its own
    if not config.fresh and not config.resume_tag:
        config = dataclasses.replace(config, resume_tag=consistent_tag(root, config.shards))
    shards = Shards(spec, config, root)

    def interrupted(signum, _frame):  # until shard 0 serves (then its own handlers): stop the others too
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, interrupted)
    try:
        try:
            shards.start()
        except RunFinished as done:
            print(f"ps-serve: {done}: nothing to do", file=sys.stderr, flush=True)
            return 0
        print(f"ps-serve: shards 1..{config.shards - 1} at {', '.join(shards.addresses[1:])}", file=sys.stderr,
              flush=True)
        code = run_node(spec, dataclasses.replace(config, run_dir=str(root / "shard-0"), shard="0",
                                                  shard_addresses=",".join(shards.addresses)), local_workers)
    finally:
        shards.end()
        lock.release()
    _join(root, config.shards)
    return code


class RunFinished(Exception):
    """A shard found its run already over at start (its checkpoint says so): the whole run is."""


class Shards:
    """Shards 1..N-1 as subprocesses, each restarted on its own port when it dies mid-run (a kill -9,
    the OOM killer): it resumes from its checkpoint and takes the others' T (ps/shard_peers.py)."""

    def __init__(self, spec: RunSpec, config: ServerConfig, root: Path) -> None:
        self.spec, self.config, self.root = spec, config, root
        self.procs: dict[int, subprocess.Popen] = {}
        self.ports: dict[int, int] = {}
        self.restarts = 0
        self.addresses: list[str] = []
        self._over = threading.Event()
        self._watch = threading.Thread(target=self._supervise, name="shards", daemon=True)

    def start(self) -> None:
        host = _advertised(self.config.host)
        self.addresses = [f"{host}:{self.config.port}"]  # shard 0's (host:0 until it binds: the workers' --ps)
        for i in range(1, self.config.shards):
            self.procs[i], self.ports[i] = _start_shard(self.spec, self.config, self.root, i)
            self.addresses.append(f"{host}:{self.ports[i]}")
        self._watch.start()

    def _supervise(self) -> None:
        while not self._over.wait(0.2):
            for i, proc in list(self.procs.items()):
                if proc.poll() is None or proc.returncode == 0 or self.restarts >= MAX_RESTARTS:
                    continue
                port0 = self.root / "shard-0" / "port"
                addresses = [f"{self.addresses[0].rsplit(':', 1)[0]}:{port0.read_text().strip()}"
                             if port0.exists() else self.addresses[0], *self.addresses[1:]]
                self.restarts += 1
                log.warning("shard %d exited %s: restarting it on port %d (restart %d of at most %d)", i,
                            proc.returncode, self.ports[i], self.restarts, MAX_RESTARTS)
                try:
                    # mid-run: its own newest checkpoint, then the others' T (not the start's common tag)
                    self.procs[i], _ = _start_shard(self.spec, dataclasses.replace(self.config, resume_tag=""),
                                                    self.root, i, self.ports[i], ",".join(addresses))
                except OSError as err:
                    log.error("shard %d could not be restarted: %s", i, err)

    def end(self) -> None:
        """The other shards end on their own with the run (they stop at the same push as shard 0 and
        exit once its workers left); any still up a few seconds later (shard 0 was stopped by a signal
        or failed) is told to stop."""
        self._over.set()
        if self._watch.is_alive():
            self._watch.join()
        children = list(self.procs.values())
        deadline = time.monotonic() + END_SECONDS
        while any(c.poll() is None for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def consistent_tag(root: Path, count: int) -> str:
    """The tag a whole sharded run resumes from: "" when every shard's newest checkpoint has the same tag
    (or any shard has none), else the newest tag all shards have a checkpoint of (said in one line)."""
    per = [tags(checkpoint_dir(root / f"shard-{i}")) for i in range(count)]
    if not all(per) or len({p[0] for p in per}) == 1:
        return ""
    common = set(per[0]).intersection(*per[1:]) - {""}
    tag = next((t for t in per[0] if t in common), "")
    if tag:
        print(f"ps-serve: the shards' newest checkpoints differ ({', '.join(p[0] or '-' for p in per)}): "
              f"every shard resumes from the newest they all have, {tag}", file=sys.stderr, flush=True)
    else:
        print("ps-serve: the shards' checkpoints share no tag: each shard resumes from its own newest",
              file=sys.stderr, flush=True)
    return tag


def _advertised(host: str) -> str:
    """The host workers reach a shard at: the bound address, or this host's name for a wildcard."""
    return socket.getfqdn() if host in ("0.0.0.0", "::", "") else host


def _start_shard(spec: RunSpec, config: ServerConfig, root: Path, index: int, port: int = 0,
                 addresses: str = "") -> tuple[subprocess.Popen, int]:
    """Shard `index` as a ps-serve subprocess with every field of this run (a --config file), on `port`
    (0: a free one); a restarted shard gets every shard's address, to ask the others how far the run is."""
    run_dir = root / f"shard-{index}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "port").unlink(missing_ok=True)  # the last life's: wait for this one's
    server = dataclasses.replace(config, run_dir=str(run_dir), shard=str(index), port=port, shard_addresses=addresses,
                                 metrics_port=-1 if config.metrics_port < 0 else 0)
    fields = json.loads(spec.to_json()) | dataclasses.asdict(server)
    path = root / f"shard-{index}.json"
    path.write_text(json.dumps(fields, indent=1) + "\n")
    with open(root / f"shard-{index}.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ps.cli", "--config", str(path)], stdout=out, stderr=out,
                                preexec_fn=_stop_with_launcher)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() == 0:  # ps-serve exits 0 at start only on a finished run
            raise RunFinished(f"run already finished (shard {index} says so in {root / f'shard-{index}.log'})")
        if proc.poll() is not None:
            raise OSError(f"shard {index} exited {proc.returncode} at start: see {root / f'shard-{index}.log'}")
        text = (run_dir / "port").read_text().strip() if (run_dir / "port").exists() else ""
        if text:
            return proc, int(text)
        time.sleep(0.05)
    proc.kill()
    raise OSError(f"shard {index} did not bind a port within {START_SECONDS:.0f} s: see {root / f'shard-{index}.log'}")


def _stop_with_launcher() -> None:
    """In the shard's process before it runs: SIGTERM when the launcher dies (even by SIGKILL), so a
    shard never outlives its run's launcher holding its port and run dir (it writes its final
    checkpoint and exits). Linux's PR_SET_PDEATHSIG; elsewhere nothing."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _join(root: Path, count: int) -> None:
    """The run's params_final.npz and summary.json from the shards' (each best effort, said in one line)."""
    try:
        layout, theta = join_shard_params([root / f"shard-{i}" / SHARD_PARAMS for i in range(count)])
        write_final_params(root / "params_final.npz", layout, theta)
    except (OSError, ValueError) as err:
        print(f"ps-serve: no params_final.npz for the sharded run: {err}", file=sys.stderr)
    summaries = []
    for i in range(count):
        try:
            summaries.append(json.loads((root / f"shard-{i}" / "summary.json").read_text()))
        except (OSError, ValueError):
            summaries.append(None)
    if summaries[0] is None:
        print("ps-serve: no summary.json for the sharded run: shard 0 left none", file=sys.stderr)
        return
    doc = dict(summaries[0])
    doc["shards"] = [None if s is None else {k: s.get(k) for k in SHARD_FIGURES} for s in summaries]
    try:
        write_json_atomic(root / "summary.json", doc)
    except OSError as err:
        print(f"ps-serve: cannot write {root / 'summary.json'}: {err.strerror}", file=sys.stderr)
