"""deploy/k8s/sharded: a shard per pod of a StatefulSet, found through a headless Service. The manifests
render and validate; each pod's process, as the kubelet would run it, is the shard its ordinal names,
with every shard's stable DNS name; workers dial shard 0; a finished shard stays up instead of
restarting forever."""
from __future__ import annotations

import socket
import subprocess
import time

import pytest

from tests.integration.kube import container_process, containers, find, kubectl, render

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl (with kustomize) is not installed")


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return render("sharded")


def shard_process(rendered):
    (container,) = containers(find(rendered, "StatefulSet", "a3c-ps-shard"))
    return container_process(rendered, container)


def test_renders_and_validates_with_the_shards_in_place_of_the_server_job(rendered):
    import kubernetes_validate
    version = kubernetes_validate.latest_version()
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)
    assert sorted(o["kind"] for o in rendered) == ["ConfigMap", "Job", "Job", "Secret", "Service", "Service", "StatefulSet"]
    assert sorted(o["metadata"]["name"] for o in rendered if o["kind"] == "Job") == ["a3c-evaluator", "a3c-worker"]


def test_each_pod_is_the_shard_its_ordinal_names_with_every_shards_dns_name(rendered, monkeypatch):
    from ps.api.shards import shard_addresses
    from ps.options import parse_serve_args
    shards = find(rendered, "StatefulSet", "a3c-ps-shard")
    headless = find(rendered, "Service", shards["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"] == shards["spec"]["template"]["metadata"]["labels"]
    process = shard_process(rendered)
    count = int(process.env["A3C_SHARDS"])
    assert shards["spec"]["replicas"] == count
    argv = process.argv[process.argv.index("ps-serve", 3) + 1:]  # sh -c SCRIPT ps-serve ARGS...
    for ordinal in range(count):
        monkeypatch.setattr(socket, "gethostname", lambda o=ordinal: f"{shards['metadata']['name']}-{o}")
        args = parse_serve_args(argv)
        assert args.server.shard_index == ordinal and args.server.shards == count
        assert args.run.eval_every > 0  # every shard takes the evaluator's rounds
        names = shard_addresses(args.server.shard_addresses, count)
        assert names == tuple(f"{shards['metadata']['name']}-{i}.{headless['metadata']['name']}:50051"
                              for i in range(count))
    claim = shards["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert process.mounts[next(m for m in process.mounts if args.server.run_dir.startswith(m))] == claim


def test_workers_and_the_evaluator_dial_shard_zero(rendered):
    service = find(rendered, "Service", "a3c-ps")
    assert service["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": "a3c-ps-shard-0"}
    for job in ("a3c-worker", "a3c-evaluator"):
        (container,) = containers(find(rendered, "Job", job))
        argv = container_process(rendered, container).argv
        assert argv[argv.index("--ps") + 1] == "a3c-ps:50051"


@pytest.mark.parametrize("code", [0, 3])
def test_a_finished_shard_stays_up_and_a_failed_one_exits(rendered, tmp_path, code):
    """The container's command with a stand-in ps-serve: exit 0 (the run is over) -> the container keeps
    running (a StatefulSet would restart it); any other code is the container's."""
    process = shard_process(rendered)
    (tmp_path / "ps-serve").write_text(f"#!/bin/sh\nexit {code}\n")
    (tmp_path / "ps-serve").chmod(0o755)
    script = process.argv[2].replace("/tmp/a3c-finished", str(tmp_path / "finished"))
    proc = subprocess.Popen(["sh", "-c", script, "ps-serve", "--shards", "2"],
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    time.sleep(1.0)
    try:
        if code == 0:
            assert proc.poll() is None and (tmp_path / "finished").exists()
            proc.terminate()  # the kubelet's SIGTERM on delete: the idle shard exits at once
            assert proc.wait(timeout=5) == 0
        else:
            assert proc.wait(timeout=5) == code and not (tmp_path / "finished").exists()
    finally:
        proc.kill()
        proc.wait()


def test_the_e2e_overlay_reaches_each_shard_through_a_service_of_its_own(monkeypatch):
    """overlays/e2e-sharded (the lab's DNS has no headless records): shard i's address is a ClusterIP
    Service selecting exactly pod a3c-ps-shard-i, and each pod's claim is pre-bound to a volume of its own."""
    import kubernetes_validate
    from ps.api.shards import shard_addresses
    from ps.options import parse_serve_args
    objects = render("overlays/e2e-sharded")
    version = kubernetes_validate.latest_version()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
    shards = find(objects, "StatefulSet", "a3c-ps-shard")
    (container,) = containers(shards)
    process = container_process(objects, container)
    argv = process.argv[process.argv.index("ps-serve", 3) + 1:]
    count = shards["spec"]["replicas"]
    claim = shards["spec"]["volumeClaimTemplates"][0]
    volumes = {v["spec"]["claimRef"]["name"]: v for v in objects if v["kind"] == "PersistentVolume"}
    paths = set()
    for ordinal in range(count):
        pod = f"a3c-ps-shard-{ordinal}"
        monkeypatch.setattr(socket, "gethostname", lambda p=pod: p)
        args = parse_serve_args(argv)
        assert args.server.shard_index == ordinal
        for i, address in enumerate(shard_addresses(args.server.shard_addresses, count)):
            name, port = address.rsplit(":", 1)
            service = find(objects, "Service", name)
            assert service["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"a3c-ps-shard-{i}"}
            assert service["spec"]["publishNotReadyAddresses"] is True
            assert int(port) in [p["port"] for p in service["spec"]["ports"]]
        volume = volumes[f"{claim['metadata']['name']}-{pod}"]
        assert volume["spec"]["storageClassName"] == claim["spec"]["storageClassName"] == ""
        paths.add(volume["spec"]["hostPath"]["path"])
    assert len(paths) == count
    assert container["imagePullPolicy"] == "Never"
