"""ps-status: one screen about a running parameter server, served by its Status RPC.

    ps-status --ps host:50051            # run, state, throughput, return, staleness histogram, workers
    ps-status --ps host:50051 --watch    # the same, refreshed live until Ctrl-C or the run ends
    ps-status --ps host:50051 --json     # the status document, for scripts

It reads nothing from disk, so it works from any host that reaches the server.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

BAR_WIDTH = 40


class StatusClient:
    """The one place ps-status opens its channel (credentials or TLS options go here)."""

    def __init__(self, address: str, timeout: float, token: str = "", tls_ca: str = "") -> None:
        from ps.api.v1 import parameter_server_pb2 as pb
        from ps.api.v1 import parameter_server_pb2_grpc as pb_grpc
        from ps.api.channel import call_metadata, client_channel
        self.address, self.timeout = address, timeout
        self._request = pb.StatusRequest()
        self._channel = client_channel(address, tls_ca)
        self._stub = pb_grpc.ParameterServerStub(self._channel)
        self._metadata = call_metadata(token)

    def fetch(self) -> dict:
        """The status document; raises grpc.RpcError when the server does not answer."""
        reply = self._stub.Status(self._request, timeout=self.timeout, metadata=self._metadata)
        return json.loads(reply.status_json)

    def close(self) -> None:
        self._channel.close()


# --- the screen ----------------------------------------------------------------------------------
def spec_lines(status: dict) -> list[str]:
    """The run spec in two short lines (`--json` has every field)."""
    spec = status.get("run_spec", {})
    target = spec.get("target_return")
    return [f"run  {spec.get('env_id')}  {spec.get('algo')}  seed {spec.get('seed')}  "
            f"total {spec.get('total_steps', 0):,} steps  target {'none' if target is None else f'{target:g}'}",
            f"     t_max {spec.get('t_max')} x {spec.get('envs_per_worker')} envs  lr {spec.get('lr'):g}  "
            f"gamma {spec.get('gamma'):g}  entropy beta {spec.get('entropy_beta', 0):g}"]


def staleness_lines(st: dict) -> list[str]:
    """The staleness histogram drawn in text, one bar per bucket, plus its percentiles."""
    hist = st.get("histogram", {})
    top = max(hist.values(), default=0) or 1
    total = max(st.get("count", 0), 1)
    lines = [f"staleness  p50 {st['p50']}  p90 {st['p90']}  p99 {st['p99']}  max {st['max']}  "
             f"mean {st.get('mean', 0)}  ({st.get('count', 0):,} applied pushes)"]
    for label, count in hist.items():
        bar = "█" * round(BAR_WIDTH * count / top) if count else ""
        lines.append(f"  {label:>6} | {bar:<{BAR_WIDTH}} {count:>9,} {count / total:6.1%}")
    return lines


def workers_table(status: dict) -> Table:
    workers = status.get("workers", [])
    with_epsilon = any("epsilon" in w.get("stats", {}) for w in workers)
    table = Table(title=f"workers ({status.get('workers_connected', 0)} connected)", title_justify="left",
                  box=None, header_style="bold")
    for name, justify in (("id", "right"), ("host", "left"), ("last seen", "right"), ("pushes", "right"),
                          ("env steps", "right"), ("mean staleness", "right")):
        table.add_column(name, justify=justify)
    if with_epsilon:
        table.add_column("epsilon", justify="right")
    for w in workers:
        seen = f"{w['last_seen_seconds']:.1f} s ago" if w.get("connected", True) else f"left ({w.get('left_reason') or 'timed out'})"
        host = w["host"] + (" (evaluator)" if w.get("role") == "evaluator" else "")
        row = [str(w["id"]), host, seen, f"{w['pushes']:,}", f"{w['env_steps']:,}", f"{w['mean_staleness']:.2f}"]
        if with_epsilon:
            eps = w.get("stats", {}).get("epsilon")
            row.append("-" if eps is None else f"{eps:.3f}")
        table.add_row(*row)
    return table


def eval_lines(status: dict) -> list[str]:
    """The latest evaluation round, with --eval-every (worker-run --evaluator)."""
    if not status.get("run_spec", {}).get("eval_every"):
        return []
    if status.get("eval_mean") is None:
        return [f"eval  no round yet   ({status.get('evaluators_connected', 0)} evaluators connected)"]
    return [f"eval  mean {status['eval_mean']:.1f} +- {status['eval_std']:.1f} over {status['eval_episodes']} episodes "
            f"at version {status['eval_version']:,} (T {status['eval_steps']:,})   best {status['best_eval_mean']:.1f}   "
            f"rounds {status['evaluations']:,}   target judged on {status.get('target_on', 'train')}"]


def with_shards(status: dict, client: "StatusClient", token: str, tls_ca: str) -> dict:
    """A sharded run's status with every shard's own under "shards" (the address's shard is the one
    asked; a shard that does not answer is there as its error)."""
    shard = status.get("shard")
    if not shard or shard.get("count", 1) <= 1:
        return status
    shards = []
    for i, address in enumerate(shard.get("addresses", [])):
        if i == shard["index"]:
            shards.append(status)
            continue
        other = StatusClient(address, client.timeout, token, tls_ca)
        try:
            shards.append(other.fetch())
        except Exception as err:  # noqa: BLE001 - a shard being restarted is shown as such
            code = err.code().name if hasattr(err, "code") else type(err).__name__
            shards.append({"error": code})
        finally:
            other.close()
    return {**status, "shards": [_shard_figures(s, a) for s, a in zip(shards, shard.get("addresses", []))]}


SHARD_FIGURES = ("env_steps", "version", "updates_per_second", "env_steps_per_second", "state", "stop_reason",
                 "incarnation", "workers_connected")


def _shard_figures(status: dict, address: str) -> dict:
    if "error" in status:
        return {"address": address, **status}
    st = status.get("staleness", {})
    return {"address": address, **{k: status.get(k) for k in SHARD_FIGURES}, "shard": status.get("shard"),
            "staleness": {k: st.get(k) for k in ("p50", "p99", "max")}}


def shards_table(status: dict) -> Table | None:
    """One row a shard: its slice, T, version, rates and staleness; the run's staleness is the largest."""
    shards = status.get("shards")
    if not shards:
        return None
    run = status.get("run_staleness") or {}
    title = f"shards ({len(shards)})"
    if run.get("count"):
        title += (f"; the run's staleness (each push's largest over the shards) p50 {run['p50']} p99 {run['p99']} "
                  f"max {run['max']}")
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    for name in ("shard", "address", "slice", "T", "version", "updates/s", "staleness p50/p99/max", "state"):
        table.add_column(name, justify="left" if name in ("address", "state") else "right")
    for i, s in enumerate(shards):
        if "error" in s:
            table.add_row(str(i), s["address"], "-", "-", "-", "-", "-", f"not answering ({s['error'][:60]})")
            continue
        sl, st = s.get("shard") or {}, s["staleness"]
        table.add_row(str(i), s["address"], f"{sl.get('start')}..{sl.get('end')}", f"{s['env_steps']:,}",
                      f"{s['version']:,}", f"{s.get('updates_per_second') or 0:,.1f}",
                      f"{st['p50']}/{st['p99']}/{st['max']}", s["state"])
    return table


def render(status: dict, address: str = ""):
    steps, total = status["env_steps"], status["total_steps"]
    m, best = status.get("final_mean100"), status.get("best_mean100")
    head = [
        *spec_lines(status),
        f"state {status['state']}" + (f" ({status['stop_reason']})" if status.get("stop_reason") else "")
        + f"   server {address}   up {status['wall_seconds']:.0f} s",
        f"T {steps:,} / {total:,} ({100 * steps / max(total, 1):.1f}%)   version {status['version']:,}   "
        f"lr {status.get('learning_rate', 0):.2e}",
        f"throughput  {status.get('env_steps_per_second', 0):,.0f} env steps/s   "
        f"{status.get('updates_per_second', 0):,.1f} updates/s   (last {status.get('rate_window_seconds', 10):g} s)",
        f"return  mean100 {'-' if m is None else f'{m:.1f}'}   best mean100 {'-' if best is None else f'{best:.1f}'}   "
        f"episodes {status.get('episodes', 0):,}",
        *eval_lines(status),
        *staleness_lines(status["staleness"]),
    ]
    if status.get("rejected"):
        head.append("rejected  " + "  ".join(f"{k}={v}" for k, v in status["rejected"].items()))
    shards = shards_table(status)
    return Group(Text("\n".join(head)), Text(""), *((shards, Text("")) if shards else ()), workers_table(status))


# --- the command ---------------------------------------------------------------------------------
def _error(address: str, err) -> int:
    code = err.code().name if hasattr(err, "code") else type(err).__name__
    details = err.details() if hasattr(err, "details") else str(err)
    print(f"ps-status: error: parameter server at {address}: {code}: {details}", file=sys.stderr)
    return 2


def watch(client: StatusClient, console: Console, interval: float, more=lambda status: status) -> int:
    """Refresh until the run is over; `more` adds to each status (a sharded run's other shards)."""
    import grpc
    status = more(client.fetch())
    with Live(render(status, client.address), console=console, refresh_per_second=4) as live:
        while status["state"] != "done":
            time.sleep(interval)
            try:
                status = more(client.fetch())
            except grpc.RpcError as err:
                if status["state"] in ("stopping", "done"):
                    break  # the server finished and exited between two looks
                live.stop()
                return _error(client.address, err)
            live.update(render(status, client.address))
    console.print("the run is over" + (f": {status['stop_reason']}" if status.get("stop_reason") else ""))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ps-status", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ps", required=True, metavar="HOST:PORT", help="the parameter server's address")
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.add_argument("--watch", action="store_true", help="refresh live until Ctrl-C or the run ends")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes with --watch (default 1)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the server (default 5)")
    p.add_argument("--token-file", default="", metavar="PATH", help="the server's shared token (default: env A3C_TOKEN)")
    p.add_argument("--tls-ca", default="", metavar="PEM", help="CA certificate to verify a TLS server with")
    args = p.parse_args(argv)
    import grpc

    from ps.api.channel import load_token
    from ps.api.spec import ConfigError
    try:
        client = StatusClient(args.ps, args.timeout, load_token(args.token_file), args.tls_ca)
    except ConfigError as err:
        print(f"ps-status: error: {err}", file=sys.stderr)
        return 2
    console = Console()
    try:
        token = load_token(args.token_file)
        if args.watch and not args.json:
            return watch(client, console, args.interval, lambda s: with_shards(s, client, token, args.tls_ca))
        status = with_shards(client.fetch(), client, token, args.tls_ca)
    except grpc.RpcError as err:
        return _error(args.ps, err)
    except KeyboardInterrupt:
        return 0
    finally:
        client.close()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        console.print(render(status, args.ps))
    return 0
