"""Prometheus metrics of the parameter server, served on /metrics (prometheus-client).

Names carry their units (`_total`, `_seconds`, `_versions`). Per-worker series are labelled by
worker id and removed when the worker leaves or times out, so their number stays bounded by the
connected workers.
"""
from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ps.api.source import Push, PushOutcome
from ps.core.observers import Observer
from ps.core.staleness import BUCKETS

log = logging.getLogger("ps.metrics")

STALENESS_BUCKETS = (*BUCKETS, float("inf"))
# A push costs ~0.1-5 ms on the server (CartPole to Atari sized models); the defaults start at 5 ms.
SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, float("inf"))


class PrometheusMetrics(Observer):
    """May run concurrently: prometheus-client metrics are thread-safe; a lock guards the per-worker set."""

    def __init__(self, registry: CollectorRegistry | None = None, learning_rate: float = 0.0) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.updates = Counter("a3c_ps_updates_total", "Applied pushes (each one increments the version).", registry=r)
        self.env_steps = Counter("a3c_ps_env_steps_total", "Environment frames reported by workers (T).", registry=r)
        self.staleness = Histogram("a3c_ps_gradient_staleness_versions",
                                   "Updates applied between a gradient's pull and its apply.",
                                   buckets=STALENESS_BUCKETS, registry=r)
        self.push_seconds = Histogram("a3c_ps_push_seconds", "Server time per push, decode to reply.",
                                      buckets=SECONDS_BUCKETS, registry=r)
        self.apply_seconds = Histogram("a3c_ps_apply_seconds", "Time to apply one update to the parameters.",
                                       buckets=SECONDS_BUCKETS, registry=r)
        self.rejected = Counter("a3c_ps_rejected_pushes_total", "Requests refused as bad input, by reason.",
                                ["reason"], registry=r)
        self.dropped = Counter("a3c_ps_dropped_pushes_total", "Valid pushes a staleness policy did not apply.",
                               ["reason"], registry=r)
        self.workers_connected = Gauge("a3c_ps_workers_connected", "Workers currently connected.", registry=r)
        self.mean100 = Gauge("a3c_ps_episode_return_mean100", "Mean return of the last 100 episodes.", registry=r)
        self.learning_rate = Gauge("a3c_ps_learning_rate", "Learning rate of the latest update.", registry=r)
        self.learning_rate.set(learning_rate)
        self.worker_pushes = Counter("a3c_ps_worker_pushes_total", "Pushes per connected worker.",
                                     ["worker_id"], registry=r)
        self.worker_env_steps = Counter("a3c_ps_worker_env_steps_total", "Environment frames per connected worker.",
                                        ["worker_id"], registry=r)
        self.worker_staleness = Gauge("a3c_ps_worker_mean_staleness_versions",
                                      "Mean staleness of a connected worker's applied pushes.", ["worker_id"], registry=r)
        self.disk_faults = Counter("a3c_ps_disk_faults_total",
                                   "Failed writes of the run's records (a full disk ...), by kind; training goes on.",
                                   ["kind"], registry=r)
        self.eval_return = Gauge("a3c_ps_eval_return_mean", "Mean return of the latest evaluation round.", registry=r)
        self.eval_version = Gauge("a3c_ps_eval_version", "Parameter version the latest evaluation round played.",
                                  registry=r)
        self.evaluations = Counter("a3c_ps_evaluations_total", "Evaluation rounds reported by evaluators.", registry=r)
        self._per_worker = (self.worker_pushes, self.worker_env_steps, self.worker_staleness)
        self._connected: set[int] = set()
        self._staleness_sums: dict[int, tuple[int, int]] = {}   # worker id -> (sum, count)
        self._lock = threading.Lock()
        self._httpd = None

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0 picks a free port); returns the bound port."""
        self._httpd, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self._httpd.server_port

    def on_push(self, push: Push, event: PushOutcome) -> None:
        self.env_steps.inc(push.env_steps)
        self.push_seconds.observe(event.server_seconds)
        if event.applied:
            self.updates.inc()
            self.staleness.observe(event.staleness)
            self.apply_seconds.observe(event.apply_seconds)
            self.learning_rate.set(event.learning_rate)
        else:
            self.dropped.labels(event.dropped_reason or "dropped").inc()
        if event.mean100 is not None:
            self.mean100.set(event.mean100)
        with self._lock:
            if push.worker_id not in self._connected:
                return  # a late push from a worker that already left: no series to revive
            label = str(push.worker_id)
            self.worker_pushes.labels(label).inc()
            self.worker_env_steps.labels(label).inc(push.env_steps)
            if event.applied:
                total, count = self._staleness_sums.get(push.worker_id, (0, 0))
                total, count = total + event.staleness, count + 1
                self._staleness_sums[push.worker_id] = (total, count)
                self.worker_staleness.labels(label).set(total / count)

    def on_evaluation(self, evaluation) -> None:
        self.eval_return.set(evaluation.mean)
        self.eval_version.set(evaluation.version)
        self.evaluations.inc()

    def on_disk_fault(self, kind: str, count: int = 1) -> None:
        """A DiskFaults listener (ps/records/faults.py)."""
        self.disk_faults.labels(kind).inc(count)

    def on_reject(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def on_workers(self, connected: int, worker_ids: list[int]) -> None:
        self.workers_connected.set(connected)
        with self._lock:
            for gone in self._connected - set(worker_ids):
                self._staleness_sums.pop(gone, None)
                for metric in self._per_worker:
                    try:
                        metric.remove(str(gone))
                    except KeyError:
                        pass  # it never pushed
            self._connected = set(worker_ids)

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def serve_metrics(core, host: str, port: int, faults=None) -> PrometheusMetrics:
    """Attach the metrics observer to the core and serve /metrics on host (the server's --metrics-host,
    loopback by default: /metrics has no authentication); the bound port goes to run_dir/metrics_port.
    With `faults` (a DiskFaults), its counts are exported as a3c_ps_disk_faults_total{kind}."""
    metrics = PrometheusMetrics(learning_rate=core.spec.lr)
    if core.config.shards > 1:  # which shard this endpoint is: every shard serves its own /metrics
        Gauge("a3c_ps_shard_info", "This server's shard of a sharded run (ps/api/shards.py).", ["shard", "shards"],
              registry=metrics.registry).labels(str(core.config.shard_index), str(core.config.shards)).set(1)
    if faults is not None:
        faults.subscribe(metrics.on_disk_fault)
    try:
        bound = metrics.serve(host, port)
    except OSError as err:
        raise OSError(f"cannot serve metrics on {host}:{port}: {err.strerror or err}") from None
    core.observers.append(metrics)
    (core.run_dir / "metrics_port").write_text(f"{bound}\n")
    log.info("Prometheus metrics on http://%s:%d/metrics", host, bound)
    return metrics
