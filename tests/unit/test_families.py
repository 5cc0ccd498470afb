"""Env-family defaults: filled in where no flag was given, never over a flag, and CartPole untouched."""
from ps.cli import parse_serve_args
from ps.api.spec import RunSpec
from ps.api.defaults import with_env_defaults
from ps.api.envs import env_family
from ps.flags import build_dataclass


def spec_from(*argv: str) -> RunSpec:
    args = parse_serve_args(list(argv))
    return with_env_defaults(build_dataclass(RunSpec, args), args.given)


def test_flags_given_are_found_in_every_spelling():
    args = parse_serve_args(["--env", "Pendulum-v1", "--lr=0.002", "--lstm", "--target-return", "none"])
    assert {"env_id", "lr", "lstm", "target_return"} <= args.given
    assert "t_max" not in args.given and "gamma" not in args.given


def test_cartpole_keeps_the_runspec_defaults_exactly():
    assert spec_from("--env", "CartPole-v1") == RunSpec()


def test_families_are_told_apart_by_entry_point_and_action_space():
    import gymnasium
    assert env_family("ALE/Pong-v5") == "atari"
    assert env_family("MinAtar/Breakout-v1") == "minatar"
    assert env_family("Pendulum-v1", gymnasium.make("Pendulum-v1").action_space) == "continuous"
    assert env_family("CartPole-v1", gymnasium.make("CartPole-v1").action_space) == "classic"


def test_family_defaults_fill_only_what_no_flag_set():
    pong = spec_from("--env", "ALE/Pong-v5", "--lr", "0.0003")
    assert pong.lr == 0.0003                                     # the flag wins
    assert pong.entropy_beta == 0.01 and pong.envs_per_worker == 4 and pong.target_return is None
    pendulum = spec_from("--env", "Pendulum-v1", "--algo", "a3c")
    assert pendulum.gamma == 0.9 and pendulum.target_return == -200.0 and pendulum.envs_per_worker == 16
    assert spec_from("--env", "Pendulum-v1", "--gamma", "0.99").gamma == 0.99
    minatar = spec_from("--env", "MinAtar/Breakout-v1", "--target-return", "3")
    assert minatar.target_return == 3 and minatar.lr == 1e-3
