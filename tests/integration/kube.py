"""Rendered Kubernetes manifests, read the way the kubelet reads them: which process each container runs.

`kubectl kustomize` renders; `container_process` resolves a container's environment (envFrom, then env,
with ConfigMap and Secret values) and expands $(VAR) in its command and args as Kubernetes does.
"""
from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The overlays of the one-server run (deploy/k8s/base); those built on deploy/k8s/sharded (a StatefulSet
# of shards in place of the server's Job) are tested in test_k8s_sharded.py.
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml")
                  if "../../sharded" not in yaml.safe_load(p.read_text()).get("resources", []))
KUSTOMIZATIONS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(kustomization: str) -> list[dict]:
    """`kubectl kustomize deploy/k8s/<kustomization>` as a list of objects."""
    out = subprocess.run([kubectl() or "kubectl", "kustomize", str(K8S / kustomization)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def by_name(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: $$ escapes a $, references to unknown names stay as written."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env.get(name, text[i:end + 1]))
                    i = end + 1
                    continue
            out.append(text[i:i + 2])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _config_data(objects: list[dict], kind: str, name: str) -> dict[str, str]:
    obj = find(objects, kind, name)
    if kind == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return data | dict(obj.get("stringData") or {})
    return dict(obj.get("data") or {})


def container_env(objects: list[dict], container: dict) -> dict[str, str]:
    """The container's environment: envFrom sources first, then env entries in order (later wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = _config_data(objects, "ConfigMap", source["configMapRef"]["name"])
        else:
            data = _config_data(objects, "Secret", source["secretRef"]["name"])
        env.update({prefix + k: v for k, v in data.items()})
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(entry["value"], env)
            continue
        ref = entry["valueFrom"]
        kind = {"configMapKeyRef": "ConfigMap", "secretKeyRef": "Secret"}
        (source,) = [k for k in ref if k in kind] or [None]
        if source is None:
            raise AssertionError(f"env {entry['name']}: unsupported valueFrom {sorted(ref)}")
        env[entry["name"]] = _config_data(objects, kind[source], ref[source]["name"])[ref[source]["key"]]
    return env


@dataclass(frozen=True)
class Process:
    """What the kubelet would exec for one container: argv and environment."""

    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, str]  # mountPath -> volume name
    readiness: dict | None  # the container's readinessProbe


def containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


def container_process(objects: list[dict], container: dict) -> Process:
    env = container_env(objects, container)
    argv = [expand(a, env) for a in [*container.get("command", []), *container.get("args", [])]]
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    return Process(argv, env, mounts, container.get("readinessProbe"))
