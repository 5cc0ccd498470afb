"""ps-serve's command line: one flag per RunSpec and ServerConfig field, derived by tyro from the
dataclasses (each field's docstring is its help), a YAML --config file, and --print-spec.

Why tyro: it reads the attribute docstrings the config dataclasses already carry, renames a flag with
one annotation where it is not --field-name (--env, --envs, --checkpoint-every, --worker-timeout),
and parses over a default instance, which is how the defaults table and a --config file come in.
(jsonargparse reads config files natively too, but keeps underscores in flag names and cannot give
env_id the flag --env without renaming the field, which the wire's run spec JSON would see.)

Precedence, later wins: RunSpec's field defaults, the defaults table's rows for the env and algorithm
and the env's preset (ps/api/defaults.py, ps/api/presets.py), the --config file, the flags.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from ps.api.defaults import defaults_for
from ps.api.spec import ConfigError, RunSpec
from ps.config import ServerConfig


@dataclass(frozen=True)
class ServeArgs:
    """ps-serve: the parameter server (ps-status asks a running one how it is doing).

    ps-serve --env CartPole-v1 --algo a3c --port 50051 --run-dir runs/cartpole --target-return 475
    ps-serve ... --local-workers 2      # also start 2 worker-run processes on this host
    ps-serve --config run.yaml          # fields from a file; flags still win
    ps-serve --env ALE/Pong-v5 --print-spec > run.yaml   # the resolved run spec, then exit

    Defaults shown are CartPole's; other envs and the value-based methods fill the flags you do not
    give from the defaults table and the env's preset (ps/api/presets.py; --preset none skips it),
    and the target from the env's reward threshold: see them with --print-spec.
    """

    run: tyro.conf.OmitArgPrefixes[RunSpec]
    server: tyro.conf.OmitArgPrefixes[ServerConfig]
    local_workers: int = 0
    """Also start N worker-run processes on this host."""
    log_level: str = "INFO"
    """Logging level."""
    config: str = ""
    """A YAML file of RunSpec and ServerConfig fields (field_name: value); flags given too win over it."""
    print_spec: bool = False
    """Print the resolved run spec as JSON (which a --config file also reads) and exit."""


def parse_serve_args(argv: list[str] | None = None) -> ServeArgs:
    """The command line, resolved: flags over the config file over the defaults table. Bad flags
    exit with tyro's message; a bad config file or value raises ConfigError."""
    import sys
    argv = _compatible(list(sys.argv[1:] if argv is None else argv))
    file_run, file_server = load_config(_config_path(argv))
    # First pass: which env and algorithm (flags over file), to pick the table's rows.
    first = _parse(argv, RunSpec(**file_run), file_server)
    from ps.api.envs import env_family, env_spaces
    family = env_family(first.run.env_id, env_spaces(first.run.env_id)[1])
    table = defaults_for(first.run.env_id, first.run.algo, family, first.run.preset)
    return _parse(argv, RunSpec(**(table | file_run)), file_server)


def _parse(argv: list[str], run: RunSpec, server: dict[str, Any]) -> ServeArgs:
    default = ServeArgs(run, ServerConfig(**server))
    return tyro.cli(ServeArgs, args=argv, default=default, prog="ps-serve",
                    config=(tyro.conf.OmitArgPrefixes,))


def load_config(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(RunSpec fields, ServerConfig fields) from a YAML (or JSON) file; ({}, {}) without one."""
    if not path:
        return {}, {}
    import yaml
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise ConfigError(f"cannot read --config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"--config {path} must map field names to values, got {type(doc).__name__}")
    run_fields = {f.name for f in dataclasses.fields(RunSpec)}
    server_fields = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(str(k) for k in doc if k not in run_fields | server_fields)
    if unknown:
        raise ConfigError(f"--config {path}: unknown field(s) {', '.join(unknown)} (keys are RunSpec and "
                          f"ServerConfig field names, e.g. env_id, t_max, run_dir)")
    doc = {k: _typed(path, k, v) for k, v in doc.items()}
    return ({k: v for k, v in doc.items() if k in run_fields}, {k: v for k, v in doc.items() if k in server_fields})


def _typed(path: str, name: str, value: Any) -> Any:
    """value as its field's type: YAML reads 1e-05 (no dot) as a string, and 3 where a float belongs."""
    kinds = _field_types()[name]
    if value is None and type(None) in kinds:
        return None
    for kind in kinds:
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
    if float in kinds and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    names = " or ".join(k.__name__ for k in kinds if k is not type(None))
    raise ConfigError(f"--config {path}: {name} must be {names}, got {value!r}")


def spec_json(spec: RunSpec) -> str:
    """--print-spec's output: the run spec, one field a line."""
    return json.dumps(json.loads(spec.to_json()), indent=2)


def _config_path(argv: list[str]) -> str:
    for i, token in enumerate(argv):
        if token == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith("--config="):
            return token.split("=", 1)[1]
    return ""


def _field_types() -> dict[str, tuple[type, ...]]:
    """Field name -> the types its value may have, for both dataclasses."""
    out = {}
    for cls in (RunSpec, ServerConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            out[f.name] = typing.get_args(hint) if typing.get_args(hint) else (hint,)
    return out


def _flag_kinds() -> tuple[set[str], set[str]]:
    """(flags of bool fields, flags of optional fields) of both dataclasses."""
    bools, optionals = set(), set()
    for cls in (RunSpec, ServerConfig):
        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            hint, name = hints[f.name], f.name.replace("_", "-")
            if typing.get_origin(hint) is typing.Annotated:
                name = next((m.name for m in hint.__metadata__ if getattr(m, "name", None)), name)
                hint = typing.get_args(hint)[0]
            if hint is bool:
                bools.add(f"--{name}")
            elif type(None) in typing.get_args(hint):
                optionals.add(f"--{name}")
    return bools, optionals


def _compatible(argv: list[str]) -> list[str]:
    """Spellings the flags have always accepted, in tyro's terms: `--sync true|false` (tyro: --sync /
    --no-sync) and `--target-return none|off` (tyro: None)."""
    bools, optionals = _flag_kinds()
    out: list[str] = []
    i = 0
    while i < len(argv):
        token, value = argv[i], argv[i + 1] if i + 1 < len(argv) else None
        flag, _, inline = token.partition("=")
        if flag in bools and (inline or (value or "").lower() in _TRUTH):
            word = (inline or value).lower()
            out.append(flag if _TRUTH.get(word, True) else "--no-" + flag[2:])
            i += 1 if inline else 2
            continue
        if flag in optionals:
            word = inline if inline else value
            if word is not None and word.lower() in ("none", "off", ""):
                out += [flag, "None"]
                i += 1 if inline else 2
                continue
        out.append(token)
        i += 1
    return out


_TRUTH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
