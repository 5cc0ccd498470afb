"""Chaos: a CartPole run of several minutes under a driver that keeps breaking things.

    python -m bench.chaos                      # about 5 minutes
    python -m bench.chaos --minutes 10 --seed 3 --out-dir bench/results/chaos

Real processes: one `ps-serve` on a fixed port with its run dir on a 64 MiB tmpfs mounted here (as
root; otherwise a plain dir, and the disk fill is skipped), and separate `worker-run` processes
(not --local-workers, so one worker at a time can be killed). During the run the driver

- kills -9 the server every 30-60 s and restarts it at once on the same run dir and port (it
  resumes from its newest checkpoint; `--checkpoint-every 5`);
- kills -9 a random worker every ~20 s (15-25 s) and starts a new one;
- fills the tmpfs to its last byte once, for ~15 s, then deletes the filler;
- holds 16 stalled calls open (Push, Register, Status and health checks that send their metadata
  and never their request) for ~20 s.

No server kill falls in the disk fill or the stall, or just after them, so that each kill's lost
updates measure the checkpoint interval alone. The Status RPC is polled every 0.5 s.

How long: the workers sleep 50 ms (+-10) before every push (`--inject-delay-ms 50:10`) and step
16 envs each, so the pace is set by that sleep rather than by the shared CPU (3 workers: ~45-55
updates/s, ~3,000 env steps/s, measured on the shared 2-core machine; ~2,200 under the faults);
the run has `--target-return none` and a step budget of 0.75 x 3,000 steps/s times the planned
minutes, and ends by itself when T reaches it. "Reached its budget" is whether the last server life stopped there, exit 0.

What it prints, per fault: injected, survived (server kill: the restarted server resumed and the
workers pushed to it again; worker kill: the new worker process pushed; disk fill: training went on
while full; stall: training and Status went on, health SERVING), and for the run: updates lost at
each server kill (last version seen just before the kill minus the version the new life resumed
from) against the updates of one checkpoint interval, rows of pushes.csv == summary.json's
updates, any NaN/Infinity (pushes.csv grad_norm and learning_rate, params_final.npz, every status
document polled), the server's peak RSS over all its lives, and whether the run reached its budget.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from bench.common import MIB, Launched, bin_path, console, fmt, launch, print_table, stop_process

NOMINAL_STEPS_PER_SECOND = 3000  # 3 workers x 16 envs x t_max 4 with a 50 ms sleep before each push
# Under the faults the run averaged ~2,200 env steps/s (restarted workers import torch for 4-9 s,
# reconnects back off, lost updates are redone): the budget is sized with this share of the rate.
CHAOS_SHARE = 0.75
POLL_SECONDS = 0.5
RESUME_RE = re.compile(r"ps-serve: resuming from (\S+) \(T (\d+), version (\d+)\)")
RECOVER_SECONDS = 90.0  # a fault not recovered from within this long counts as not survived


# --- the plan ------------------------------------------------------------------------------------
@dataclass
class ChaosConfig:
    minutes: float = 5.0
    seed: int = 0
    out_dir: Path = Path("bench/results/chaos")
    workers: int = 3
    envs: int = 16
    delay_ms: str = "50:10"
    checkpoint_every: float = 5.0
    steps_per_second: float = NOMINAL_STEPS_PER_SECOND  # sizes the budget: rate x planned seconds
    total_steps: int | None = None                      # explicit budget (else from the rate)
    tmpfs_mib: int = 64
    stalled: int = 16
    connect_timeout: float = 120.0
    # an explicit schedule [(seconds after training started, kind, hold seconds)]; None = drawn from seed
    schedule: list | None = None

    def budget(self) -> int:
        if self.total_steps:
            return int(self.total_steps)
        return int(round(self.steps_per_second * CHAOS_SHARE * self.minutes * 60, -3))


def draw_schedule(cfg: ChaosConfig) -> list[tuple[float, str, float]]:
    """Server kills every 30-60 s, worker kills every 15-25 s, one disk fill (~15 s, at ~30% of the
    run) and one stall (~20 s, at ~60%); no server kill in the fill or stall or just after them."""
    rng = random.Random(cfg.seed)
    span = cfg.minutes * 60
    end = span - 20  # a quiet tail: the last life runs a while before the budget ends the run
    fill = (round(0.3 * span, 1), "disk_fill", 15.0)
    stall = (round(0.6 * span, 1), "stall", 20.0)
    quiet = [(fill[0] - 5, fill[0] + fill[2] + 10), (stall[0] - 5, stall[0] + stall[2] + 5)]
    events = [fill, stall]
    t = rng.uniform(30, 60)
    while t < end:
        for a, b in quiet:
            if a <= t < b:
                t = b + rng.uniform(0, 5)
        if t < end:
            events.append((round(t, 1), "server_kill", 0.0))
        t += rng.uniform(30, 60)
    t = rng.uniform(15, 25)
    while t < end:
        events.append((round(t, 1), "worker_kill", 0.0))
        t += rng.uniform(15, 25)
    return sorted(events)


# --- what happened -------------------------------------------------------------------------------
@dataclass
class Fault:
    kind: str
    at_seconds: float                 # after training started
    survived: bool | None = None      # None while the check is pending
    detail: dict = field(default_factory=dict)


@dataclass
class ChaosReport:
    config: dict
    schedule: list
    faults: list = field(default_factory=list)
    disk_fill: str = "done"                  # or "skipped: <why>"
    budget: int = 0
    final_exit_code: int | None = None
    finished: bool = False                   # the last life exited 0 by itself and wrote summary.json
    reached_budget: bool = False
    stop_reason: str | None = None
    updates: int | None = None
    env_steps: int | None = None
    final_mean100: float | None = None
    rows: int | None = None
    versions_once: bool | None = None        # applied_version 0..updates-1, each once
    nan_seen: list = field(default_factory=list)
    statuses_polled: int = 0
    peak_rss_mib: float = 0.0
    server_lives: int = 0
    unexpected: list = field(default_factory=list)   # anything that went wrong that the driver did not do
    wall_seconds: float = 0.0
    run_dir: str = ""

    @property
    def lost(self) -> list[int]:
        return [f.detail["lost"] for f in self.faults if f.kind == "server_kill" and "lost" in f.detail]

    @property
    def per_interval(self) -> list[float]:
        return [f.detail["updates_per_interval"] for f in self.faults
                if f.kind == "server_kill" and "updates_per_interval" in f.detail]

    def of(self, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind]

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["lost"] = self.lost
        return doc


# --- helpers -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mount_tmpfs(path: Path, mib: int) -> str | None:
    """None when mounted, else why not."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)],
                             capture_output=True, text=True)
    except OSError as err:
        return str(err)
    return None if out.returncode == 0 else (out.stderr.strip() or f"mount exited {out.returncode}")


def unmount(path: Path) -> None:
    for _ in range(20):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)  # a process still closing its files
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill the file system to its last byte; returns the filler (delete it to make room)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    chunk = b"\0" * (1024 * 1024)
    try:
        while True:
            try:
                if os.write(fd, chunk) == 0:
                    break
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler


def _strict_json(text: str) -> tuple[dict, bool]:
    """The document, and whether it held NaN or +-Infinity (Python's json reads them; JSON has none)."""
    seen = []
    doc = json.loads(text, parse_constant=lambda c: seen.append(c) or float(c))
    return doc, bool(seen)


class Stalled:
    """`count` calls spread over `methods`, each sending its metadata (with `token`, if given) and
    never its request; also tests/integration/test_stalled_clients.py's."""

    METHODS = ("/a3c.ps.v1.ParameterServer/Push", "/a3c.ps.v1.ParameterServer/Register",
               "/a3c.ps.v1.ParameterServer/Status", "/grpc.health.v1.Health/Check")

    def __init__(self, address: str, count: int, methods: tuple[str, ...] = METHODS, token: str = "",
                 timeout: float = 300) -> None:
        import grpc
        self.release = threading.Event()
        self.channels, self.calls = [], []
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        for i in range(count):
            channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            call = channel.stream_unary(methods[i % len(methods)])
            self.calls.append(call.future(self._never(), timeout=timeout, metadata=metadata))
            self.channels.append(channel)

    def _never(self):
        self.release.wait()
        return
        yield  # a generator that yields nothing until released

    def ended_early(self) -> int:
        return sum(1 for c in self.calls if c.done())

    def close(self) -> None:
        self.release.set()
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            channel.close()


# --- the driver ----------------------------------------------------------------------------------
class Chaos:
    def __init__(self, cfg: ChaosConfig) -> None:
        import grpc

        from ps.api.v1 import parameter_server_pb2 as pb
        from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.disk = self.out / "disk"
        self.logs = self.out / "logs"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.rng = random.Random(cfg.seed + 1)
        self.schedule = cfg.schedule if cfg.schedule is not None else draw_schedule(cfg)
        self.report = ChaosReport(config={k: str(v) for k, v in asdict(cfg).items() if k != "schedule"},
                                  schedule=[list(e) for e in self.schedule], budget=cfg.budget())
        self.server: Launched | None = None
        self.lives = 0
        self.workers: list[Launched | None] = [None] * cfg.workers
        self.worker_starts = 0
        self._pb, self._grpc = pb, grpc
        self._channel = grpc.insecure_channel(self.address)
        self._stub = pb_grpc.ParameterServerStub(self._channel)
        self._lock = threading.Lock()
        self.last: dict = {}                        # newest status of the current life
        self.history: list[tuple[float, int, str]] = []  # (monotonic, updates, incarnation)
        self._stop = threading.Event()
        self._killing = False                       # the driver is between a kill and the restart
        self.t0: float | None = None                # monotonic time training started (first update)
        self.pending: list[Fault] = []

    # -- processes --
    def server_cmd(self) -> list[str]:
        c = self.cfg
        return [bin_path("ps-serve"), "--env", "CartPole-v1", "--algo", "a3c", "--seed", str(c.seed),
                "--port", str(self.port), "--run-dir", str(self.run_dir), "--envs", str(c.envs),
                "--target-return", "none", "--total-steps", str(c.budget()),
                "--checkpoint-every", str(c.checkpoint_every), "--progress-seconds", "10"]

    def start_server(self) -> dict:
        """Start a server life; returns {"resumed_version", "resumed_T"} once it listens."""
        for attempt in range(5):
            self.lives += 1
            log = self.logs / f"server-{self.lives:02d}.log"
            launched = launch(self.server_cmd(), log)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                text = log.read_text(errors="replace")
                if "ps-serve: listening on" in text:
                    self.server = launched
                    m = RESUME_RE.search(text)
                    return {"life": self.lives, "resumed_T": int(m.group(2)) if m else 0,
                            "resumed_version": int(m.group(3)) if m else 0, "resumed_from": m.group(1) if m else None}
                if launched.proc.poll() is not None:
                    break
                time.sleep(0.05)
            stop_process(launched.proc)
            tail = log.read_text(errors="replace")[-600:]
            self.report.unexpected.append(f"server life {self.lives} did not start (exit "
                                          f"{launched.proc.returncode}): {tail.strip()}")
            time.sleep(1.0)
        raise RuntimeError(f"ps-serve did not start in 5 attempts; see {self.logs}")

    def start_worker(self, slot: int) -> Launched:
        self.worker_starts += 1
        w = launch([bin_path("worker-run"), "--ps", self.address, "--connect-timeout", str(self.cfg.connect_timeout),
                    "--inject-delay-ms", self.cfg.delay_ms],
                   self.logs / f"worker-{slot}-{self.worker_starts:02d}.log")
        self.workers[slot] = w
        return w

    # -- watching --
    def status_now(self, timeout: float = 2.0) -> dict | None:
        try:
            reply = self._stub.Status(self._pb.StatusRequest(), timeout=timeout)
        except self._grpc.RpcError:
            return None
        doc, bad = _strict_json(reply.status_json)
        with self._lock:
            self.report.statuses_polled += 1
            if bad:
                self.report.nan_seen.append(f"status document at version {doc.get('version')}")
            if not self._killing:
                self.last = doc
                self.history.append((time.monotonic(), doc["updates"], doc["incarnation"]))
                del self.history[:-400]
        return doc

    def _poll(self) -> None:
        while not self._stop.is_set():
            server = self.server
            if server is not None and server.proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(server.proc.pid).memory_info().rss / MIB
                    self.report.peak_rss_mib = max(self.report.peak_rss_mib, rss)
            self.status_now()
            self._stop.wait(POLL_SECONDS)

    def rate(self, seconds: float = 10.0, until: float | None = None) -> float:
        """Updates per second over the last `seconds` of the current life (up to `until`)."""
        with self._lock:
            last = self.last.get("incarnation")
            pts = [(t, u) for t, u, inc in self.history if inc == last and (until is None or t <= until)]
        if len(pts) < 2:
            return math.nan
        end_t, end_u = pts[-1]
        start = [(t, u) for t, u in pts if t >= end_t - seconds][0]
        return (end_u - start[1]) / max(end_t - start[0], 1e-9)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0 if self.t0 is not None else 0.0

    # -- faults --
    def server_kill(self, fault: Fault) -> None:
        before = self.status_now() or self.last
        per_second = before.get("updates_per_second") or self.rate()
        with self._lock:
            self._killing = True
        killed_at = time.monotonic()
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(timeout=30)
        killed_pid = self.server.proc.pid
        last_seen = before.get("updates", 0)
        life = self.start_server()
        with self._lock:
            self.last, self._killing = {}, False
        lost = last_seen - life["resumed_version"]
        fault.detail.update(killed_pid=killed_pid, last_seen=last_seen, updates_per_second=round(per_second, 1),
                            updates_per_interval=round(per_second * self.cfg.checkpoint_every, 1), lost=lost,
                            **life)
        fault.detail["check"] = {"until": time.monotonic() + RECOVER_SECONDS, "started": killed_at}
        self.pending.append(fault)

    def worker_kill(self, fault: Fault) -> None:
        alive = [i for i, w in enumerate(self.workers) if w is not None and w.proc.poll() is None]
        if not alive:
            fault.survived, fault.detail["why"] = False, "no live worker to kill"
            return
        slot = self.rng.choice(alive)
        old = self.workers[slot]
        old.proc.send_signal(signal.SIGKILL)
        old.proc.wait(timeout=30)
        new = self.start_worker(slot)
        fault.detail.update(slot=slot, killed_pid=old.proc.pid, new_pid=new.proc.pid,
                            check={"until": time.monotonic() + RECOVER_SECONDS, "started": time.monotonic()})
        self.pending.append(fault)

    def check_pending(self) -> None:
        now = time.monotonic()
        status = self.last
        for fault in list(self.pending):
            check = fault.detail["check"]
            if fault.kind == "server_kill":
                ok = (status.get("incarnation") and status.get("updates", 0) > fault.detail["resumed_version"]
                      and status.get("workers_connected", 0) >= 1)
                if ok:
                    fault.detail["recovered_seconds"] = round(now - check["started"], 1)
                    fault.detail["workers_back"] = status.get("workers_connected")
            else:
                mine = [w for w in status.get("workers", []) if w.get("pid") == fault.detail["new_pid"]]
                ok = bool(mine) and mine[0].get("pushes", 0) > 0
                if ok:
                    fault.detail["recovered_seconds"] = round(now - check["started"], 1)
            if ok or now > check["until"]:
                fault.survived = bool(ok)
                fault.detail.pop("check")
                self.pending.remove(fault)

    def disk_fill(self, fault: Fault, hold: float) -> None:
        if not self.mounted:
            fault.survived, fault.detail["skipped"] = None, self.report.disk_fill
            return
        start = self.status_now() or self.last
        filler = fill(self.disk)
        full_from = (self.status_now() or self.last).get("updates", 0)
        self._sleep(hold)
        end = self.status_now() or {}
        alive = self.server.proc.poll() is None
        filler.unlink()
        fault.detail.update(hold_seconds=hold, updates_before=start.get("updates"), updates_while_full=
                            (end.get("updates", 0) - full_from) if end else None,
                            disk_faults=end.get("disk_faults"), state=end.get("state"))
        fault.survived = alive and bool(end) and end["updates"] > full_from and end.get("state") == "running"

    def stall(self, fault: Fault, hold: float) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        before = self.rate(10.0)
        u0 = (self.status_now() or self.last).get("updates", 0)
        stalled = Stalled(self.address, self.cfg.stalled)
        t0 = time.monotonic()
        polled0 = self.report.statuses_polled
        try:
            self._sleep(hold)
            end = self.status_now()
            try:
                with self._grpc.insecure_channel(self.address) as ch:
                    health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                serving = health.status == health_pb2.HealthCheckResponse.SERVING
            except self._grpc.RpcError as err:
                serving = f"health check failed: {err.code().name}"
            ended = stalled.ended_early()
        finally:
            stalled.close()
        during = ((end or {}).get("updates", u0) - u0) / (time.monotonic() - t0)
        fault.detail.update(calls=self.cfg.stalled, hold_seconds=hold, updates_per_second_before=round(before, 1),
                            updates_per_second_during=round(during, 1), health=serving,
                            statuses_answered=self.report.statuses_polled - polled0, calls_ended_by_server=ended)
        fault.survived = (self.server.proc.poll() is None and end is not None and serving is True
                          and end["updates"] > u0)

    def _sleep(self, seconds: float) -> None:
        """Sleep, still settling pending checks."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.check_pending()
            time.sleep(0.2)

    # -- the run --
    def run(self) -> ChaosReport:
        started = time.time()
        self.out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        if self.disk.is_dir() and os.path.ismount(self.disk):
            unmount(self.disk)
        shutil.rmtree(self.disk, ignore_errors=True)
        why = mount_tmpfs(self.disk, self.cfg.tmpfs_mib)
        self.mounted = why is None
        if not self.mounted:
            self.report.disk_fill = f"disk fill skipped: cannot mount a tmpfs ({why})"
            console.print(f"[yellow]{self.report.disk_fill}[/yellow]")
        self.run_dir = self.disk / "run"
        poller = threading.Thread(target=self._poll, name="chaos-poller", daemon=True)
        try:
            self.start_server()
            for slot in range(self.cfg.workers):
                self.start_worker(slot)
            poller.start()
            self._wait_training()
            self._inject()
            self._wait_end()
        finally:
            self._stop.set()
            if poller.is_alive():
                poller.join()
            self._channel.close()
            for w in self.workers:
                if w is not None:
                    stop_process(w.proc)
            if self.server is not None:
                stop_process(self.server.proc)
            kept = self.out / "run"
            shutil.rmtree(kept, ignore_errors=True)
            if self.run_dir.exists():
                shutil.copytree(self.run_dir, kept)
            if self.mounted:
                unmount(self.disk)
            self.report.run_dir = str(kept)
        self.report.server_lives = self.lives
        self.report.wall_seconds = round(time.time() - started, 1)
        self._verify(self.out / "run")
        (self.out / "chaos.json").write_text(json.dumps(self.report.to_json(), indent=2, default=str) + "\n")
        return self.report

    def _wait_training(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.last.get("updates", 0) > 0:
                self.t0 = time.monotonic()
                return
            if self.server.proc.poll() is not None:
                raise RuntimeError(f"ps-serve exited {self.server.proc.returncode} before training started")
            time.sleep(0.1)
        raise RuntimeError("no update within 180 s of the start")

    def _run_over(self) -> bool:
        """The current server life exited by itself (the driver kills only inside server_kill)."""
        return self.server.proc.poll() is not None

    def _inject(self) -> None:
        for at, kind, hold in self.schedule:
            while self.elapsed() < at and not self._run_over():
                self.check_pending()
                self._tend_workers()
                time.sleep(0.1)
            if self._run_over():
                break
            fault = Fault(kind, round(self.elapsed(), 1))
            self.report.faults.append(fault)
            console.print(f"[dim]{fault.at_seconds:6.1f} s  {kind}[/dim]")
            getattr(self, kind)(fault, hold) if kind in ("disk_fill", "stall") else getattr(self, kind)(fault)

    def _tend_workers(self) -> None:
        """A worker that fails while the run goes on is not the driver's doing: note it, start another.
        Exit 0 is a worker the server told to stop (the run is over; the server is still writing)."""
        for slot, w in enumerate(self.workers):
            if w is not None and w.proc.poll() not in (None, 0) and not self._run_over():
                self.report.unexpected.append(f"worker pid {w.proc.pid} exited {w.proc.returncode} mid-run "
                                              f"(log {w.log_path.name}); restarted")
                self.start_worker(slot)

    def _wait_end(self) -> None:
        """After the last fault: the run ends by itself at its step budget (or we give up)."""
        deadline = time.monotonic() + max(180.0, self.cfg.minutes * 60)
        while not self._run_over() and time.monotonic() < deadline:
            self.check_pending()
            self._tend_workers()
            time.sleep(0.2)
        while self.pending and time.monotonic() < deadline:  # e.g. a worker restarted just before the end
            self.check_pending()
            time.sleep(0.2)
        for fault in self.pending:
            fault.survived = False
            fault.detail["why"] = "not confirmed before the run ended"
            fault.detail.pop("check", None)
        self.pending = []
        if not self._run_over():
            self.report.unexpected.append(f"the run did not end within {deadline - self.t0:.0f} s of its start; "
                                          f"stopped by the driver")
            stop_process(self.server.proc, timeout=60)
        self.report.final_exit_code = self.server.proc.returncode
        until = time.monotonic() + 30
        for w in self.workers:  # told to stop on their next push; one started late may still be starting
            if w is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.proc.wait(timeout=max(0.1, until - time.monotonic()))
                if w.proc.returncode not in (0, None):
                    self.report.unexpected.append(f"worker pid {w.proc.pid} exited {w.proc.returncode} at the end "
                                                  f"(log {w.log_path.name})")

    # -- the records --
    def _verify(self, run_dir: Path) -> None:
        r = self.report
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        r.finished = r.final_exit_code == 0 and bool(summary)
        if summary:
            r.updates, r.env_steps = summary["updates"], summary["env_steps"]
            r.final_mean100, r.stop_reason = summary.get("final_mean100"), summary.get("stop_reason")
            r.reached_budget = summary["env_steps"] >= r.budget or bool(summary.get("solved"))
        pushes = run_dir / "pushes.csv"
        if pushes.exists():
            with open(pushes, newline="") as f:
                rows = list(csv.DictReader(f))
            r.rows = len(rows)
            bad = [row for row in rows if not all(math.isfinite(float(row[k] or "nan"))
                                                  for k in ("grad_norm", "learning_rate"))]
            if bad:
                r.nan_seen.append(f"pushes.csv: {len(bad)} rows with a non-finite grad_norm or learning_rate")
            if r.updates is not None:
                with contextlib.suppress(ValueError):
                    r.versions_once = sorted(int(row["applied_version"]) for row in rows) == list(range(r.updates))
        params = run_dir / "params_final.npz"
        if params.exists():
            import numpy as np
            with np.load(params) as npz:
                for name in npz.files:
                    arr = npz[name]
                    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                        r.nan_seen.append(f"params_final.npz: {name}")
        else:
            r.unexpected.append("no params_final.npz")


def run_chaos(cfg: ChaosConfig) -> ChaosReport:
    return Chaos(cfg).run()


# --- the table -----------------------------------------------------------------------------------
def _yes(v) -> str:
    return "-" if v is None else "yes" if v else "NO"


def print_report(r: ChaosReport, cfg: ChaosConfig) -> None:
    rows = []
    for kind, label in (("server_kill", "server kill -9 + restart"), ("worker_kill", "worker kill -9 + restart"),
                        ("disk_fill", "disk filled to the last byte"), ("stall", f"{cfg.stalled} stalled calls")):
        faults = r.of(kind)
        done = [f for f in faults if not f.detail.get("skipped")]
        survived = sum(1 for f in done if f.survived)
        if kind == "server_kill":
            rec = [f.detail.get("recovered_seconds") for f in done if f.detail.get("recovered_seconds") is not None]
            note = f"back in {fmt(min(rec))}-{fmt(max(rec))} s" if rec else ""
        elif kind == "worker_kill":
            rec = [f.detail.get("recovered_seconds") for f in done if f.detail.get("recovered_seconds") is not None]
            note = f"new worker pushing in {fmt(min(rec))}-{fmt(max(rec))} s" if rec else ""
        elif kind == "disk_fill":
            note = r.disk_fill if r.disk_fill != "done" else "; ".join(
                f"{f.detail['hold_seconds']:.0f} s full, {f.detail['updates_while_full']} updates meanwhile, "
                f"faults {f.detail['disk_faults']}" for f in done)
        else:
            note = "; ".join(f"{f.detail['hold_seconds']:.0f} s, updates/s {f.detail['updates_per_second_before']}"
                             f" -> {f.detail['updates_per_second_during']}, health {f.detail['health']}"
                             for f in done)
        planned = sum(1 for _, k, _ in r.schedule if k == kind)
        rows.append([label, f"{len(done)} of {planned}", f"{survived}/{len(done)}", note])
    print_table("Faults", ["fault", "injected (of planned)", "survived", "detail"], rows)

    lost, per = r.lost, r.per_interval
    interval = statistics_mean(per)
    lost_cell = (f"max {max(lost)}, mean {statistics_mean(lost):.0f} (per kill: {', '.join(map(str, lost))})"
                 if lost else "-")
    rows = [
        ["updates lost per server kill", lost_cell],
        [f"updates in one checkpoint interval ({cfg.checkpoint_every:g} s)",
         f"{interval:.0f} (lost/interval max {max(l / p for l, p in zip(lost, per)):.2f})" if lost and interval else "-"],
        ["rows of pushes.csv == summary updates", f"{_yes(r.rows is not None and r.rows == r.updates)} "
                                                   f"({fmt(r.rows)} rows, {fmt(r.updates)} updates; versions each once: "
                                                   f"{_yes(r.versions_once)})"],
        ["NaN or Infinity seen", f"{'NO' if not r.nan_seen else 'YES: ' + '; '.join(r.nan_seen)} "
                                 f"({r.statuses_polled} status documents, pushes.csv, params_final.npz)"],
        ["server peak RSS (max over its lives)", f"{r.peak_rss_mib:.0f} MiB ({r.server_lives} lives)"],
        ["run reached its step budget", f"{_yes(r.reached_budget)} (T {fmt(r.env_steps, thousands=True)} of "
                                        f"{r.budget:,}; last life exit {r.final_exit_code}; {r.stop_reason})"],
        ["final mean100", fmt(r.final_mean100)],
        ["wall time", f"{r.wall_seconds:.0f} s"],
        ["anything unexpected", "none" if not r.unexpected else f"{len(r.unexpected)}: " + " | ".join(r.unexpected)],
    ]
    print_table("Records and outcome", ["measure", "value"], rows,
                caption=f"CartPole-v1, {cfg.workers} workers x {cfg.envs} envs, --inject-delay-ms {cfg.delay_ms}, "
                        f"--checkpoint-every {cfg.checkpoint_every:g}, --target-return none --total-steps {r.budget:,}; "
                        f"seed {cfg.seed}; report in {Path(cfg.out_dir) / 'chaos.json'}")


def statistics_mean(values) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else math.nan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="planned length of the run (default 5)")
    p.add_argument("--seed", type=int, default=0, help="run seed and the fault schedule's (default 0)")
    p.add_argument("--out-dir", type=Path, default=Path("bench/results/chaos"))
    p.add_argument("--workers", type=int, default=3, help="worker-run processes (default 3)")
    p.add_argument("--checkpoint-every", type=float, default=5.0, help="seconds (default 5)")
    args = p.parse_args(argv)
    cfg = ChaosConfig(minutes=args.minutes, seed=args.seed, out_dir=args.out_dir, workers=args.workers,
                      checkpoint_every=args.checkpoint_every)
    console.print(f"chaos: {cfg.minutes:g} min planned, budget {cfg.budget():,} env steps, schedule "
                  f"{[(t, k) for t, k, _ in draw_schedule(cfg)]}")
    report = run_chaos(cfg)
    print_report(report, cfg)
    ok = (report.finished and all(f.survived for f in report.faults if not f.detail.get("skipped"))
          and report.rows == report.updates and not report.nan_seen)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
