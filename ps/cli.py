"""ps-serve and ps-status: the entry points (flags: ps/options.py; the process: ps/node.py)."""
from __future__ import annotations

import logging
import sys

from ps.api.spec import ConfigError

log = logging.getLogger("ps")


def _die(message: str, code: int = 2) -> int:
    print(f"ps-serve: error: {message}", file=sys.stderr)
    return code


def serve_main(argv=None) -> int:
    from ps.api.channel import load_token
    from ps.api.defaults import spec_line
    from ps.api.envs import check_env
    from ps.options import parse_serve_args, spec_json
    from ps.service.auth import check_exposure
    try:
        args = parse_serve_args(argv)
        if args.local_workers < 0:
            raise ConfigError(f"--local-workers must be >= 0, got {args.local_workers}")
        description = check_env(args.run)
    except ConfigError as err:
        return _die(str(err))
    if args.print_spec:
        print(spec_json(args.run))
        return 0
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        check_exposure(args.server.host, load_token(args.server.token_file), args.server.insecure)
    except ConfigError as err:
        return _die(str(err))
    log.info("%s", description)
    log.info("%s", spec_line(args.run))
    from ps.node import run_node
    from ps.records.checkpoint import CheckpointError
    try:
        return run_node(args.run, args.server, args.local_workers)
    except (OSError, CheckpointError, ConfigError) as err:
        return _die(str(err))


def status_main(argv=None) -> int:
    from ps.tools.status import main
    return main(argv)


if __name__ == "__main__":
    sys.exit(serve_main())
