"""Gorila's sharded parameter server, written down: which contiguous slice of the flat buffer each of
N shards owns.

Everything the server does to the parameters is elementwise over the flat buffer (the optimizers,
the target copy), so a shard applies its slice of every push exactly as one server would. The
exceptions are kept whole: a run of consecutive buffer tensors (a group of running moments, merged
as one) is never cut, and the gradient's global norm comes with the push (PushRequest.grad_norm).
Both sides compute the slices from the layout alone, so a worker and every shard agree on them.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from ps.api.layout import Layout

MAX_SHARDS = 64


class ShardSlice(NamedTuple):
    index: int
    count: int
    start: int  # first element of the flat buffer this shard owns
    end: int    # one past its last

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def whole(self) -> bool:
        return self.count == 1


def _atomic_spans(layout: Layout) -> list[tuple[int, int]]:
    """[start, end) spans no cut may fall inside: each run of consecutive buffer tensors."""
    spans, run = [], None
    for entry, start in layout.offsets():
        if entry.buffer:
            run = (run[0], start + entry.size) if run else (start, start + entry.size)
        elif run:
            spans.append(run)
            run = None
    if run:
        spans.append(run)
    return spans


def shard_slices(layout: Layout, count: int) -> list[ShardSlice]:
    """The N contiguous slices of the flat buffer, as equal in size as the atomic spans allow (a cut
    that would fall inside one moves to its end). A slice may be empty when N exceeds what the
    layout can be cut into; every element belongs to exactly one slice."""
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shards must be 1..{MAX_SHARDS}, got {count}")
    size, spans = layout.size, _atomic_spans(layout)
    cuts = [0]
    for i in range(1, count):
        cut = max(round(size * i / count), cuts[-1])
        for lo, hi in spans:
            if lo < cut < hi:
                cut = hi
        cuts.append(min(cut, size))
    cuts.append(size)
    return [ShardSlice(i, count, cuts[i], cuts[i + 1]) for i in range(count)]


def shard_slice(layout: Layout, index: int, count: int) -> ShardSlice:
    return shard_slices(layout, count)[index]


def shard_addresses(template: str, count: int) -> tuple[str, ...]:
    """--shard-addresses: a comma-separated list of host:port, one per shard, or one template with
    {i} for the shard's index (a StatefulSet's pods behind a headless Service: ps-{i}.ps-shards:50051)."""
    if "{i}" in template:
        return tuple(template.replace("{i}", str(i)) for i in range(count))
    return tuple(a.strip() for a in template.split(",") if a.strip())


def ordinal(hostname: str) -> int:
    """--shard auto: a StatefulSet pod's index, the number its hostname ends with (ps-shard-3 -> 3)."""
    match = re.search(r"-(\d+)$", hostname)
    if match is None:
        raise ValueError(f"--shard auto needs a hostname ending in -N (a StatefulSet pod), got {hostname!r}")
    return int(match.group(1))
