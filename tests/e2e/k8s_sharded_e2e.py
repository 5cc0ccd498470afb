"""deploy/k8s/sharded on a real Kubernetes (v1.20, single node): ../shared/k8s-lab. Run by
`make e2e-k8s-sharded` only (pytest never collects it: no test_ prefix). Needs root and the lab's build.

Steps, each timed: lab build check and start; both images; deploy/k8s/overlays/e2e-sharded applied (2 shards
of a StatefulSet, each on its own hostPath claim; 2 workers and the evaluator); readiness (both shards Ready,
non-root, the workers registered with every shard, the evaluator with the run); training on both shards with checkpoints on both volumes; ps-status
and /metrics show each shard; one shard's ps-serve killed with SIGKILL mid-run: its container restarts,
resumes from its checkpoint (never before it) and catches up T from the other shard, and the workers and
the evaluator carry on without restarting; completion (`kubectl wait --for=condition=complete job/a3c-worker
job/a3c-evaluator`) with the target reached and the evaluator's rounds in every shard's summary.json; after it the finished shards stay up without restarting, and a deleted shard pod comes back to a
finished run and rewrites nothing; teardown.

    python tests/e2e/k8s_sharded_e2e.py [--keep-up]      # K8S_LAB=path/to/k8s-lab (default ../shared/k8s-lab)
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from k8s_e2e import (LAB, ROOT, check, digest, final_teardown, fresh_volume, kubectl, lab, lab_processes,  # noqa: E402
                     live, pods, ready, refused, report, restarts, run, run_steps, say, start_lab, wait_until)

OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "e2e-sharded"
SHARDS, WORKER, EVALUATOR = "a3c-ps-shard", "a3c-worker", "a3c-evaluator"
COUNT = 2


def shard_pods() -> list[dict]:
    return json.loads(kubectl("get", "pods", "-l", "app.kubernetes.io/name=a3c-ps-shard", "-o", "json").stdout)["items"]


def pod(name: str) -> dict:
    return json.loads(kubectl("get", "pod", name, "-o", "json").stdout)


def status() -> dict:
    """The run's status with every shard's: ps-status --json inside shard 0's pod (it has the token)."""
    out = kubectl("exec", f"{SHARDS}-0", "--", "ps-status", "--ps", "127.0.0.1:50051", "--json", timeout=60).stdout
    doc = json.loads(out)
    check(len(doc.get("shards", [])) == COUNT, f"ps-status shows {len(doc.get('shards', []))} shards: {out[:800]}")
    return doc


def volumes() -> list[Path]:
    """Each shard's run dir as the node sees it (the PersistentVolumes' hostPaths, in shard order)."""
    rendered = yaml.safe_load_all(run(LAB / "kubectl", "kustomize", OVERLAY, quiet=True).stdout)
    paths = {v["spec"]["claimRef"]["name"]: Path(v["spec"]["hostPath"]["path"])
             for v in rendered if v and v["kind"] == "PersistentVolume"}
    check(sorted(paths) == [f"run-{SHARDS}-{i}" for i in range(COUNT)], f"the overlay's volumes: {paths}")
    return [paths[f"run-{SHARDS}-{i}"] for i in range(COUNT)]


def checkpoints(volume: Path) -> list[str]:
    return sorted(p.name for p in (volume / "run" / "checkpoints").glob("*.a3c"))


def delete_all() -> None:
    """The overlay's objects and the claims the StatefulSet made (they outlive it); a volume is deleted only
    once its claim is gone, and a claim once its pod is."""
    kubectl("delete", "-k", OVERLAY, "--ignore-not-found", "--wait=false", timeout=120)
    kubectl("delete", "pvc", *(f"run-{SHARDS}-{i}" for i in range(COUNT)), "--ignore-not-found", "--wait",
            timeout=300)
    wait_until("the run's pods and volumes to be gone", lambda: not shard_pods() and not pods(WORKER)
               and not pods(EVALUATOR) and not [
        v for v in json.loads(kubectl("get", "pv", "-o", "json").stdout)["items"]
        if v["metadata"]["name"].startswith("a3c-e2e-shard-")], 180)


def apply(vols: list[Path]) -> None:
    delete_all()  # an earlier run's leftovers
    for volume in vols:
        fresh_volume(volume)
    kubectl("apply", "-k", OVERLAY)


def readiness() -> dict:
    wait_until(f"{COUNT} ready shard pods", lambda: len([p for p in live(shard_pods()) if ready(p)]) == COUNT, 300)
    wait_until("2 running worker pods", lambda: len([p for p in live(pods(WORKER)) if ready(p)]) == 2, 300)
    for i in range(COUNT):
        claim = json.loads(kubectl("get", "pvc", f"run-{SHARDS}-{i}", "-o", "json").stdout)
        check(claim["status"].get("phase") == "Bound", f"claim run-{SHARDS}-{i} is {claim['status']}")
        uid = kubectl("exec", f"{SHARDS}-{i}", "--", "id", "-u").stdout.strip()
        check(uid == "10001", f"shard {i} runs as uid {uid}")
    s = wait_until("2 workers registered with every shard, and the evaluator",
                   lambda: (s := status())["workers_connected"] == 2 and s["evaluators_connected"] == 1
                   and all(sh.get("workers_connected") == 2 for sh in s["shards"]) and s, 180)
    say(f"    {COUNT} shards ready as uid 10001 on their own claims; 2 workers registered with each: "
        + ", ".join(f"{sh['address']} slice {sh['shard']['start']}:{sh['shard']['end']}" for sh in s["shards"]))
    return s


def training(vols: list[Path]) -> dict:
    def progress():
        s = status()
        return (all(sh["version"] > 0 for sh in s["shards"]) and all(checkpoints(v) for v in vols)) and s
    s = wait_until("training on every shard and a checkpoint on every volume", progress, 300)
    check(s["state"] == "running", f"the run is already {s['state']}")
    say(f"    T {s['env_steps']}, versions {[sh['version'] for sh in s['shards']]}, "
        f"checkpoints {[checkpoints(v) for v in vols]}")
    return s


def metrics() -> None:
    worker = live(pods(WORKER))[0]["metadata"]["name"]
    for i in range(COUNT):
        code = (f"import urllib.request; print(urllib.request.urlopen('http://{SHARDS}-{i}:9100/metrics', "
                "timeout=10).read().decode())")
        text = kubectl("exec", worker, "--", "python", "-c", code, timeout=60).stdout
        info = re.search(r'^a3c_ps_shard_info\{([^}]*)\} 1', text, re.MULTILINE)
        updates = re.search(r"^a3c_ps_updates_total (\S+)$", text, re.MULTILINE)
        check(info is not None and f'shard="{i}"' in info[1], f"shard {i}'s /metrics has no a3c_ps_shard_info: "
              f"{text[:500]}")
        check(updates is not None and float(updates[1]) > 0, f"shard {i} has applied no update")
        say(f"    {worker} -> http://{SHARDS}-{i}:9100/metrics: a3c_ps_shard_info{{{info[1]}}}, "
            f"a3c_ps_updates_total {updates[1]}")


def shard_killed_mid_run(vols: list[Path], index: int = 1) -> None:
    """SIGKILL to shard `index`'s ps-serve (the container's shell is PID 1 and exits with it: the kubelet
    restarts the container in the same pod, on the same claim)."""
    name = f"{SHARDS}-{index}"
    workers_before = {p["metadata"]["name"]: restarts(p) for job in (WORKER, EVALUATOR) for p in live(pods(job))}
    before = status()
    check(before["state"] == "running", f"the run is {before['state']} before the shard was killed")
    restarts_before = restarts(pod(name))
    saved = checkpoints(vols[index])
    kill = ("import os, signal\n"
            "for pid in os.listdir('/proc'):\n"
            "    if pid.isdigit() and int(pid) not in (1, os.getpid()):\n"
            "        argv = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
            "        if any(a.endswith(b'/ps-serve') for a in argv[:2]):\n"
            "            print('killed', pid, flush=True); os.kill(int(pid), signal.SIGKILL)\n")
    # the container's shell exits with ps-serve and takes this exec with it: its exit code may be 137
    out = kubectl("exec", name, "--", "python", "-c", kill, check_rc=False).stdout
    check("killed" in out, f"no ps-serve process found in {name}")
    say(f"    SIGKILL to {name}'s ps-serve ({out.strip()}) at versions "
        f"{[sh['version'] for sh in before['shards']]}, T {before['env_steps']}; its checkpoints {saved}")
    wait_until(f"{name}'s container restarted and Ready",
               lambda: restarts(p := pod(name)) > restarts_before and ready(p), 300)
    log = kubectl("logs", name).stdout
    resumed = re.search(r"resuming from (\S+) \(T (\d+), version (\d+)\)", log)
    check(resumed is not None, f"{name} did not resume from a checkpoint: {log[-1500:]}")
    check(Path(resumed[1]).name in checkpoints(vols[index]) and Path(resumed[1]).name >= saved[-1],
          f"resumed from {resumed[1]}, not the newest checkpoint on its volume at the kill ({saved[-1]})")
    version = int(resumed[3])
    say(f"    {name} resumed from {Path(resumed[1]).name} (T {resumed[2]}, version {version})")
    s = wait_until("the workers pushing to the restarted shard again",
                   lambda: (s := status())["shards"][index]["version"] > version
                   and all(sh.get("workers_connected") == 2 for sh in s["shards"]) and s, 180)
    check(s["env_steps"] >= before["env_steps"], f"T went back: {before['env_steps']} -> {s['env_steps']}")
    after = {p["metadata"]["name"]: restarts(p) for job in (WORKER, EVALUATOR) for p in live(pods(job))}
    check(after == workers_before, f"the workers were restarted or replaced: {workers_before} -> {after}")
    say(f"    workers and the evaluator carried on without restarting; versions {[sh['version'] for sh in s['shards']]}, "
        f"T {s['env_steps']}")


def completion(vols: list[Path]) -> dict:
    kubectl("wait", "--for=condition=complete", f"job/{WORKER}", f"job/{EVALUATOR}", "--timeout=900s", timeout=920)

    def summary(volume: Path) -> dict | None:  # written as the shard exits, after the workers have left
        path = volume / "run" / "summary.json"
        return json.loads(path.read_text()) if path.exists() else None
    summaries = [wait_until(f"shard {i}'s summary.json", lambda v=v: summary(v), 120) for i, v in enumerate(vols)]
    first = summaries[0]
    target = first["run_spec"]["target_return"]
    check(bool(first["solved"]) and first["best_mean100"] >= target,
          f"the run ended without reaching its target: {first['stop_reason']}")
    for i, s in enumerate(summaries):
        check(s["stop_reason"] == first["stop_reason"], f"shard {i} stopped for {s['stop_reason']!r}, "
              f"shard 0 for {first['stop_reason']!r}")
        check(s["evaluations"] > 0 and s["eval_mean"] is not None, f"shard {i}'s summary.json has no evaluation")
    say(f"    {first['stop_reason']}; T {first['env_steps']}, updates per shard "
        f"{[s['updates'] for s in summaries]}, {first['wall_seconds']:.0f} s, time to target "
        f"{first['time_to_target_seconds']} s; evaluation rounds per shard {[s['evaluations'] for s in summaries]}, "
        f"the last eval_mean {first['eval_mean']}")
    return first


def quiet_after_completion(vols: list[Path]) -> None:
    wait_until("every shard finished (alive, not ready)", lambda: all(
        not ready(p) and p["status"]["phase"] == "Running" for p in shard_pods()), 180)
    before = {p["metadata"]["name"]: restarts(p) for p in shard_pods()}
    records = {p: digest(p) for v in vols for p in (v / "run").rglob("*") if p.is_file() and p.name != ".lock"}
    time.sleep(20)
    after = {p["metadata"]["name"]: restarts(p) for p in shard_pods()}
    check(after == before, f"finished shards restarted: {before} -> {after}")
    say(f"    finished shards alive and not ready, restart counts unchanged over 20 s: {after}")
    name = f"{SHARDS}-0"
    started = time.monotonic()
    kubectl("delete", "pod", name, "--wait", timeout=180)
    seconds = time.monotonic() - started
    check(seconds < 30, f"deleting a finished shard's pod took {seconds:.0f} s: it ignored SIGTERM")
    wait_until(f"{name} back and finished", lambda: "run already finished" in kubectl("logs", name).stdout, 300)
    changed = [str(p) for p, d in records.items() if not p.exists() or digest(p) != d]
    check(not changed, f"records rewritten by a shard started on the finished run: {changed}")
    say(f"    {name} deleted in {seconds:.1f} s and recreated: 'run already finished'; {len(records)} records "
        "unchanged")


def teardown(vols: list[Path] | None, before: set[str]) -> None:
    try:
        delete_all()
    finally:
        lab("down.sh", timeout=300)
        for volume in vols or []:
            shutil.rmtree(volume, ignore_errors=True)
    wait_until("the lab's daemons to exit", lambda: not (lab_processes() - before), 60, every=1)
    say("    objects and claims deleted, lab down")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep-up", action="store_true", help="leave the objects and the lab running at the end")
    p.add_argument("--no-images", action="store_true", help="use the images an earlier run built")
    args = p.parse_args()
    if refused("k8s_sharded_e2e"):
        return 2
    vols, failed = None, None
    before = lab_processes()
    try:
        start_lab(with_images=not args.no_images)
        vols = volumes()
        run_steps([
            ("apply overlays/e2e-sharded (2 shards, a hostPath volume each)", lambda: apply(vols)),
            ("readiness (both shards Ready on their claims, non-root, workers registered with each)", readiness),
            ("training (every shard's version > 0, a checkpoint on every volume)", lambda: training(vols)),
            ("/metrics of each shard scraped through its Service from a worker pod", metrics),
            ("SIGKILL to shard 1 mid-run: restarted, resumed from its checkpoint, workers carry on",
             lambda: shard_killed_mid_run(vols)),
            ("completion (kubectl wait --for=condition=complete job/a3c-worker job/a3c-evaluator), target reached",
             lambda: completion(vols)),
            ("after completion: finished shards stay up, a recreated shard rewrites nothing",
             lambda: quiet_after_completion(vols)),
        ])
    except Exception as err:  # noqa: BLE001 - any failure still tears down and prints the times
        failed = err
        say(f"FAILED: {type(err).__name__}: {err}")
        print(subprocess.run([LAB / "kubectl", "get", "pods", "-o", "wide"], capture_output=True,
                             text=True).stdout, flush=True)
        for i in range(COUNT):
            print(subprocess.run([LAB / "kubectl", "logs", f"{SHARDS}-{i}", "--tail", "30"], capture_output=True,
                                 text=True).stdout, flush=True)
    finally:
        if not args.keep_up:
            failed = final_teardown(lambda: teardown(vols, before), failed)
    return report("e2e-k8s-sharded", failed)


if __name__ == "__main__":
    sys.exit(main())
