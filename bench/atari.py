"""Atari at the paper's scale, measured here: Pong with the paper's network (feed-forward and LSTM)
on a real cluster, and MinAtar's time to a mean-return threshold.

    python -m bench.atari                 # Pong 1 and 2 workers, with and without --lstm; MinAtar Breakout
    python -m bench.atari --quick         # shorter Pong runs, MinAtar feed-forward only

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
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import bin_path, console, fmt, fresh_run_dir, launch, print_table, stop_process, wait_for_file
from bench.runs import run_cluster
from ps.api.envs import ATARI_FRAME_SKIP

PONG = "ALE/Pong-v5"
PAPER_FRAMES = 80_000_000


def learn_step_rate(lstm: bool, seconds: float) -> float:
    """Agent steps/s of one worker's act-and-learn loop alone (no server): the baseline."""
    import torch

    from ps.api.defaults import resolve_spec
    from worker.agents.a3c import A3CAgent
    from worker.envs import EnvBatch
    torch.set_num_threads(1)
    spec = resolve_spec({"env_id": PONG, "lstm": lstm})
    envs = EnvBatch(PONG, spec.envs_per_worker, seed=0)
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


def pong_cluster(out: Path, workers: int, lstm: bool, agent_steps: int) -> dict:
    label = f"pong-{workers}w-{'lstm' if lstm else 'ff'}"
    run = run_cluster(out / label, label, seed=1, workers=workers, timeout=900,
                      server_args=["--env", PONG, "--algo", "a3c", "--total-steps", str(agent_steps),
                                   *(["--lstm"] if lstm else [])])
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
    p.add_argument("--out-dir", type=Path, default=Path("runs/bench-atari"))
    args = p.parse_args(argv)
    pong_steps = args.pong_steps // 3 if args.quick else args.pong_steps
    console.width = max(console.width, 150)  # the Pong table is wide

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
