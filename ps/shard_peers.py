"""A shard that starts again (killed and restarted, from its checkpoint or from nothing) asks the other
shards how far the run has come, so that its T, and with it the learning-rate schedule and the stop,
are the others' again: the largest T any of them reports, and the stop one of them already decided.
"""
from __future__ import annotations

import logging

from ps.api.channel import load_token
from ps.config import ServerConfig
from ps.tools.status import StatusClient

log = logging.getLogger("ps")
PEER_TIMEOUT_SECONDS = 3.0


def peer_progress(config: ServerConfig, addresses: tuple[str, ...]) -> tuple[int, str]:
    """(the largest T, the first stop reason) the other shards answer with; (0, "") when none does
    (at a run's first start they are all starting too)."""
    token = load_token(config.token_file)
    steps, reason = 0, ""
    for i, address in enumerate(addresses):
        if i == config.shard_index or address.endswith(":0"):
            continue
        client = StatusClient(address, PEER_TIMEOUT_SECONDS, token, config.tls_cert)
        try:
            status = client.fetch()
        except Exception as err:  # noqa: BLE001 - a peer that does not answer is simply not counted
            log.info("shard %d at %s did not answer (%s)", i, address, type(err).__name__)
            continue
        finally:
            client.close()
        steps = max(steps, int(status.get("env_steps") or 0))
        reason = reason or (f"{status['stop_reason']} (said by shard {i})" if status.get("stop_reason") else "")
    return steps, reason
