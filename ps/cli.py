"""ps-serve (the parameter server) and ps-status (ask a running one how it is doing).

    ps-serve --env CartPole-v1 --algo a3c --port 50051 --run-dir runs/cartpole --target-return 475
    ps-serve ... --local-workers 2      # also start 2 worker-run processes on this host
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import ConfigError, RunSpec, ServerConfig
from .flags import add_dataclass_flags, build_dataclass

log = logging.getLogger("ps")


def parse_serve_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ps-serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_flags(p, RunSpec, "run (sent to every worker)")
    add_dataclass_flags(p, ServerConfig, "server")
    p.add_argument("--local-workers", type=int, default=0, metavar="N",
                   help="also start N worker-run processes on this host (default 0)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return p.parse_args(argv)


def _die(message: str, code: int = 2) -> int:
    print(f"ps-serve: error: {message}", file=sys.stderr)
    return code


def serve_main(argv=None) -> int:
    args = parse_serve_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        spec = build_dataclass(RunSpec, args)
        config = build_dataclass(ServerConfig, args)
        if args.local_workers < 0:
            raise ConfigError(f"--local-workers must be >= 0, got {args.local_workers}")
        from .envcheck import check_env
        log.info("%s", check_env(spec))
    except ConfigError as err:
        return _die(str(err))
    from .node import run_node
    try:
        return run_node(spec, config, args.local_workers)
    except OSError as err:
        return _die(str(err))


def status_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ps-status", description="Show a running parameter server's status.")
    p.add_argument("--ps", required=True, metavar="HOST:PORT")
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the server (default 5)")
    args = p.parse_args(argv)
    import grpc

    from .api.v1 import parameter_server_pb2 as pb
    from .api.v1 import parameter_server_pb2_grpc as pb_grpc
    with grpc.insecure_channel(args.ps) as channel:
        try:
            reply = pb_grpc.ParameterServerStub(channel).Status(pb.StatusRequest(), timeout=args.timeout)
        except grpc.RpcError as err:
            print(f"ps-status: error: parameter server at {args.ps}: {err.code().name}: {err.details()}",
                  file=sys.stderr)
            return 2
    status = json.loads(reply.status_json)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        from .progress import progress_line, summary_lines
        print(progress_line(status, None, 0.0))
        for line in summary_lines(status | {"stop_reason": status.get("stop_reason") or status["state"]}):
            print(line)
    return 0

