"""The cluster exactly as deploy/k8s renders it, run as real processes on separate network hosts.

Each container's command, args and environment come from the RENDERED manifests (ConfigMap and Secret
values substituted, $(VAR) expanded as Kubernetes does). The server runs in one network namespace, each
worker replica in its own, joined by veth pairs on a bridge; in the workers' namespaces the Service name
resolves to the server's address. The one thing the test changes is the run's ConfigMap (seed, a lower
target), as a user's overlay would. Then the same cluster runs again with 20 ms of delay on every
worker's link, and the two staleness distributions are printed side by side.
"""
from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import reached
from tests.integration.kube import Process, container_process, containers, find, kubectl, render
from tests.integration.netns import Network, cannot_make_namespaces

OVERLAY = "overlays/local"
SERVICE = "a3c-ps"
BIN = Path(sys.executable).parent  # the console scripts the image puts on PATH
TARGET_RETURN = 150  # a uniformly random policy averages ~22 on CartPole-v1
RUN_CONFIG = {"A3C_SEED": "1", "A3C_TARGET_RETURN": str(TARGET_RETURN), "A3C_TOTAL_STEPS": "300000"}
DELAY_MS = 20
RUN_TIMEOUT_SECONDS = 150

_why_not = None if kubectl() is None else cannot_make_namespaces()
pytestmark = [pytest.mark.serial,  # a link delay measured against the round trip
              pytest.mark.skipif(kubectl() is None, reason="kubectl (with kustomize) is not installed"),
              pytest.mark.skipif(_why_not is not None, reason=f"no network namespaces here: {_why_not}")]

# What the readiness probe asks (grpc.health.v1 Check), asked from a worker's host through the Service name;
# once it passes, one scrape of the metrics port the Prometheus annotations name, as Prometheus would.
PROBE = """
import sys, time, urllib.request, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
address, service, metrics_url, deadline = sys.argv[1], sys.argv[2], sys.argv[3], time.monotonic() + 60
with grpc.insecure_channel(address) as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    while time.monotonic() < deadline:
        try:
            if stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status == 1:
                break
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    else:
        sys.exit("never SERVING")
body = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(metrics_url, timeout=10).read().decode()
sys.exit(0 if "a3c_ps_gradient_staleness_versions_bucket" in body else f"no staleness histogram at {metrics_url}")
"""

# The server image has no torch: the server runs with torch made unimportable, as it would be there.
NO_TORCH = 'raise ImportError("no torch in the server image (deploy/docker/Dockerfile --target server)")\n'


@dataclass(frozen=True)
class Cluster:
    server: Process
    worker: Process
    workers: int
    grpc_port: int
    metrics_url: str


def cluster_from_manifests(objects: list[dict]) -> Cluster:
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith("a3c-run"):
            obj["data"].update(RUN_CONFIG)
    server_job, worker_job = find(objects, "Job", SERVICE), find(objects, "Job", "a3c-worker")
    assert server_job["spec"]["completions"] == 1
    server, worker = (container_process(objects, containers(w)[0]) for w in (server_job, worker_job))
    grpc_port = next(p["port"] for p in find(objects, "Service", SERVICE)["spec"]["ports"] if p["name"] == "grpc")
    scrape = server_job["spec"]["template"]["metadata"]["annotations"]
    metrics_url = f"http://{SERVICE}:{scrape['prometheus.io/port']}{scrape.get('prometheus.io/path', '/metrics')}"
    return Cluster(server, worker, worker_job["spec"]["parallelism"], grpc_port, metrics_url)


def host_process(pod: Process, volumes: dict[str, Path], home: Path) -> tuple[list[str], dict[str, str]]:
    """The container's argv and env on this machine: its executable from our venv, volumes as directories."""
    def local(arg: str) -> str:
        for mount_path, directory in volumes.items():
            if arg == mount_path or arg.startswith(mount_path.rstrip("/") + "/"):
                return str(directory) + arg[len(mount_path.rstrip("/")):]
        return arg
    argv = [str(BIN / pod.argv[0]), *(local(a) for a in pod.argv[1:])]
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "PYTHONUNBUFFERED": "1", **pod.env}
    return argv, env


def read_pushes(run_dir: Path) -> list[dict]:
    with open(run_dir / "pushes.csv") as f:
        return [row for row in csv.DictReader(f) if row["applied"] in ("1", "True", "true")]


def push_times_by_worker(rows: list[dict]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for row in rows:
        times.setdefault(row["worker_id"], []).append(float(row["time_seconds"]))
    return {worker: sorted(t) for worker, t in times.items()}


def steady_state(rows: list[dict]) -> list[dict]:
    """The pushes made while every worker was pushing: from the last worker's first push to the first
    worker's last (start-up and shut-down skew say nothing about the network)."""
    times = push_times_by_worker(rows).values()
    start, end = max(t[0] for t in times), min(t[-1] for t in times)
    return [row for row in rows if start <= float(row["time_seconds"]) <= end]


def push_intervals_seconds(rows: list[dict]) -> list[float]:
    """Per worker, the time between its consecutive pushes as the server saw them: its round trip."""
    return [b - a for t in push_times_by_worker(rows).values() for a, b in zip(t, t[1:])]


def staleness(rows: list[dict]) -> list[int]:
    return [int(row["staleness"]) for row in rows]


def run_cluster(net: Network, cluster: Cluster, tmp: Path, name: str) -> tuple[dict, list[dict]]:
    """Start the server pod's process, wait until its readiness check passes, start the worker replicas,
    and wait for the run to end. Returns summary.json and the applied rows of pushes.csv."""
    volume = tmp / name / "pvc"
    volume.mkdir(parents=True)
    home = tmp / "home"  # shared by both runs: matplotlib builds its font cache once
    argv, env = host_process(cluster.server, {m: volume for m in cluster.server.mounts}, home)
    env["PYTHONPATH"] = str(tmp / "no-torch")
    log = open(tmp / name / "server.log", "w+")
    processes = [net.popen("ps", argv, env, hostname=f"{SERVICE}-0", stdout=log, stderr=subprocess.STDOUT)]
    try:
        address = cluster.worker.argv[cluster.worker.argv.index("--ps") + 1]
        service = (cluster.server.readiness or {}).get("grpc", {}).get("service", "")
        probe = net.popen("w0", [sys.executable, "-c", PROBE, address, service, cluster.metrics_url],
                          {"PATH": env["PATH"]}, stderr=subprocess.PIPE, text=True)
        processes.append(probe)
        assert probe.wait(timeout=90) == 0, f"readiness or scrape failed: {probe.stderr.read()}\n{log_text(log)}"
        for i in range(cluster.workers):
            w_argv, w_env = host_process(cluster.worker, {}, home)
            processes.append(net.popen(f"w{i}", w_argv, w_env, hostname=f"a3c-worker-{i}",
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        assert processes[0].wait(timeout=RUN_TIMEOUT_SECONDS) == 0, log_text(log)
        for worker in processes[2:]:
            assert worker.wait(timeout=30) == 0, worker.stdout.read()
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
    run_dir = Path(argv[argv.index("--run-dir") + 1])
    return json.loads((run_dir / "summary.json").read_text()), read_pushes(run_dir)


def log_text(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-4000:]


def print_distributions(runs: dict[str, list[dict]]) -> None:
    counts = {name: Counter(staleness(rows)) for name, rows in runs.items()}
    print(f"\nstaleness (versions) of the pushes made while all workers ran, rendered {OVERLAY} manifests:")
    print("staleness " + "".join(f"{name:>16}" for name in runs))
    for s in range(max(max(c) for c in counts.values()) + 1):
        print(f"{s:>9} " + "".join(f"{counts[n][s] / sum(counts[n].values()):>16.1%}" for n in runs))
    figures = (("mean", lambda rows: statistics.fmean(staleness(rows))),
               ("std dev", lambda rows: statistics.pstdev(staleness(rows))),
               ("push interval p50 ms", lambda rows: 1000 * statistics.median(push_intervals_seconds(rows))),
               ("pushes", len))
    for label, figure in figures:
        print(f"{label:>9} " + "".join(f"{figure(rows):>16.2f}" for rows in runs.values()))


def test_rendered_cluster_trains_cartpole_across_network_namespaces_with_and_without_link_delay(tmp_path):
    cluster = cluster_from_manifests(render(OVERLAY))
    assert cluster.worker.argv[1:3] == ["--ps", f"{SERVICE}:{cluster.grpc_port}"]
    assert cluster.workers >= 2
    (tmp_path / "no-torch" / "torch").mkdir(parents=True)
    (tmp_path / "no-torch" / "torch" / "__init__.py").write_text(NO_TORCH)
    net = Network()
    try:
        net.add_host("ps", 1)
        for i in range(cluster.workers):
            net.add_host(f"w{i}", 10 + i)
            net.resolve(f"w{i}", [SERVICE, f"{SERVICE}.default.svc.cluster.local"], to="ps")
        plain_summary, plain = run_cluster(net, cluster, tmp_path, "plain")
        how = {net.delay(f"w{i}", DELAY_MS, towards="ps") for i in range(cluster.workers)}
        delayed_summary, delayed = run_cluster(net, cluster, tmp_path, "delayed")
    finally:
        net.close()
    assert net.leftovers() == []

    print(f"\n+{DELAY_MS} ms on each worker's link by {', '.join(sorted(how))}")
    runs = {"no delay": steady_state(plain), f"+{DELAY_MS} ms": steady_state(delayed)}
    print_distributions(runs)
    for summary in (plain_summary, delayed_summary):
        assert reached(summary, TARGET_RETURN)  # learnt over the network, with and without delay
        assert sorted(w["host"] for w in summary["workers"]) == [f"a3c-worker-{i}" for i in range(cluster.workers)]
    # Every delayed push waited DELAY_MS on the wire, so the workers' round trips rose by at least that.
    assert statistics.median(push_intervals_seconds(delayed)) >= DELAY_MS / 1000
    assert statistics.median(push_intervals_seconds(delayed)) > statistics.median(push_intervals_seconds(plain))
    # The shift, printed above and not asserted: a fixed delay common to all links makes the round trips
    # regular, so the pushes interleave and staleness usually concentrates at N-1 (jitter is small against
    # a 20 ms delay, large against a sub-millisecond round trip). Usually is not always: on a loaded machine
    # one run in a dozen showed no difference, so only the round trip above is asserted. The mean does not
    # move: while N workers push, each push falls in exactly one pull-to-apply interval of every other
    # worker, so the mean is ~N-1 with or without a common delay; the delay can change only the shape.


def test_network_namespaces_are_removed_also_when_the_test_body_fails():
    with pytest.raises(RuntimeError, match="the body failed"):
        with Network() as net:
            net.add_host("ps", 1)
            net.add_host("w0", 10)
            net.resolve("w0", [SERVICE], to="ps")
            net.delay("w0", DELAY_MS, towards="ps")
            for host in ("ps", "w0"):  # private: only the test subnet and loopback, no way out
                assert [r for r in net.routes(host) if not r.startswith((f"{net.subnet}.", "local ", "broadcast "))] \
                    == [], net.routes(host)
            delay_lines = list(net._delay_lines.values())
            raise RuntimeError("the body failed")
    assert net.leftovers() == []
    assert all(line.poll() is not None for line in delay_lines)
