"""ps-serve: the parameter server (ps-status asks a running one how it is doing).

    ps-serve --env CartPole-v1 --algo a3c --port 50051 --run-dir runs/cartpole --target-return 475
    ps-serve ... --local-workers 2      # also start 2 worker-run processes on this host

Defaults shown are CartPole's; Atari, MinAtar, continuous-control envs and the value-based methods
fill the flags you do not give from their own defaults (ps/families.py, ps/config.py).
"""
from __future__ import annotations

import argparse
import logging
import sys

from ps.api.spec import ConfigError, RunSpec

from ps.config import ServerConfig
from ps.flags import add_dataclass_flags, build_dataclass
from ps.api.defaults import given_flags

log = logging.getLogger("ps")


def parse_serve_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ps-serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_flags(p, RunSpec, "run (sent to every worker)")
    add_dataclass_flags(p, ServerConfig, "server")
    p.add_argument("--local-workers", type=int, default=0, metavar="N",
                   help="also start N worker-run processes on this host (default 0)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = p.parse_args(argv)
    args.given = given_flags(p, argv)  # flags set explicitly; env-family defaults fill the rest
    return args


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
        from ps.service.auth import check_exposure
        from ps.api.channel import load_token
        check_exposure(config.host, load_token(config.token_file), config.insecure)
        from ps.api.defaults import with_value_based_defaults
        from ps.api.envs import check_env, env_spaces
        from ps.api.defaults import with_env_defaults
        from ps.api.envs import env_family
        spec = with_env_defaults(spec, args.given)  # Atari, MinAtar, continuous: ps/families.py
        spec = with_value_based_defaults(spec, env_family(spec.env_id, env_spaces(spec.env_id)[1]), args.given)
        log.info("%s", check_env(spec))
    except ConfigError as err:
        return _die(str(err))
    from ps.records.checkpoint import CheckpointError
    from ps.node import run_node
    try:
        return run_node(spec, config, args.local_workers)
    except (OSError, CheckpointError, ConfigError) as err:
        return _die(str(err))


def status_main(argv=None) -> int:
    from ps.tools.status import main
    return main(argv)

