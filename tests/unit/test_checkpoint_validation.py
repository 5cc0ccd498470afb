"""A checkpoint is verified array by array on load, and a bad one refused in one line naming the newest
older one that verifies: NaN or negative RMSProp statistics would load and make every parameter NaN one
push later; a short statistics array or NaN parameters used to be a traceback."""
import subprocess

import numpy as np
import pytest

from ps.api.layout import Layout
from ps.api.source import Push
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.records import checkpoint
from ps.records.checkpoint import CheckpointError
from tests.conftest import cli

LAYOUT = Layout.from_pairs([("w", (4, 2)), ("b", (2,))])
N = LAYOUT.size
RUN = ("--env", "CartPole-v1", "--algo", "a3c", "--seed", "1", "--target-return", "none", "--envs", "4")


def _core_state(tmp_path, optimizer: str = "shared-rmsprop", spec: RunSpec | None = None) -> dict:
    """A real state_dict of a core that applied a few pushes from two workers."""
    spec = spec or RunSpec(total_steps=10_000, target_return=None, optimizer=optimizer)
    core = ParameterServer(spec, ServerConfig(run_dir=str(tmp_path / f"core-{optimizer}")))
    wids = [core.register("t", i)[0] for i in (1, 2)]
    core.pull(wids[0], LAYOUT, np.linspace(-1, 1, N, dtype=np.float32).tobytes())
    rng = np.random.default_rng(0)
    for i in range(6):
        core.push(Push(worker_id=wids[i % 2], base_version=core.version, shape=[N], env_steps=8,
                       gradient=rng.normal(size=N).astype(np.float32).tobytes()))
    state = core.state_dict()
    core.close()
    return state


def _damaged(state: dict, key: str, how: str) -> dict:
    arrays = dict(state["arrays"])
    a = arrays[key].copy()
    if how == "nan":
        a[3] = np.nan
    elif how == "inf":
        a[0] = np.inf
    elif how == "negative":
        a[2] = -1e-3
    elif how == "short":
        a = a[:-1]
    elif how == "float64":
        a = a.astype(np.float64)
    elif how == "2d":
        a = a.reshape(2, -1)
    elif how == "missing":
        del arrays[key]
        return {"arrays": arrays, "meta": state["meta"]}
    arrays[key] = a
    return {"arrays": arrays, "meta": state["meta"]}


@pytest.mark.parametrize("key,how,message", [
    ("theta", "nan", r"array 'theta' holds NaN or Inf \(1 of 10 values\)"),
    ("theta", "inf", r"array 'theta' holds NaN or Inf"),
    ("theta", "short", r"array 'theta' is 9 float32, layout \w+ needs 10 float32"),
    ("theta", "float64", r"array 'theta' is 10 float64"),
    ("opt.g", "nan", r"array 'opt.g' holds NaN or Inf"),
    ("opt.g", "negative", r"array 'opt.g' holds negative shared-rmsprop statistics \(1 of 10 values\)"),
    ("opt.g", "short", r"array 'opt.g' is 9 float32, layout \w+ needs 10 float32"),
    ("opt.g", "2d", r"array 'opt.g' is 10 float32 of shape \(2, 5\)"),
    ("opt.g", "missing", r"array 'opt.g' \(shared RMSProp statistics\) is missing"),
])
def test_each_array_is_checked_and_refused_in_one_line(tmp_path, key, how, message):
    path = checkpoint.save(tmp_path / "ck", _damaged(_core_state(tmp_path), key, how))
    with pytest.raises(CheckpointError, match=message) as err:
        checkpoint.load(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_per_worker_statistics_are_checked_and_momentum_may_be_negative(tmp_path):
    state = _core_state(tmp_path, "rmsprop")
    per_worker = sorted(k for k in state["arrays"] if k.startswith("opt.worker_"))
    assert len(per_worker) == 2
    for how, message in (("negative", "negative rmsprop statistics"), ("nan", "NaN or Inf"),
                         ("short", "is 9 float32")):
        path = checkpoint.save(tmp_path / how, _damaged(state, per_worker[1], how))
        with pytest.raises(CheckpointError, match=f"array '{per_worker[1]}' .*{message}"):
            checkpoint.load(path)
    momentum = _core_state(tmp_path, "momentum-sgd")
    arrays = {k: (-np.abs(v) - 1 if k.startswith("opt.") else v) for k, v in momentum["arrays"].items()}
    path = checkpoint.save(tmp_path / "momentum", {"arrays": arrays, "meta": momentum["meta"]})
    checkpoint.load(path)  # a momentum vector has any sign
    path = checkpoint.save(tmp_path / "momentum-nan", _damaged(momentum, per_worker[0], "nan"))
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        checkpoint.load(path)


def test_a_good_state_verifies_and_restores(tmp_path):
    state = _core_state(tmp_path)
    path = checkpoint.save(tmp_path / "ck", state)
    loaded = checkpoint.load(path)
    core = ParameterServer(RunSpec(total_steps=10_000, target_return=None), ServerConfig(run_dir=str(tmp_path / "b")))
    core.load_state_dict(loaded)
    assert core.version == 6
    core.close()


def test_the_refusal_names_the_newest_older_checkpoint_that_verifies(tmp_path):
    state = _core_state(tmp_path)
    directory = tmp_path / "ck"
    good = checkpoint.save(directory, state)
    checkpoint.save(directory, _damaged(state, "opt.g", "negative"))  # older, also bad
    newest = checkpoint.save(directory, _damaged(state, "theta", "nan"))
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_latest(directory)
    text = str(err.value)
    assert text.startswith(f"checkpoint {newest}: array 'theta' holds NaN") and "\n" not in text
    assert f"; {good} verifies: move {newest.name} away" in text


@pytest.mark.parametrize("key,how,message", [
    ("opt.g", "negative", "holds negative shared-rmsprop statistics"),
    ("opt.g", "short", "array 'opt.g' is"),
    ("theta", "nan", "array 'theta' holds NaN or Inf"),
])
def test_ps_serve_refuses_a_bad_checkpoint_in_one_line_exit_2(tmp_path, key, how, message):
    """The real command: one line on stderr naming the file and the older good one, no traceback."""
    spec_json = subprocess.run([cli("ps-serve"), *RUN, "--print-spec"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    state = _core_state(tmp_path, spec=RunSpec.from_json(spec_json))
    run_dir = tmp_path / "run"
    directory = checkpoint.checkpoint_dir(run_dir)
    good = checkpoint.save(directory, state)
    bad = checkpoint.save(directory, _damaged(state, key, how))
    out = subprocess.run([cli("ps-serve"), *RUN, "--port", "0", "--run-dir", str(run_dir)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("ps-serve: error:")]
    assert len(errors) == 1 and message in errors[0] and str(bad) in errors[0] and f"{good} verifies" in errors[0]
    assert not (run_dir / "port").exists()  # never served
    assert sorted(p.name for p in directory.iterdir()) == sorted([good.name, bad.name])  # nothing moved
