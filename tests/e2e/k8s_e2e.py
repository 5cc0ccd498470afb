"""The deploy/ manifests on a real Kubernetes (v1.20, single node): ../shared/k8s-lab. Run by `make e2e-k8s`
only (pytest never collects it: no test_ prefix). Needs root, and the lab's build (build.sh) done once.

Steps, each timed: lab build check and start; both images built into the node's docker; deploy/k8s/overlays/e2e
applied (overlays/local + exec probes, images never pulled, a hostPath volume); readiness (the workers and
the evaluator registered); training; /metrics scraped through the Service from a worker pod; the server pod
deleted mid-run and resumed (the version never goes back past the checkpoint, the workers and the evaluator
rejoin without restarting); workers 2 -> 3 -> 1 mid-run; completion (`kubectl wait
--for=condition=complete job/a3c-ps job/a3c-worker job/a3c-evaluator`) with the target reached and the
evaluator's rounds in summary.json; no restarts or new
pods after it, a re-apply creates nothing, a server started again on the finished run dir rewrites nothing;
teardown (objects deleted, lab down, no lab daemon left within 60 s).

    python tests/e2e/k8s_e2e.py [--keep-up]      # K8S_LAB=path/to/k8s-lab (default ../shared/k8s-lab)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = Path(os.environ.get("K8S_LAB", ROOT.parent / "shared" / "k8s-lab")).resolve()
OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "e2e"
IMAGES = {"server": "a3c-cluster-server:e2e", "cluster": "a3c-cluster:e2e"}  # the overlay's images: newTag e2e
SERVER, WORKER, EVALUATOR = "a3c-ps", "a3c-worker", "a3c-evaluator"
LAB_PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
                 "dockerd", "containerd")
T0 = time.monotonic()
TIMES: list[tuple[str, float, str]] = []


class Failed(AssertionError):
    pass


def say(text: str) -> None:
    print(f"[e2e {time.monotonic() - T0:7.1f}s] {text}", flush=True)


class step:
    """`with step("name"):` prints the step's start, its time and outcome, and keeps it for the table."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self):
        self.start = time.monotonic()
        say(f"--- {self.name}")
        return self

    def __exit__(self, kind, err, _tb):
        seconds = time.monotonic() - self.start
        outcome = "ok" if kind is None else f"FAILED: {err}"
        TIMES.append((self.name, seconds, "ok" if kind is None else "FAILED"))
        say(f"--- {self.name}: {outcome} in {seconds:.1f} s")
        return False


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def run(*argv, check_rc: bool = True, timeout: float = 1800, quiet: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check_rc and result.returncode != 0:
        raise Failed(f"{' '.join(map(str, argv))} exited {result.returncode}: {(result.stderr or result.stdout)[-2000:]}")
    if not quiet and result.stdout.strip():
        for line in result.stdout.strip().splitlines()[-3:]:
            say(f"    {line}")
    return result


def lab(script: str, *args, timeout: float = 1800, quiet: bool = False) -> subprocess.CompletedProcess:
    return run(LAB / script, *args, timeout=timeout, quiet=quiet)


def kubectl(*args, check_rc: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return run(LAB / "kubectl", *args, check_rc=check_rc, timeout=timeout, quiet=True)


def wait_until(what: str, predicate, timeout: float, every: float = 2.0):
    """The first truthy predicate() within `timeout` seconds (exceptions count as not yet)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (Failed, subprocess.SubprocessError, ValueError, KeyError) as err:
            last = err
        time.sleep(every)
    raise Failed(f"gave up waiting {timeout:.0f} s for {what}" + (f" (last: {str(last)[:500]})" if last else ""))


# --- the cluster's view ------------------------------------------------------------------------------------
def pods(job: str) -> list[dict]:
    return json.loads(kubectl("get", "pods", "-l", f"job-name={job}", "-o", "json").stdout)["items"]


def live(items: list[dict]) -> list[dict]:
    return [p for p in items if not p["metadata"].get("deletionTimestamp")
            and p["status"].get("phase") in ("Pending", "Running")]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def restarts(pod: dict) -> int:
    return sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))


def server_pod() -> str:
    (pod,) = [p for p in live(pods(SERVER)) if ready(p)] or [None]
    check(pod is not None, "no ready server pod")
    return pod["metadata"]["name"]


def status() -> dict:
    """The server's status document: ps-status --json inside the server pod (it has the token)."""
    out = kubectl("exec", server_pod(), "--", "ps-status", "--ps", "127.0.0.1:50051", "--json", timeout=60).stdout
    return json.loads(out)


def host_run_dir() -> Path:
    """The run dir as the node sees it: the PersistentVolume's hostPath + the server's --run-dir under its mount."""
    rendered = run(LAB / "kubectl", "kustomize", OVERLAY, quiet=True).stdout
    path = re.search(r"hostPath:\s*\n\s*path: (\S+)", rendered)
    check(path is not None, "the e2e overlay has no hostPath volume")
    return Path(path[1])


def summary_json(volume: Path) -> dict:
    return json.loads((volume / "run" / "summary.json").read_text())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the steps ---------------------------------------------------------------------------------------------
def build_context() -> Path:
    """A small build context: what the Dockerfile copies (the legacy builder would send .venv and runs/)."""
    ctx = Path(tempfile.mkdtemp(prefix="a3c-e2e-ctx-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "*.pyc")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, ctx / name)
    for name in ("ps", "worker", "bench", "deploy/docker"):
        shutil.copytree(ROOT / name, ctx / name, ignore=ignore)
    return ctx


def images() -> None:
    ctx = build_context()
    try:
        dockerfile = ctx / "deploy" / "docker" / "Dockerfile"
        with step("image a3c-cluster-server:e2e (server target, no torch)"):
            lab("image.sh", IMAGES["server"], dockerfile, ctx, "--target", "server")
        with step("image a3c-cluster:e2e (workers, torch from the CPU index)"):
            lab("image.sh", IMAGES["cluster"], dockerfile, ctx)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def fresh_volume(volume: Path) -> None:
    """An empty hostPath directory owned by the image's user (fsGroup does not reach hostPath volumes)."""
    if volume.exists():
        shutil.rmtree(volume)
    volume.mkdir(parents=True)
    os.chown(volume, 10001, 10001)


def apply(volume: Path) -> None:
    kubectl("delete", "-k", OVERLAY, "--ignore-not-found", "--wait", timeout=300)  # an earlier run's leftovers
    fresh_volume(volume)
    kubectl("apply", "-k", OVERLAY)


def readiness() -> dict:
    pvc = json.loads(kubectl("get", "pvc", "a3c-ps-run", "-o", "json").stdout)
    wait_until("the claim to bind", lambda: json.loads(kubectl("get", "pvc", "a3c-ps-run", "-o", "json").stdout)
               ["status"].get("phase") == "Bound", 60)
    wait_until("the server pod to be ready", server_pod, 300)
    wait_until("2 running worker pods", lambda: len([p for p in live(pods(WORKER)) if ready(p)]) == 2, 300)
    pod = server_pod()
    uid = kubectl("exec", pod, "--", "id", "-u").stdout.strip()
    check(uid == "10001", f"the server runs as uid {uid}")
    say(f"    claim {pvc['metadata']['name']} bound; server pod {pod} ready as uid {uid}; 2 workers running")
    return wait_until("2 workers and the evaluator registered",
                      lambda: (s := status())["workers_connected"] == 2 and s["evaluators_connected"] == 1 and s, 180)


def training(volume: Path) -> dict:
    def progress():
        s = status()
        return s["version"] > 0 and list((volume / "run" / "checkpoints").glob("*.a3c")) and s
    s = wait_until("training and a checkpoint on the volume", progress, 300)
    say(f"    version {s['version']}, T {s['env_steps']}, mean100 {s['final_mean100']}, "
        f"checkpoints {sorted(p.name for p in (volume / 'run' / 'checkpoints').glob('*.a3c'))}")
    check(s["state"] == "running", f"the run is already {s['state']}: the e2e's run is too easy to test mid-run")
    return s


def metrics() -> None:
    worker = live(pods(WORKER))[0]["metadata"]["name"]
    code = ("import urllib.request; "
            "print(urllib.request.urlopen('http://a3c-ps:9100/metrics', timeout=10).read().decode())")
    text = kubectl("exec", worker, "--", "python", "-c", code, timeout=60).stdout
    found = re.search(r"^a3c_ps_updates_total (\S+)$", text, re.MULTILINE)
    check(found is not None and float(found[1]) > 0, f"no a3c_ps_updates_total in /metrics: {text[:500]}")
    say(f"    {worker} -> http://a3c-ps:9100/metrics: a3c_ps_updates_total {found[1]} ({len(text.splitlines())} lines)")


def server_killed_mid_run(versions: list[tuple[str, int]]) -> None:
    old = server_pod()
    workers_before = {p["metadata"]["name"]: restarts(p) for job in (WORKER, EVALUATOR) for p in live(pods(job))}
    before = status()
    versions.append((old, before["version"]))
    check(before["state"] == "running", f"the run is {before['state']} before the server pod was deleted")
    kubectl("delete", "pod", old, "--wait=false")
    say(f"    deleted {old} at version {before['version']}")
    new = wait_until("a ready replacement server pod",
                     lambda: (n := server_pod()) != old and n, 300)
    log = kubectl("logs", new).stdout
    resumed = re.search(r"resuming from (\S+) \(T (\d+), version (\d+)\)", log)
    check(resumed is not None, f"{new} did not resume: {log[-1500:]}")
    version = int(resumed[3])
    check(version >= before["version"], f"resumed at version {version}, below {before['version']} seen before")
    say(f"    {new} resumed from {Path(resumed[1]).name} at version {version} (T {resumed[2]})")
    s = wait_until("both workers and the evaluator back on the new server",
                   lambda: (s := status())["workers_connected"] == 2 and s["evaluators_connected"] == 1
                   and s["version"] > version and s, 180)
    versions.append((new, s["version"]))
    check(s["version"] >= version, "the version went back past the checkpoint")
    after = {p["metadata"]["name"]: restarts(p) for job in (WORKER, EVALUATOR) for p in live(pods(job))}
    check(after == workers_before, f"the workers were restarted or replaced: {workers_before} -> {after}")
    say(f"    workers and the evaluator rejoined without restarting; version {s['version']}")


def scale(count: int) -> None:
    kubectl("patch", f"job/{WORKER}", "-p", json.dumps({"spec": {"parallelism": count}}))  # the documented command
    s = wait_until(f"{count} workers connected and {count} worker pods",
                   lambda: len(live(pods(WORKER))) == count and (s := status())["workers_connected"] == count
                   and s, 180)
    check(s["state"] == "running", f"the run ended ({s['stop_reason']}) before the workers were scaled to {count}")
    say(f"    {count} worker pods, {count} connected, version {s['version']}")


def completion(volume: Path) -> dict:
    kubectl("wait", "--for=condition=complete", f"job/{SERVER}", f"job/{WORKER}", f"job/{EVALUATOR}",
            "--timeout=900s", timeout=920)
    summary = summary_json(volume)
    target = summary["run_spec"]["target_return"]
    check(bool(summary["solved"]) and summary["best_mean100"] >= target,
          f"the run ended without reaching its target: {summary['stop_reason']}")
    check(len(summary["workers"]) > 0, "summary.json lists no workers")
    check(summary["evaluations"] > 0 and summary["eval_mean"] is not None, "summary.json has no evaluation round")
    say(f"    {summary['stop_reason']}; T {summary['env_steps']}, {summary['updates']} updates, "
        f"{summary['wall_seconds']:.0f} s, time to target {summary['time_to_target_seconds']} s, "
        f"{len(summary['workers'])} workers in summary.json; {summary['evaluations']} evaluation rounds, the last "
        f"eval_mean {summary['eval_mean']} (version {summary['eval_version']})")
    return summary


def pod_states() -> dict[str, tuple[str, int]]:
    return {p["metadata"]["name"]: (p["status"]["phase"], restarts(p)) for job in (SERVER, WORKER, EVALUATOR)
            for p in pods(job)}


def quiet_after_completion(volume: Path) -> None:
    before, summary = pod_states(), digest(volume / "run" / "summary.json")
    check(all(phase == "Succeeded" for phase, _ in before.values()), f"pods not all Succeeded: {before}")
    # A re-apply creates nothing; it may set the worker Job's parallelism back (scaled to 1 above), which
    # a complete Job ignores: no pod may appear or restart in the 20 s after.
    applied = kubectl("apply", "-k", OVERLAY).stdout
    check("created" not in applied, f"a re-apply created something: {applied}")
    time.sleep(20)
    after = pod_states()
    check(after == before, f"pods changed after completion: {before} -> {after}")
    check(digest(volume / "run" / "summary.json") == summary, "summary.json was rewritten")
    say(f"    {len(after)} pods, all Succeeded, restart counts unchanged over 20 s: {after}")
    changed = "; ".join(line for line in applied.splitlines() if "unchanged" not in line)
    say(f"    re-apply: {changed or 'all unchanged'}, nothing created")

    # A server started again on the finished run dir (the Job deleted and applied again) rewrites nothing.
    records = {p: digest(p) for p in (volume / "run").rglob("*") if p.is_file() and p.name != ".lock"}
    kubectl("delete", "job", SERVER, "--wait", timeout=120)
    wait_until("the old server pod to be gone", lambda: not pods(SERVER), 120)
    kubectl("apply", "-k", OVERLAY)
    kubectl("wait", "--for=condition=complete", f"job/{SERVER}", "--timeout=300s", timeout=320)
    (pod,) = pods(SERVER)
    log = kubectl("logs", pod["metadata"]["name"]).stdout
    check("run already finished" in log, f"the new server did not see a finished run: {log[-1000:]}")
    check(restarts(pod) == 0, "the new server pod restarted")
    changed = [str(p) for p, d in records.items() if not p.exists() or digest(p) != d]
    check(not changed, f"records rewritten by a server started on the finished run: {changed}")
    say(f"    a new server pod on the finished run: {log.strip().splitlines()[-1]}; {len(records)} records unchanged")


def lab_processes() -> set[str]:
    """The lab's daemons running now (pgrep -x matches the kernel's 15-character process names)."""
    return {name for name in LAB_PROCESSES
            if subprocess.run(["pgrep", "-x", name[:15]], capture_output=True).returncode == 0}


def teardown(volume: Path | None, before: set[str]) -> None:
    try:
        kubectl("delete", "-k", OVERLAY, "--ignore-not-found", "--wait", "--timeout=180s", timeout=200)
        wait_until("the run's pods to be gone", lambda: not pods(SERVER) and not pods(WORKER), 180)
    finally:
        lab("down.sh", timeout=300)
        if volume is not None and volume.exists():
            shutil.rmtree(volume)
    wait_until("the lab's daemons to exit", lambda: not (lab_processes() - before), 60, every=1)
    say(f"    objects deleted, lab down; of {', '.join(LAB_PROCESSES)} only what ran before up.sh runs: "
        f"{sorted(before) or 'none'}")


def start_lab(with_images: bool) -> None:
    """The lab built (once) and up, and both images built into its docker."""
    with step("lab build (build.sh; skips what exists)"):
        lab("build.sh", timeout=3600)
    with step("lab up (up.sh)"):
        lab("up.sh", timeout=600)
    if with_images:
        images()


def run_steps(steps) -> None:
    """(name, action) pairs in order, each timed as a step; the first failure stops them."""
    for name, action in steps:
        with step(name):
            action()


def refused(name: str) -> bool:
    """Say why this machine cannot run the lab, if it cannot."""
    if os.geteuid() != 0:
        print(f"{name}: the lab needs root (up.sh, image.sh, down.sh)", file=sys.stderr)
        return True
    if not (LAB / "up.sh").exists():
        print(f"{name}: no k8s lab at {LAB} (set K8S_LAB)", file=sys.stderr)
        return True
    return False


def final_teardown(teardown, failed: BaseException | None) -> BaseException | None:
    """teardown() as the last step; the first failure is the one reported."""
    try:
        with step("teardown (delete, down.sh, nothing left running)"):
            teardown()
    except Exception as err:  # noqa: BLE001
        failed = failed or err
    return failed


def report(name: str, failed: BaseException | None) -> int:
    """Every step's time, the total and the outcome; the exit code."""
    print("\nstep times:")
    for step_name, seconds, outcome in TIMES:
        print(f"  {seconds:7.1f} s  {outcome:6}  {step_name}")
    print(f"  {time.monotonic() - T0:7.1f} s  total")
    print(f"{name}: " + ("FAILED: " + str(failed) if failed else "all steps passed"))
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep-up", action="store_true", help="leave the objects and the lab running at the end")
    args = p.parse_args()
    if refused("k8s_e2e"):
        return 2
    volume, failed, versions = None, None, []
    before = lab_processes()
    try:
        start_lab(with_images=True)
        volume = host_run_dir()
        run_steps([
            ("apply overlays/e2e (a hostPath volume)", lambda: apply(volume)),
            ("readiness (claim bound, server Ready, non-root, workers and evaluator registered)", readiness),
            ("training (version > 0, a checkpoint on the volume)", lambda: training(volume)),
            ("/metrics scraped through the Service from a worker pod", metrics),
            ("server pod deleted mid-run: replaced, resumed, workers rejoin", lambda: server_killed_mid_run(versions)),
            ("workers 2 -> 3 (kubectl patch job/a3c-worker parallelism)", lambda: scale(3)),
            ("workers 3 -> 1", lambda: scale(1)),
            ("completion (kubectl wait --for=condition=complete on the 3 Jobs), target reached, evaluations",
             lambda: completion(volume)),
            ("after completion: no restarts or new pods, re-apply creates nothing, finished run never rewritten",
             lambda: quiet_after_completion(volume)),
        ])
    except Exception as err:  # noqa: BLE001 - any failure still tears down and prints the times
        failed = err
        say(f"FAILED: {type(err).__name__}: {err}")
        for job in (SERVER, WORKER, EVALUATOR):
            with_logs = subprocess.run([LAB / "kubectl", "get", "pods", "-l", f"job-name={job}", "-o", "wide"],
                                       capture_output=True, text=True)
            print(with_logs.stdout, flush=True)
    finally:
        if not args.keep_up:
            failed = final_teardown(lambda: teardown(volume, before), failed)
    return report("e2e-k8s", failed)


if __name__ == "__main__":
    sys.exit(main())
