"""What one shard of a sharded run keeps beyond an ordinary server's state (ps/api/shards.py): which
shard it is and every shard's address, the check of the whole gradient's norm a push carries, and,
on shard 0, the run's staleness (each push's largest over the shards, as its worker reports it)."""
from __future__ import annotations

import math

from ps.api.layout import Layout
from ps.api.shards import ShardSlice, shard_addresses, shard_slice
from ps.config import ServerConfig
from ps.core.errors import invalid
from ps.core.staleness import StalenessStats

MAX_RUN_STALENESS = 1 << 20  # a push's staleness over all shards, as a worker reports it: at most this


class ShardRole:
    """Not thread-safe: the caller holds the server lock (addresses is read without it: a tuple)."""

    def __init__(self, config: ServerConfig) -> None:
        self.index, self.count = config.shard_index, config.shards
        self.addresses = shard_addresses(config.shard_addresses, config.shards) if config.shard_addresses else ()
        self.run_staleness = StalenessStats()

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def slice_of(self, layout: Layout) -> ShardSlice:
        return shard_slice(layout, self.index, self.count)

    def global_norm(self, claimed: float, slice_norm: float) -> float:
        """The whole gradient's norm, which the worker sends (a slice's own would clip each slice by a
        different scale): finite and at least this slice's own, else the push is refused."""
        if not (math.isfinite(claimed) and claimed >= slice_norm * (1 - 1e-9)):
            raise invalid("bad_norm", f"grad_norm {claimed!r} is not the whole gradient's norm: this shard's "
                                      f"slice alone has {slice_norm:.6g} (a sharded push carries the whole "
                                      f"gradient's L2 norm)")
        return claimed

    def record_run_staleness(self, value: int) -> None:
        """A worker's previous push's staleness, the largest over the shards. Another shard's version may
        be ahead of this one's (it restarted), so no bound but a sane one."""
        if not self.sharded or not 0 <= value <= MAX_RUN_STALENESS:
            raise invalid("bad_run_staleness", f"run_staleness {value} is not a staleness of a sharded run "
                                               f"(0..{MAX_RUN_STALENESS}, and only with --shards)")
        self.run_staleness.record(value)

    def bound(self, port: int) -> None:
        """This shard's own entry asked for a free port (host:0, as the local launcher gives shard 0):
        hand the workers the bound one."""
        if self.addresses and self.addresses[self.index].endswith(":0"):
            own = f"{self.addresses[self.index][:-2]}:{port}"
            self.addresses = (*self.addresses[:self.index], own, *self.addresses[self.index + 1:])

    def status(self, held: ShardSlice | None) -> dict | None:
        """The shard's index, its slice of the buffer (once the layout is known) and every shard's address."""
        if not self.sharded:
            return None
        return {"index": self.index, "count": self.count, "addresses": list(self.addresses),
                "start": held.start if held else None, "end": held.end if held else None}
