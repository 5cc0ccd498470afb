"""Presets per env and targets per env: a preset fills the flags not given, the target is the env's own
(never CartPole's 475 elsewhere), none where none is known, and --preset none leaves the family defaults."""
import gymnasium
import pytest

from ps.api.defaults import FAMILY_DEFAULTS, resolve_spec, spec_line
from ps.api.envs import env_family, env_spaces
from ps.api.presets import A3C_PRESETS, VALUE_BASED_PRESETS
from ps.api.spec import RunSpec
from ps.cli import serve_main
from ps.options import parse_serve_args

NO_THRESHOLD = "PresetsTest/CartPoleNoThreshold-v0"  # CartPole's dynamics under an id gymnasium knows no threshold for
if NO_THRESHOLD not in gymnasium.registry:
    gymnasium.register(NO_THRESHOLD, entry_point="gymnasium.envs.classic_control:CartPoleEnv", max_episode_steps=200)


def spec_from(*argv: str) -> RunSpec:
    return parse_serve_args(list(argv)).run


@pytest.mark.parametrize("env_id, target", [("Acrobot-v1", -100.0), ("MountainCar-v0", -110.0),
                                            ("LunarLander-v3", 200.0), ("CartPole-v1", 475.0)])
def test_each_env_gets_its_own_target_from_gymnasium(env_id, target):
    assert spec_from("--env", env_id).target_return == target
    assert resolve_spec({"env_id": env_id}).target_return == target
    assert spec_from("--env", env_id, "--algo", "one-step-q").target_return == target


def test_an_env_without_a_threshold_gets_no_target_not_cartpoles():
    assert resolve_spec({"env_id": NO_THRESHOLD}).target_return is None
    assert spec_from("--env", "Pendulum-v1", "--preset", "none").target_return is None
    assert spec_from("--env", "Pendulum-v1").target_return == -200.0  # its preset's: gymnasium has none


def test_the_users_target_wins_over_the_envs():
    assert spec_from("--env", "Acrobot-v1", "--target-return", "-90").target_return == -90.0
    assert spec_from("--env", "Acrobot-v1", "--target-return", "none").target_return is None
    assert spec_from("--env", "Pendulum-v1", "--preset", "none", "--target-return", "-300").target_return == -300.0
    assert resolve_spec({"env_id": "Acrobot-v1", "target_return": None}).target_return is None


def test_a_preset_fills_only_the_fields_not_given():
    car = spec_from("--env", "MountainCar-v0", "--lr", "0.001", "--total-steps", "300000")
    assert car.lr == 0.001 and car.total_steps == 300_000 and car.normalize_obs and car.preset == "auto"
    assert car.envs_per_worker == RunSpec.envs_per_worker  # neither the row nor the user set it
    assert resolve_spec({"env_id": "MountainCar-v0", "lr": 0.001, "total_steps": 300_000}) == car
    assert spec_from("--env", "LunarLander-v3").total_steps == 500_000
    assert spec_from("--env", "LunarLander-v3").entropy_beta == 0.02


def test_preset_none_gives_the_bare_family_defaults():
    bare = spec_from("--env", "MountainCar-v0", "--preset", "none")
    assert bare == RunSpec(env_id="MountainCar-v0", preset="none", target_return=-110.0)
    pendulum = spec_from("--env", "Pendulum-v1", "--preset", "none")
    assert pendulum == RunSpec(**FAMILY_DEFAULTS["continuous"], env_id="Pendulum-v1", preset="none", target_return=None)
    q = spec_from("--env", "Acrobot-v1", "--algo", "n-step-q", "--preset", "none")
    assert q.target_update_steps == 1_000 and q.total_steps == RunSpec.total_steps  # the classic Q row's
    assert spec_from("--env", "Acrobot-v1", "--algo", "n-step-q").total_steps == 1_000_000  # its preset


def test_a_preset_can_turn_off_what_its_family_turns_on():
    car = spec_from("--env", "MountainCarContinuous-v0")
    assert car.normalize_obs and not car.normalize_reward  # the continuous family turns both on
    assert spec_from("--env", "MountainCarContinuous-v0", "--normalize-reward").normalize_reward  # the flag wins
    assert spec_from("--env", "MountainCarContinuous-v0", "--preset", "none").normalize_reward
    assert spec_from("--env", "Pendulum-v1").normalize_reward  # its row leaves the family's


def test_value_based_and_a3c_rows_are_kept_apart():
    assert spec_from("--env", "Acrobot-v1", "--algo", "one-step-sarsa").lr == 3e-3  # the classic Q row
    assert spec_from("--env", "Acrobot-v1").lr == RunSpec.lr
    assert spec_from("--env", "CartPole-v1", "--algo", "n-step-q").total_steps == 500_000
    assert spec_from("--env", "CartPole-v1") == RunSpec()


def test_another_envs_preset_can_be_named():
    spec = spec_from("--env", "CartPole-v1", "--preset", "MountainCar-v0")
    assert spec.normalize_obs and spec.target_return == 475.0  # the row, and still CartPole's own target


@pytest.mark.parametrize("value_based", [False, True], ids=["a3c", "value-based"])
def test_every_preset_row_builds_a_valid_spec(value_based):
    table = VALUE_BASED_PRESETS if value_based else A3C_PRESETS
    for env_id, row in table.items():
        family = env_family(env_id, env_spaces(env_id)[1])
        spec = resolve_spec({"env_id": env_id, "algo": "n-step-q" if value_based else "a3c"}, family)
        assert all(getattr(spec, k) == v for k, v in row.items()), env_id


def test_the_start_line_names_the_preset_and_the_resolved_fields():
    line = spec_line(resolve_spec({"env_id": "Acrobot-v1"}))
    assert line.startswith("preset Acrobot-v1 (a3c row") and "target_return=-100.0" in line and "\n" not in line
    assert spec_line(resolve_spec({"env_id": "Acrobot-v1", "preset": "none"})).startswith("preset none")
    assert spec_line(resolve_spec({"env_id": NO_THRESHOLD})).startswith(f"no preset for {NO_THRESHOLD}")


def test_an_unknown_preset_is_one_line_listing_the_choices(capsys):
    assert serve_main(["--env", "Acrobot-v1", "--preset", "Acrobat-v1", "--print-spec"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown --preset 'Acrobat-v1'" in err[0] and "Acrobot-v1" in err[0]
