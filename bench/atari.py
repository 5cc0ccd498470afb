"""Atari at the paper's scale, measured here: where a Pong worker's time goes, the peer (SB3 A2C), Pong
with the paper's network (feed-forward and LSTM) on a real cluster, and MinAtar's time to a threshold.

    python -m bench.atari                 # everything below
    python -m bench.atari --quick         # shorter runs, MinAtar feed-forward only
    python -m bench.atari --profile       # only the breakdown, the limits, --overlap-push and the peer

Where the time goes: one worker in this process (real ps-serve on loopback) with timers wrapped around
its env batch, network and Push (bench/step_times.py), per push of 4 envs x t_max 5 = 80 frames: env
(emulation and preprocessing), forward (acting), backward (the loss pass), wire (the client's
serialisation of the gradient and parse of the reply, measured alone) and wait (the rest: the round
trip the worker sits idle for); for the gymnasium and the C++ vector env paths, and with --overlap-push.
The limits, each measured alone: the env batch on one core (frames/s, and per CPU-second, steadier on a
shared machine) and the network's forward+backward per push with no env at all.

The peer: SB3 A2C with rl-baselines3-zoo's Atari settings (bench/sb3_atari.py) and our cluster
(2 workers) each run for the same wall time; frames per CPU-second of all their processes, and our ratio.

Pong: frames/s per worker (one worker alone) and for 2 workers, from the pushes' own timestamps
(start-up excluded); updates/s; bytes per update on the wire (the push's gradient plus the reply's
parameters, as protobuf on the wire); the server's time per push (request framing, decode, norm,
shared-RMSProp apply, parameter copy, reply framing) measured on the server's own code in
this process; a whole Push round trip on loopback to a real ps-serve (the cap on the cluster's
update rate, taken conservatively as one round trip after another). The baseline is one worker's
learn_step with no server (env + network only), in the same run. A frame is one emulator frame:
one agent step is 4 (frame skip). Ends with the projection to a paper-style run of 80M frames.
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import bin_path, console, fmt, fresh_run_dir, launch, print_table, stop_process, wait_for_file
from bench.runs import run_cluster
from ps.api.envs import ATARI_FRAME_SKIP

PONG = "ALE/Pong-v5"
PAPER_FRAMES = 80_000_000


class StillEnvs:
    """Envs that cost nothing: a fixed observation, no reward, never done (the network measured alone)."""

    def __init__(self, observation_space, action_space, count: int) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.obs = np.random.default_rng(0).random((count, *observation_space.shape), dtype=np.float32)
        self.count = count

    def __len__(self) -> int:
        return self.count

    def step(self, actions):
        zeros = np.zeros(self.count, dtype=bool)
        return np.zeros(self.count, np.float32), zeros, zeros, {}


def network_alone(seconds: float) -> float:
    """Seconds per push of the paper's network alone: t_max acting forwards and the loss's forward and
    backward for 4 envs x t_max 5, on envs that cost nothing."""
    import torch

    from ps.api.defaults import resolve_spec
    from worker.agents.a3c import A3CAgent
    from worker.envs import make_env_batch
    torch.set_num_threads(1)
    spec = resolve_spec({"env_id": PONG})
    real = make_env_batch(spec, seed=0)
    envs = StillEnvs(real.observation_space, real.action_space, len(real))
    real.close()
    agent = A3CAgent(spec, envs, seed=0)
    agent.learn_step(envs)
    pushes, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent.learn_step(envs)
        pushes += 1
    return (time.perf_counter() - start) / pushes


def env_alone(ale_vector: bool, seconds: float) -> tuple[float, float]:
    """(frames/s, frames per CPU-second) of one worker's env batch (4 envs) under random actions."""
    from ps.api.defaults import resolve_spec
    from worker.envs import make_env_batch
    envs = make_env_batch(resolve_spec({"env_id": PONG, "ale_vector": ale_vector}), seed=0)
    rng = np.random.default_rng(0)
    n = envs.action_space.n
    envs.step(rng.integers(0, n, len(envs)))
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        envs.step(rng.integers(0, n, len(envs)))
        steps += len(envs)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    envs.close()
    return steps * ATARI_FRAME_SKIP / wall, steps * ATARI_FRAME_SKIP / cpu


def wire_seconds(pushes: int = 30) -> float:
    """Median seconds of the client's own wire work per push at Pong's size: frame the gradient into
    the request, and cut the parameters out of the reply."""
    from ps.api.framing import join_tensor, split_tensor
    from ps.api.v1 import parameter_server_pb2 as pb
    from worker.networks import FlatParams, build_policy_value_net
    from ps.api.defaults import resolve_spec
    from worker.envs import make_env
    spec = resolve_spec({"env_id": PONG})
    env = make_env(PONG)
    flat = FlatParams(build_policy_value_net(spec, env.observation_space, env.action_space))
    env.close()
    grads = flat.grads.numpy()
    reply = join_tensor(pb.PushReply(version=1), "params", flat.values_bytes())
    times = []
    for _ in range(pushes + 1):
        start = time.perf_counter()
        join_tensor(pb.PushRequest(worker_id=1, env_steps=20), "gradients", memoryview(grads).cast("B"), "float32")
        split_tensor(reply, pb.PushReply, "params")
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def profiled_worker(out: Path, ale_vector: bool, overlap: bool, agent_steps: int, wire: float) -> dict:
    """One worker in this process, timed (bench/step_times.py), against a real ps-serve on loopback."""
    import os

    from bench.step_times import StepTimes
    from worker.client import ClientConfig, PSClient
    from worker.loop import ActorLearner
    label = f"{'vector' if ale_vector else 'gymnasium'}{' overlap' if overlap else ''}"
    run_dir = fresh_run_dir(out / f"profile-{label.replace(' ', '-')}")
    server = launch([bin_path("ps-serve"), "--port", "0", "--run-dir", str(run_dir), "--env", PONG, "--algo", "a3c",
                     "--total-steps", str(agent_steps), "--ale-vector" if ale_vector else "--no-ale-vector",
                     "--worker-timeout", "300",  # a busy machine can take a minute to build a worker's envs
                     *(["--overlap-push"] if overlap else [])], run_dir / "server.log")
    client = None
    try:
        port = int(wait_for_file(run_dir / "port", server.proc))
        client = PSClient(ClientConfig(f"127.0.0.1:{port}"))
        times = StepTimes()
        times.wrap_push(client)
        learner = ActorLearner(client)
        learner.instrument = times.install
        learner.run()
        server.proc.wait(timeout=60)
    finally:
        if client:
            client.close()
        stop_process(server.proc)
    ms = times.per_push_ms(wire)
    frames_per_push = 4 * 5 * ATARI_FRAME_SKIP
    return {"label": label, "frames_per_second": frames_per_push / ms["wall"] * 1e3, **ms}


def fixed_wall_cluster(out: Path, seconds: float, extra: list[str] = (), workers: int = 2) -> dict:
    """Our cluster (ps-serve and `workers` worker-run processes, Atari defaults) for `seconds` of wall
    time from its first push: frames, and the CPU seconds all its processes used in that span."""
    import psutil
    run_dir = fresh_run_dir(out / "peer-ours")
    server = launch([bin_path("ps-serve"), "--port", "0", "--run-dir", str(run_dir), "--env", PONG, "--algo", "a3c",
                     "--total-steps", str(10**9), "--worker-timeout", "300", *extra], run_dir / "server.log")
    procs = []
    try:
        port = int(wait_for_file(run_dir / "port", server.proc))
        procs = [launch([bin_path("worker-run"), "--ps", f"127.0.0.1:{port}"], run_dir / f"worker{i}.log")
                 for i in range(workers)]
        watched = [psutil.Process(p.proc.pid) for p in (server, *procs)]
        while _frames_logged(run_dir) < 20 * 4 * ATARI_FRAME_SKIP * workers:  # every worker under way
            if any(p.proc.poll() is not None for p in (server, *procs)):
                raise RuntimeError(f"a process of the cluster exited; see {run_dir}")
            time.sleep(0.5)
        frames0, cpu0, start = _frames_logged(run_dir), _cpu(watched), time.perf_counter()
        time.sleep(seconds)
        wall = time.perf_counter() - start
        cpu = _cpu(watched) - cpu0
        time.sleep(1.0)  # pushes.csv is flushed every half second
        frames = _frames_logged(run_dir) - frames0
    finally:
        for p in (*procs, server):
            stop_process(p.proc)
    return {"frames": frames, "seconds": wall, "cpu_seconds": cpu}


def _frames_logged(run_dir: Path) -> int:
    try:
        rows = list(csv.DictReader(open(run_dir / "pushes.csv")))
    except FileNotFoundError:
        return 0
    return sum(int(r["env_steps"]) for r in rows) * ATARI_FRAME_SKIP


def _cpu(procs) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def sb3_peer(out: Path, seconds: float) -> dict:
    """SB3 A2C with rl-zoo's Atari settings for `seconds` from its first step (bench/sb3_atari.py)."""
    import json
    import subprocess
    import sys
    out.mkdir(parents=True, exist_ok=True)
    result = out / "sb3-atari.json"
    with open(out / "sb3-atari.log", "w") as log:
        subprocess.run([sys.executable, "-m", "bench.sb3_atari", "--seconds", str(seconds), "--out", str(result)],
                       stdout=log, stderr=subprocess.STDOUT, check=True, timeout=seconds + 600)
    return json.loads(result.read_text())


def where_the_time_goes(out: Path, quick: bool) -> None:
    steps = 1500 if quick else 4000
    wire = wire_seconds()
    rows = []
    for ale_vector, overlap in ((False, False), (True, False), (True, True)):
        console.print(f"profiling one worker: {'vector' if ale_vector else 'gymnasium'} envs"
                      f"{', overlapped push' if overlap else ''} ...")
        r = profiled_worker(out, ale_vector, overlap, steps, wire)
        rows.append([r["label"], fmt(r["frames_per_second"], 0), fmt(r["wall"], 2), fmt(r["env"], 2),
                     fmt(r["forward"], 2), fmt(r["backward"], 2), fmt(r["wire"], 2), fmt(r["wait"], 2),
                     fmt(r["round_trip"], 2)])
    seconds = 3.0 if quick else 8.0
    gym_fps, gym_cpu = env_alone(False, seconds)
    vec_fps, vec_cpu = env_alone(True, seconds)
    net = network_alone(seconds)
    frames_per_push = 4 * 5 * ATARI_FRAME_SKIP
    print_table("Where one Pong worker's time goes, ms per push (4 envs x t_max 5 = 80 frames), 1 worker alone",
                ["worker", "frames/s", "ms/push", "env", "forward", "backward", "wire", "wait", "Push call"], rows,
                caption="wire: the client's serialise + deserialise measured alone; wait: the rest of the wall "
                        "time (with --overlap-push the round trip runs during the next rollout)")
    print_table("The limits, each measured alone on one core",
                ["part", "ms/push", "frames/s", "frames per CPU-second"],
                [["env batch, gymnasium wrappers", fmt(frames_per_push / gym_fps * 1e3, 2), fmt(gym_fps, 0),
                  fmt(gym_cpu, 0)],
                 ["env batch, ale-py C++ vector env", fmt(frames_per_push / vec_fps * 1e3, 2), fmt(vec_fps, 0),
                  fmt(vec_cpu, 0)],
                 ["network forward+backward", fmt(net * 1e3, 2), fmt(frames_per_push / net, 0), "-"],
                 ["both (vector env + network)", fmt(frames_per_push / vec_fps * 1e3 + net * 1e3, 2),
                  fmt(frames_per_push / (frames_per_push / vec_fps + net), 0), "-"]])


def overlap_on_the_cluster(out: Path, agent_steps: int) -> None:
    rows = []
    for overlap in (False, True):
        r = pong_cluster(out, 2, False, agent_steps, extra=["--overlap-push"] if overlap else [])
        rows.append(["on" if overlap else "off", fmt(r["frames_per_second"], 0), fmt(r["updates_per_second"], 1),
                     r.get("staleness_p50", "-")])
    print_table("Pong, 2 workers (vector envs): --overlap-push", ["overlap", "frames/s", "updates/s", "staleness p50"],
                rows)


def the_peer(out: Path, seconds: float, extra: list[str]) -> None:
    console.print(f"the peer: SB3 A2C (rl-zoo Atari settings) and our 2-worker cluster {' '.join(extra)}, "
                  f"{seconds:g} s each ...")
    theirs = sb3_peer(out, seconds)
    ours = fixed_wall_cluster(out, seconds, extra)
    per_cpu = {name: r["frames"] / max(r["cpu_seconds"], 1e-9) for name, r in (("ours", ours), ("sb3", theirs))}
    print_table(f"Pong frames per CPU-second over {seconds:g} s of wall time (start-up excluded)",
                ["system", "frames", "frames/s", "CPU seconds", "frames per CPU-second"],
                [[name, fmt(r["frames"], thousands=True), fmt(r["frames"] / r["seconds"], 0), fmt(r["cpu_seconds"], 1),
                  fmt(per_cpu[key], 0)]
                 for name, key, r in ((f"ours: ps-serve + 2 workers {' '.join(extra)}", "ours", ours),
                                      ("SB3 A2C, rl-zoo atari (16 envs, 1 process)", "sb3", theirs))])
    console.print(f"ours / SB3, frames per CPU-second: {per_cpu['ours'] / per_cpu['sb3']:.2f}x")


def learn_step_rate(lstm: bool, seconds: float) -> float:
    """Agent steps/s of one worker's act-and-learn loop alone (no server): the baseline."""
    import torch

    from ps.api.defaults import resolve_spec
    from worker.agents.a3c import A3CAgent
    from worker.envs import make_env_batch
    torch.set_num_threads(1)
    spec = resolve_spec({"env_id": PONG, "lstm": lstm})
    envs = make_env_batch(spec, seed=0)
    agent = A3CAgent(spec, envs, seed=0)
    agent.learn_step(envs)  # warm-up
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += agent.learn_step(envs)[0]
    rate = steps / (time.perf_counter() - start)
    envs.close()
    return rate


def wire_and_server_cost(lstm: bool, pushes: int = 30) -> tuple[int, int, float, int]:
    """(push bytes, reply bytes, server seconds per push, parameters) for Pong's network."""
    from ps.api.framing import join_tensor, split_tensor
    from ps.api.v1 import parameter_server_pb2 as pb
    from ps.api.defaults import resolve_spec
    from ps.api.source import Push
    from ps.config import ServerConfig
    from ps.core.parameter_server import ParameterServer
    from ps.service.reply import PushReplyBuffer
    from worker.networks import FlatParams, build_policy_value_net
    from worker.envs import make_env
    spec = resolve_spec({"env_id": PONG, "lstm": lstm, "target_return": None})
    env = make_env(PONG)
    flat = FlatParams(build_policy_value_net(spec, env.observation_space, env.action_space))
    env.close()
    n = flat.layout.size
    grads = (np.random.default_rng(0).standard_normal(n) * 1e-3).astype(np.float32).tobytes()
    request = pb.PushRequest(worker_id=1, base_version=0, gradients=pb.Tensor(data=grads, shape=[n], dtype="float32"),
                             env_steps=spec.steps_per_push)
    params = flat.values_bytes()
    reply = join_tensor(pb.PushReply(version=1), "params", params)
    with tempfile.TemporaryDirectory() as run_dir:
        core = ParameterServer(spec, ServerConfig(run_dir=run_dir))
        wid, _ = core.register("bench", 0)
        core.pull(wid, flat.layout, flat.values_bytes())
        times = []
        for i in range(pushes + 1):  # the whole reply, as the service's Push makes it; the first warms up
            start = time.perf_counter()
            buffer = PushReplyBuffer(core.params_nbytes())
            buffer.finish(core.push(Push(wid, core.version, grads, spec.steps_per_push, shape=(n,)), out=buffer.params))
            if i:
                times.append(time.perf_counter() - start)
        # The server also cuts the gradient out of each request (outside the lock): the service's Push.
        wire = request.SerializeToString()
        for i in range(pushes):
            start = time.perf_counter()
            split_tensor(wire, pb.PushRequest, "gradients")
            times[i] += time.perf_counter() - start
        seconds = float(np.median(times))  # the median: other processes on the host add outliers
        core.close()
    return request.ByteSize(), len(reply), seconds, n


def loopback_round_trip(lstm: bool, out: Path, pushes: int = 30) -> float:
    """Median seconds of one Push round trip (gradient out, parameters back) to a real ps-serve on
    loopback, from a client that does nothing else: transport plus the server's whole handling."""
    import os

    from ps.api.defaults import resolve_spec
    from ps.api.source import Push
    from worker.client import ClientConfig, PSClient
    from worker.envs import make_env
    from worker.networks import FlatParams, build_policy_value_net
    spec = resolve_spec({"env_id": PONG, "lstm": lstm})
    env = make_env(PONG)
    flat = FlatParams(build_policy_value_net(spec, env.observation_space, env.action_space))
    env.close()
    run_dir = fresh_run_dir(out / f"round-trip-{'lstm' if lstm else 'ff'}")
    server = launch([bin_path("ps-serve"), "--port", "0", "--run-dir", str(run_dir), "--env", PONG,
                     "--algo", "a3c", "--total-steps", str(10**12), *(["--lstm"] if lstm else [])],
                    run_dir / "server.log")
    client = None
    try:
        port = int(wait_for_file(run_dir / "port", server.proc))
        client = PSClient(ClientConfig(f"127.0.0.1:{port}"))
        wid = client.register("bench", os.getpid()).worker_id
        version = client.pull(wid, flat.layout, flat.values_bytes()).version
        zeros = np.zeros(flat.layout.size, np.float32)
        times = []
        for _ in range(pushes + 3):
            start = time.perf_counter()
            version = client.push(Push(wid, version, zeros, spec.steps_per_push)).version
            times.append(time.perf_counter() - start)
        return float(np.median(times[3:]))
    finally:
        if client:
            client.close()
        stop_process(server.proc)


def steady_rates(rows: list[dict], skip: float = 0.2) -> tuple[float, float]:
    """(agent steps/s, updates/s) between the pushes' timestamps, the first `skip` of them dropped."""
    times = [float(r["time_seconds"]) for r in rows]
    k = int(len(rows) * skip)
    span = times[-1] - times[k] if len(times) > k + 1 else float("nan")
    steps = sum(int(r["env_steps"]) for r in rows[k + 1:])
    return steps / span, (len(rows) - k - 1) / span


def pong_cluster(out: Path, workers: int, lstm: bool, agent_steps: int, extra: list[str] = ()) -> dict:
    label = f"pong-{workers}w-{'lstm' if lstm else 'ff'}{''.join(extra).replace('--', '-')}"
    run = run_cluster(out / label, label, seed=1, workers=workers, timeout=900,
                      server_args=["--env", PONG, "--algo", "a3c", "--total-steps", str(agent_steps),
                                   "--worker-timeout", "300",
                                   *(["--lstm"] if lstm else []), *extra])
    if not run.rows:
        return {"label": label, "frames_per_second": float("nan"), "updates_per_second": float("nan")}
    steps_per_second, updates_per_second = steady_rates(run.rows)
    return {"label": label, "frames_per_second": steps_per_second * ATARI_FRAME_SKIP,
            "updates_per_second": updates_per_second, "staleness_p50": run.summary["staleness"]["p50"]}


def minatar_to_threshold(out: Path, lstm: bool, target: float, budget: int) -> dict:
    label = f"minatar-breakout-{'lstm' if lstm else 'ff'}"
    run = run_cluster(out / label, label, seed=1, workers=2, timeout=900,
                      server_args=["--env", "MinAtar/Breakout-v1", "--algo", "a3c", "--target-return", str(target),
                                   "--total-steps", str(budget), *(["--lstm"] if lstm else [])])
    s = run.summary
    return {"label": label, "solved": s.get("solved"), "seconds": s.get("time_to_target_seconds"),
            "steps": s.get("steps_to_target"), "wall": run.wall_seconds, "best": s.get("best_mean100")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.atari", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="shorter Pong runs; MinAtar feed-forward only")
    p.add_argument("--pong-steps", type=int, default=6000, help="agent steps per Pong cluster run (x4 frames)")
    p.add_argument("--minatar-target", type=float, default=5.0, help="MinAtar Breakout mean100 threshold")
    p.add_argument("--minatar-budget", type=int, default=1_000_000, help="MinAtar step budget")
    p.add_argument("--profile", action="store_true",
                   help="only the breakdown, the limits, --overlap-push and the peer")
    p.add_argument("--peer-seconds", type=float, default=120.0, help="wall time of the peer comparison, each side")
    p.add_argument("--peer-args", default="",
                   help='our server flags in the peer comparison, e.g. --peer-args="--envs 16"')
    p.add_argument("--peer-only", action="store_true", help="only the peer comparison")
    p.add_argument("--out-dir", type=Path, default=Path("runs/bench-atari"))
    args = p.parse_args(argv)
    pong_steps = args.pong_steps // 3 if args.quick else args.pong_steps
    console.width = max(console.width, 150)  # the Pong table is wide

    if not args.peer_only:
        where_the_time_goes(args.out_dir, args.quick)
        overlap_on_the_cluster(args.out_dir, 2 * pong_steps)
    the_peer(args.out_dir, args.peer_seconds / 2 if args.quick else args.peer_seconds, args.peer_args.split())
    if args.profile or args.peer_only:
        return 0

    rows, projection = [], {}
    for lstm in (False, True):
        name = "LSTM" if lstm else "FF"
        console.print(f"Pong {name}: baseline, wire, server ...")
        alone = learn_step_rate(lstm, seconds=5.0 if args.quick else 10.0) * ATARI_FRAME_SKIP
        push_bytes, reply_bytes, server_seconds, n = wire_and_server_cost(lstm)
        one = pong_cluster(args.out_dir, 1, lstm, pong_steps)
        two = pong_cluster(args.out_dir, 2, lstm, 2 * pong_steps)
        round_trip = loopback_round_trip(lstm, args.out_dir)
        frames_per_push = 4 * 5 * ATARI_FRAME_SKIP  # Atari defaults: 4 envs x t_max 5 agent steps
        # The server serves pushes one after another at best as fast as one client's round trip
        # (its gRPC work is under one GIL): a conservative cap on the whole cluster's frames/s.
        server_cap = frames_per_push / round_trip
        rows.append([name, fmt(n, thousands=True), fmt(alone, 0), fmt(one["frames_per_second"], 0),
                     fmt(one["frames_per_second"] / alone, 2), fmt(two["frames_per_second"], 0),
                     fmt(two["frames_per_second"] / one["frames_per_second"], 2),
                     fmt(two["updates_per_second"], 1), f"{(push_bytes + reply_bytes) / 1e6:.2f} MB",
                     fmt(server_seconds * 1e3, 2), fmt(round_trip * 1e3, 2), fmt(server_cap, 0)])
        projection[name] = (two["frames_per_second"], one["frames_per_second"], server_cap,
                            frames_per_push / server_seconds)
    print_table("Pong (ALE/Pong-v5), the paper's network, 4 envs x t_max 5 per push; frames = 4 x agent steps",
                ["network", "parameters", "frames/s alone (baseline)", "frames/s 1 worker", "x baseline",
                 "frames/s 2 workers", "x 1 worker", "updates/s 2 workers", "wire/update push+reply",
                 "server ms/push", "round trip ms", "cap frames/s"], rows)

    console.print(f"A paper-style run: {PAPER_FRAMES / 1e6:.0f}M frames.")
    for name, (two_fps, one_fps, cap, apply_cap) in projection.items():
        low, high = min(15 * one_fps, cap), min(15 * one_fps, apply_cap)  # one core left to the server
        console.print(f"  {name}: here (2 workers, {two_fps:,.0f} frames/s) {PAPER_FRAMES / two_fps / 3600:,.1f} h; "
                      f"16-core host, 15 workers x {one_fps:,.0f} frames/s: {low:,.0f}-{high:,.0f} frames/s "
                      f"(capped by back-to-back round trips .. by the server's own work) = "
                      f"{PAPER_FRAMES / high / 3600:,.1f}-{PAPER_FRAMES / low / 3600:,.1f} h")

    minatar = [minatar_to_threshold(args.out_dir, lstm, args.minatar_target, args.minatar_budget)
               for lstm in ((False,) if args.quick else (False, True))]
    base = minatar[0]["seconds"]
    print_table(f"MinAtar/Breakout-v1, 2 workers: time and steps to mean100 >= {args.minatar_target:g} "
                f"(random policy: 0.36)",
                ["network", "reached", "seconds", "x FF", "env steps", "best mean100", "wall seconds"],
                [[m["label"], m["solved"], fmt(m["seconds"]), fmt(m["seconds"] / base, 2) if m["seconds"] and base else "-",
                  fmt(m["steps"], thousands=True), fmt(m["best"], 2), fmt(m["wall"])] for m in minatar])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
