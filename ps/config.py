"""The server's own configuration (ServerConfig): how ps-serve runs; never sent to workers.

A frozen dataclass validated at construction, so a bad flag fails at start with a message that says
what is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from tyro.conf import arg  # names a field's flag where it is not --field-name (ps/options.py)

from ps.api.shards import MAX_SHARDS, ordinal, shard_addresses
from ps.api.spec import ConfigError


@dataclass(frozen=True)
class ServerConfig:
    """How the server runs (not sent to workers)."""

    host: str = "127.0.0.1"
    """Address to bind; loopback by default."""
    port: int = 50051
    """gRPC port; 0 picks a free one (printed at start and written to run_dir/port)."""
    run_dir: str = "runs/default"
    """Where pushes.csv, summary.json and the final parameters go."""
    max_workers: int = 0
    """Threads running the handlers with --sync, where each worker waiting in a round holds one; 0 picks 64. Without --sync the handlers run on the server's event loop."""
    max_message_bytes: int = 16 * 1024 * 1024
    """Largest gRPC message either way (the largest built-in network, Atari with an LSTM, is ~5 MB)."""
    max_inflight_bytes: int = 0
    """Bytes of requests the server receives at once; past it a call waits briefly, then gets RESOURCE_EXHAUSTED (workers back off and retry). 0 = 128 requests of the largest size (2 x --max-message-bytes)."""
    max_calls: int = 256
    """Calls the server holds at once, waiting ones included (the rest get RESOURCE_EXHAUSTED and workers retry); it bounds the replies a client can leave unread, at most 32 per connection."""
    request_timeout_seconds: float = 30.0
    """A call whose request has not fully arrived this long after it began is refused (DEADLINE_EXCEEDED), and its share of --max-inflight-bytes freed."""
    progress_seconds: float = 1.0
    """Period of the progress line."""
    stop_grace_seconds: float = 10.0
    """After the run ends, how long to wait for workers to hear 'stop' before exiting."""
    worker_timeout_seconds: Annotated[float, arg(name="worker-timeout")] = 30.0
    """A worker silent for this long is dropped: its id is gone (a later call gets NOT_FOUND and it registers again)."""
    max_registered_workers: int = 1024
    """Most workers registered at once; Register is refused (RESOURCE_EXHAUSTED) beyond it until some leave or time out."""
    # --- observability (metrics, status, TensorBoard, report) ---
    metrics_port: int = -1
    """Port of the Prometheus /metrics endpoint (on --metrics-host); -1 turns it off, 0 picks a free one (written to run_dir/metrics_port)."""
    metrics_host: str = "127.0.0.1"
    """Address /metrics binds; loopback by default, since /metrics has no authentication."""
    # --- faults, checkpoints and security (ps/records/checkpoint.py, ps/service/auth.py) ---
    checkpoint_every_seconds: Annotated[float, arg(name="checkpoint-every")] = 30.0
    """Write a checkpoint (parameters, optimizer statistics, T, version ...) this often, and at stop; 0 = only at stop."""
    fresh: bool = False
    """Start over even if run_dir holds a checkpoint (the old one is moved to run_dir/replaced-<time>/)."""
    token_file: str = ""
    """File holding the shared token every call must carry (or set A3C_TOKEN); empty and no A3C_TOKEN = no authentication."""
    insecure: bool = False
    """Allow binding a non-loopback --host without a token."""
    tls_cert: str = ""
    """PEM certificate chain for TLS (with --tls-key); empty = plaintext."""
    tls_key: str = ""
    """PEM private key for TLS (with --tls-cert)."""
    # --- shards (Gorila's sharded parameter server: ps/api/shards.py) ---
    shards: int = 1
    """Split the parameters over N server shards, each owning a contiguous slice (and its optimizer statistics); workers push each shard its slice."""
    shard: str = ""
    """With --shards N: run only shard I here (0..N-1; 'auto' takes it from a StatefulSet pod's hostname). Empty: this process runs shard 0 and starts the others on this host."""
    resume_tag: str = ""
    """Resume from the newest checkpoint with this tag (a sharded run's checkpoints are tagged by the instant all shards wrote them) instead of the newest; ps-serve --shards N picks it."""
    shard_addresses: str = ""
    """With --shard: every shard's host:port, comma-separated in shard order, or one template with {i} (ps-{i}.ps-shards:50051). Shard 0 hands them to the workers."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {self.port}")
        if self.max_workers < 0:
            raise ConfigError(f"--max-workers must be >= 0 (0 picks them), got {self.max_workers}")
        if self.max_message_bytes < 4 * 1024 * 1024:
            raise ConfigError("--max-message-bytes must be at least 4 MiB")
        if self.max_calls < 8:
            raise ConfigError(f"--max-calls must be at least 8, got {self.max_calls}")
        if self.max_inflight_bytes < 0 or self.request_timeout_seconds <= 0:
            raise ConfigError("--max-inflight-bytes must be >= 0 (0 picks it) and --request-timeout-seconds > 0")
        if not -1 <= self.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port must be -1 (off) or in 0..65535, got {self.metrics_port}")
        if self.checkpoint_every_seconds < 0 or self.worker_timeout_seconds <= 0:
            raise ConfigError("--checkpoint-every must be >= 0 and --worker-timeout > 0")
        if self.max_registered_workers <= 0:
            raise ConfigError(f"--max-registered-workers must be > 0, got {self.max_registered_workers}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ConfigError(f"--shards must be in 1..{MAX_SHARDS}, got {self.shards}")
        if self.shard not in ("", "auto") and not (self.shard.isdigit() and int(self.shard) < self.shards):
            raise ConfigError(f"--shard must be 'auto' or in 0..{self.shards - 1} (--shards {self.shards}), "
                              f"got {self.shard!r}")
        if self.shard == "auto":
            import socket
            try:
                index = ordinal(socket.gethostname())
            except ValueError as err:
                raise ConfigError(str(err)) from None
            if index >= self.shards:
                raise ConfigError(f"--shard auto: this pod's ordinal {index} is not below --shards {self.shards}")
        if self.shard_addresses and len(shard_addresses(self.shard_addresses, self.shards)) != self.shards:
            raise ConfigError(f"--shard-addresses must name {self.shards} shards (one per --shards), got "
                              f"{self.shard_addresses!r}")

    @property
    def shard_index(self) -> int:
        """This process's shard: --shard, or the pod's ordinal with 'auto'; 0 when unsharded."""
        if self.shard == "auto":
            import socket
            return ordinal(socket.gethostname())
        return int(self.shard or 0)
