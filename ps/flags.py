"""Command-line flags generated from the config dataclasses, with each field's docstring as help.

One source of truth: a field added to RunSpec or ServerConfig gets its flag and its --help text.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing

FLAG_NAMES = {"env_id": "--env", "envs_per_worker": "--envs", "run_dir": "--run-dir",
              "checkpoint_every_seconds": "--checkpoint-every", "worker_timeout_seconds": "--worker-timeout"}


def field_docs(cls) -> dict[str, str]:
    """The docstring written under each field of a dataclass."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off", "") else float(text)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, title: str) -> None:
    group = parser.add_argument_group(title)
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        hint = hints[f.name]
        parse = {int: int, float: float, str: str, bool: _bool}.get(hint, _optional_float)
        extra = {"nargs": "?", "const": True} if hint is bool else {}  # `--sync` alone means true
        group.add_argument(flag, dest=f.name, type=parse, default=f.default, **extra,
                           help=f"{docs.get(f.name, '')} (default: {f.default})")


def build_dataclass(cls, args: argparse.Namespace, **overrides):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    values.update(overrides)
    return cls(**values)
