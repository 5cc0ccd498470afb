"""worker-run: join a parameter server and train until it says stop.

    worker-run --ps host:port
    worker-run --ps host:port --evaluator     # evaluate the policy every --eval-every seconds; never push

Everything else (environment, algorithm, hyper-parameters, seed) comes from the server.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import replace

from ps.api.channel import load_token
from ps.api.spec import ConfigError
from ps.api.malloc_tuning import keep_freed_buffers

from .client import ClientConfig, PSClient, ServerRefused, ServerUnavailable
from .delay import InjectedDelay
from .evaluator import Evaluator
from .loop import ActorLearner
from .sharded import ShardedSource, ShardMismatch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="worker-run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ps", required=True, metavar="HOST:PORT", help="address of the parameter server")
    p.add_argument("--connect-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="keep retrying an unreachable server this long, then exit non-zero (default 60)")
    p.add_argument("--call-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="deadline of each call to the server (default 30)")
    p.add_argument("--inject-delay-ms", default=None, metavar="MEAN[:JITTER]", type=InjectedDelay.parse,
                   help="EXPERIMENT KNOB, off by default: sleep MEAN ms (+/- uniform JITTER ms) before each "
                        "push, to raise staleness on one machine without root")
    p.add_argument("--token-file", default="", metavar="PATH",
                   help="file holding the server's shared token (default: env A3C_TOKEN, else none)")
    p.add_argument("--tls-ca", default="", metavar="PEM", help="CA certificate to verify a TLS server with")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="run N workers, forked after the imports so they share torch's memory (default 1)")
    p.add_argument("--evaluator", action="store_true",
                   help="be the run's evaluator: every --eval-every seconds (the server's) play the current "
                        "policy's evaluation episodes and report them; never push")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    keep_freed_buffers()  # no page-fault churn on message-sized buffers (ps/api/malloc_tuning.py)
    if args.evaluator and args.processes != 1:
        print("worker-run: error: --evaluator runs one evaluator: drop --processes", file=sys.stderr)
        return 2
    if args.processes > 1:
        from .zygote import run_forked
        return run_forked(args.processes, lambda: run_one(args))
    return run_one(args)


class Terminated(Exception):
    """SIGTERM arrived."""


def _terminated(_signum, _frame):
    raise Terminated


def run_one(args: argparse.Namespace) -> int:
    """One actor-learner (or the evaluator): its own gRPC channel, until the server says stop."""
    try:
        config = ClientConfig(address=args.ps, connect_timeout_seconds=args.connect_timeout,
                              call_timeout_seconds=args.call_timeout, tls_ca=args.tls_ca,
                              token=load_token(args.token_file))
        # one server, or a sharded run's shard 0: its Register reply says which
        client = ShardedSource(PSClient(config), lambda address: PSClient(replace(config, address=address)))
    except ConfigError as err:
        print(f"worker-run: error: {err}", file=sys.stderr)
        return 2
    worker = Evaluator(client) if args.evaluator else ActorLearner(client, delay=args.inject_delay_ms)
    signal.signal(signal.SIGTERM, _terminated)  # scaled down (Kubernetes) or stopped: leave at once
    try:
        worker.run()
    except (ServerUnavailable, ShardMismatch) as err:
        print(f"worker-run: error: {err}", file=sys.stderr)
        return 2
    except ServerRefused as err:
        print(f"worker-run: error: the parameter server at {args.ps} refused worker {worker.worker_id}: {err}",
              file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        client.leave(worker.worker_id, "interrupted")
        return 130
    except Terminated:
        client.leave(worker.worker_id, "terminated")
        return 128 + signal.SIGTERM
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
