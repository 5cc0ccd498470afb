"""ps-serve and ps-status: the entry points (flags: ps/options.py; the process: ps/node.py)."""
from __future__ import annotations

import logging
import sys

from ps.api.spec import ConfigError

log = logging.getLogger("ps")


def _die(message: str, code: int = 2) -> int:
    print(f"ps-serve: error: {message}", file=sys.stderr)
    return code


def check_sharding(spec, server, local_workers: int) -> None:
    """What a sharded run cannot do, refused at start in one line. Each shard decides alone what it
    applies, so nothing may make a shard drop or scale a push another applies as it is."""
    if server.shards == 1:
        if server.shard or server.shard_addresses:
            raise ConfigError("--shard and --shard-addresses belong to a sharded run: give --shards N too")
        return
    for given, flag in ((spec.sync, "--sync"), (spec.max_staleness, "--max-staleness"),
                        (spec.staleness_lr != "none", "--staleness-lr")):
        if given:
            raise ConfigError(f"{flag} cannot run sharded: each shard would decide on its own slice (a --sync "
                              f"round clips by the summed gradient's norm; a staleness policy could drop a push "
                              f"on one shard and apply it on another)")
    if server.shard and local_workers:
        raise ConfigError("--local-workers starts the whole run's workers: give it without --shard "
                          "(ps-serve --shards N --local-workers K runs every shard on this host)")
    if server.shard and not server.shard_addresses and server.shard_index == 0:
        raise ConfigError("shard 0 hands every shard's address to the workers: give --shard-addresses "
                          "(host:port,... in shard order, or a template with {i})")


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
        check_sharding(args.run, args.server, args.local_workers)
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
    from ps.shard_launcher import run_sharded
    run = run_sharded if args.server.shards > 1 and not args.server.shard else run_node
    try:
        return run(args.run, args.server, args.local_workers)
    except (OSError, CheckpointError, ConfigError) as err:
        return _die(str(err))


def status_main(argv=None) -> int:
    from ps.tools.status import main
    return main(argv)


if __name__ == "__main__":
    sys.exit(serve_main())
