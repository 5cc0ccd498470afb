"""ps-eval: load a saved policy with its run spec and play episodes with it, learning nothing.

    ps-eval runs/cartpole                       # the run's params_final.npz (else its newest checkpoint)
    ps-eval runs/cartpole/checkpoints/ckpt-00000042.a3c --episodes 20 --deterministic
    ps-eval runs/pong --episodes 3 --video videos/   # MP4s of the episodes (needs moviepy: the `video` extra)

Prints mean +- std of the episode returns (the game score for Atari) and writes eval.json beside the
policy. Works for every method and env family the run spec names.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from ps.api.saved import SavedPolicy, load_policy
from ps.api.spec import ConfigError


def evaluate(policy: SavedPolicy, episodes: int, deterministic: bool = False, seed: int = 0,
             video_dir: str | None = None, envs_count: int = 1) -> dict:
    """Play `episodes` episodes with the saved parameters; the result document (eval.json's)."""
    import gymnasium
    import torch

    from .agents import make_agent
    from .envs import EnvBatch
    from .normalize import normalized
    torch.set_num_threads(1)
    spec = policy.spec
    try:
        envs = EnvBatch(spec.env_id, envs_count, seed, render_mode="rgb_array" if video_dir else None,
                        wrap=_recorder(video_dir) if video_dir else None)
    except gymnasium.error.DependencyNotInstalled as err:  # rendering for the video
        raise ConfigError(f"--video: {' '.join(str(err).split())}") from None
    try:
        agent = make_agent(spec, envs, seed)
        if agent.flat.layout.hash != policy.layout.hash:
            raise ConfigError(f"{policy.source}: its layout {policy.layout.hash} is not the network this worker "
                              f"builds for {spec.env_id} ({agent.flat.layout.hash}): saved by another version?")
        agent.flat.load(policy.theta.tobytes())
        envs = normalized(envs, spec, agent.flat, learn=False)  # with the saved statistics
        start = time.monotonic()
        returns, lengths = play_episodes(agent, envs, episodes, deterministic)
    finally:
        envs.close()
    return {"env_id": spec.env_id, "algo": spec.algo, "source": str(policy.source), "version": policy.version,
            "episodes": len(returns), "deterministic": deterministic, "seed": seed,
            "mean_return": statistics.fmean(returns), "std_return": statistics.pstdev(returns),
            "returns": returns, "lengths": lengths, "seconds": round(time.monotonic() - start, 3),
            "video_dir": video_dir}


def play_episodes(agent, envs, episodes: int, deterministic: bool, between=None) -> tuple[list[float], list[int]]:
    """Play until `episodes` episodes have finished on the agent's current parameters, learning
    nothing; (returns, lengths) of the first `episodes`. `between()`, when given, runs after every
    step (the evaluator keeps in touch with the server there). With one env the episodes are played
    one after another, so short ones are not favoured, and the env is left at a fresh episode."""
    returns: list[float] = []
    lengths: list[int] = []
    while len(returns) < episodes:
        agent.play_step(envs, deterministic)
        finished, steps = envs.take_finished()
        returns += finished
        lengths += steps
        if between is not None:
            between()
    return returns[:episodes], lengths[:episodes]


def _recorder(video_dir: str):
    try:
        import moviepy  # noqa: F401  (gymnasium's RecordVideo writes the MP4 with it)
    except ImportError:
        raise ConfigError("--video needs moviepy and pygame: pip install -e '.[video]'") from None
    from gymnasium.wrappers import RecordVideo
    for name in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER"):  # pygame renders off-screen, headless
        os.environ.setdefault(name, "dummy")
    return lambda env, k: RecordVideo(env, video_dir, episode_trigger=lambda _: True, name_prefix=f"eval-{k}",
                                      disable_logger=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ps-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", help="a run dir, a params_final.npz or a checkpoint file (ckpt-N.a3c)")
    p.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    p.add_argument("--deterministic", action="store_true",
                   help="the most likely action (greedy Q); else sampled (Q: epsilon 0.05)")
    p.add_argument("--seed", type=int, default=0, help="the envs' and sampling's seed (default 0)")
    p.add_argument("--video", metavar="DIR", help="record every episode as an MP4 in DIR")
    p.add_argument("--out", help="where to write the result (default: eval.json beside the policy)")
    args = p.parse_args(argv)
    try:
        if args.episodes < 1:
            raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
        policy = load_policy(args.policy)
        result = evaluate(policy, args.episodes, args.deterministic, args.seed, args.video)
    except ConfigError as err:
        print(f"ps-eval: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else policy.source.with_name("eval.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['env_id']} {result['algo']} from {policy.source}: mean return {result['mean_return']:.2f} "
          f"+- {result['std_return']:.2f} over {result['episodes']} episodes "
          f"({'deterministic' if args.deterministic else 'sampled'}); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
