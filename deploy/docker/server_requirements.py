"""Print the server image's requirements: the project's dependencies and the extras the server uses, minus torch.

ps-serve never imports torch (the server is model-agnostic: a flat float32 buffer and numpy RMSProp),
so its image leaves out torch's ~700 MB. The list is read from pyproject.toml, never written twice.

    python server_requirements.py [path/to/pyproject.toml] > requirements.txt
"""
from __future__ import annotations

import re
import sys
import tomllib

SERVER_EXTRAS = ("atari",)  # ale-py / minatar register their env ids, which ps-serve checks at start
WORKER_ONLY = {"torch"}


def requirement_name(spec: str) -> str:
    return re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower()


def server_requirements(pyproject: dict) -> list[str]:
    project = pyproject["project"]
    specs = list(project["dependencies"])
    for extra in SERVER_EXTRAS:
        specs += project["optional-dependencies"][extra]
    return [s for s in specs if requirement_name(s) not in WORKER_ONLY]


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb") as f:
        print("\n".join(server_requirements(tomllib.load(f))))
