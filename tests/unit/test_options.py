"""The run spec from the defaults table, a --config file and flags: flags win, the table fills the rest,
CartPole keeps RunSpec's own defaults, and every long-standing spelling of a flag still parses."""
import json

import pytest

from ps.api.defaults import resolve_spec
from ps.api.envs import env_family
from ps.api.spec import ConfigError, RunSpec
from ps.cli import serve_main
from ps.options import parse_serve_args


def spec_from(*argv: str) -> RunSpec:
    return parse_serve_args(list(argv)).run


def test_every_spelling_of_the_flags_parses():
    args = parse_serve_args(["--env", "Pendulum-v1", "--lr=0.002", "--lstm", "--target-return", "none",
                             "--sync", "true", "--fresh", "--checkpoint-every", "5", "--worker-timeout=7",
                             "--envs", "3", "--local-workers", "2"])
    assert args.run.env_id == "Pendulum-v1" and args.run.lr == 0.002 and args.run.lstm
    assert args.run.target_return is None and args.run.sync and args.run.envs_per_worker == 3
    assert args.server.fresh and args.server.checkpoint_every_seconds == 5 and args.server.worker_timeout_seconds == 7
    assert args.local_workers == 2
    assert not spec_from("--sync", "false").sync and spec_from("--target-return", "off").target_return is None


def test_cartpole_keeps_the_runspec_defaults_exactly():
    assert spec_from("--env", "CartPole-v1") == RunSpec()
    assert resolve_spec({"env_id": "CartPole-v1"}) == RunSpec()


def test_families_are_told_apart_by_entry_point_and_action_space():
    import gymnasium
    assert env_family("ALE/Pong-v5") == "atari"
    assert env_family("MinAtar/Breakout-v1") == "minatar"
    assert env_family("Pendulum-v1", gymnasium.make("Pendulum-v1").action_space) == "continuous"
    assert env_family("CartPole-v1", gymnasium.make("CartPole-v1").action_space) == "classic"


def test_table_rows_fill_only_what_no_flag_set():
    pong = spec_from("--env", "ALE/Pong-v5", "--lr", "0.0003")
    assert pong.lr == 0.0003                                     # the flag wins
    assert pong.entropy_beta == 0.01 and pong.envs_per_worker == 4 and pong.target_return is None
    pendulum = spec_from("--env", "Pendulum-v1", "--algo", "a3c")
    assert pendulum.gamma == 0.95 and pendulum.target_return == -200.0 and pendulum.envs_per_worker == 16
    assert spec_from("--env", "Pendulum-v1", "--gamma", "0.99").gamma == 0.99
    minatar = spec_from("--env", "MinAtar/Breakout-v1", "--target-return", "3")
    assert minatar.target_return == 3 and minatar.lr == 1e-3


def test_value_based_rows_apply_over_the_family_and_the_same_through_the_python_api():
    q = spec_from("--algo", "n-step-q")
    assert (q.lr, q.t_max, q.envs_per_worker) == (3e-3, 5, 8)
    assert resolve_spec({"algo": "n-step-q"}) == q
    assert spec_from("--algo", "n-step-q", "--lr", "0.01").lr == 0.01


def test_config_file_sits_between_the_table_and_the_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("env_id: Pendulum-v1\ngamma: 0.97\nt_max: 7\nrun_dir: somewhere\n")
    args = parse_serve_args(["--config", str(config), "--t-max", "9"])
    assert args.run.env_id == "Pendulum-v1" and args.run.gamma == 0.97   # the file over the table's 0.95
    assert args.run.t_max == 9 and args.run.envs_per_worker == 16         # the flag over the file; the table
    assert args.server.run_dir == "somewhere"


def test_print_spec_output_reads_back_as_a_config(tmp_path, capsys):
    assert serve_main(["--env", "Pendulum-v1", "--lr", "0.002", "--print-spec"]) == 0
    printed = capsys.readouterr().out
    (tmp_path / "run.yaml").write_text(printed)
    assert parse_serve_args(["--config", str(tmp_path / "run.yaml")]).run == RunSpec(**json.loads(printed))
    assert json.loads(printed)["lr"] == 0.002 and json.loads(printed)["gamma"] == 0.95


@pytest.mark.parametrize("text, words", [("nope: 1\n", "unknown field(s) nope"), ("- a\n- b\n", "must map"),
                                         ("t_max: [\n", "not valid YAML")])
def test_a_bad_config_file_is_one_clear_line(tmp_path, capsys, text, words):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    assert serve_main(["--config", str(config), "--print-spec"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ps-serve: error:") and words in err[0]


def test_a_bad_value_in_the_config_is_the_spec_s_own_refusal(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text("algo: dqn\n")
    assert serve_main(["--config", str(tmp_path / "run.yaml"), "--print-spec"]) == 2
    assert "unknown --algo 'dqn'" in capsys.readouterr().err


def test_resolve_spec_refuses_unknown_fields():
    with pytest.raises(ConfigError, match="unknown run spec field"):
        resolve_spec({"t_maximum": 3})
