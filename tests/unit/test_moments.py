"""Running moments shared through the server: the parallel merge against numpy over all the data, the
server keeping the optimizer off the layout's buffers, refusals of bad moments, and the worker's
normalisation (VecNormalize's transform) with the statistics it last received."""
import numpy as np
import pytest

from ps.api.convert import layout_from_proto, layout_to_proto, moments_from_proto, moments_to_proto
from ps.api.layout import Layout
from ps.api.moments import OBS_NORM, RET_NORM, Moments, batch_moments, buffer_entries, empty, merge
from ps.api.source import Push
from ps.api.envs import check_env
from ps.api.spec import OPTIMIZERS, ConfigError, RunSpec
from ps.config import ServerConfig
from ps.core.errors import RequestError
from ps.core.parameter_server import ParameterServer
from worker.envs import EnvBatch
from worker.networks import FlatParams, build_policy_value_net
from worker.normalize import NormalizedEnvs, normalization_buffers, normalize


@pytest.mark.parametrize("seed", range(5))
def test_merging_moments_of_random_splits_gives_numpys_mean_and_variance_of_all(seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(3.0, 5.0, size=(int(rng.integers(50, 500)), 3)) * rng.uniform(0.1, 100, size=3)
    cuts = np.sort(rng.choice(np.arange(1, len(data)), size=int(rng.integers(1, 12)), replace=False))
    total = empty("x", 3)
    for part in np.split(data, cuts):
        total = merge(total, batch_moments("x", part))
    assert total.count == len(data)
    np.testing.assert_allclose(total.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(total.m2 / total.count, data.var(axis=0), rtol=1e-10)


def test_merging_nothing_changes_nothing():
    a = batch_moments("x", np.arange(6.0).reshape(3, 2))
    for total in (merge(a, empty("x", 2)), merge(empty("x", 2), a)):
        assert total.count == 3
        np.testing.assert_array_equal(total.mean, a.mean)
        np.testing.assert_array_equal(total.m2, a.m2)


def test_a_buffer_changes_the_layout_hash_and_survives_every_encoding():
    plain = Layout.from_pairs([("w", (4, 2)), ("obs_norm.mean", (4,))])
    marked = Layout.from_pairs([("w", (4, 2)), ("obs_norm.mean", (4,), True)])
    assert plain.hash != marked.hash
    assert Layout.from_dict(marked.to_dict()) == marked
    assert layout_from_proto(layout_to_proto(marked)) == marked
    assert Layout.from_dict(plain.to_dict()).hash == plain.hash  # layouts without buffers hash as before


def test_moments_travel_in_float64():
    m = Moments(OBS_NORM, 3.0, np.array([1 / 3, 1e-300]), np.array([2 / 3, 1e300]))
    back, = moments_from_proto(moments_to_proto([m]))
    assert back.name == OBS_NORM and back.count == 3.0
    np.testing.assert_array_equal(back.mean, m.mean)
    np.testing.assert_array_equal(back.m2, m.m2)


OBS_DIM = 3
LAYOUT = Layout.from_pairs([("w", (2, 2)), *((n, s, True) for n, s in buffer_entries(OBS_NORM, (OBS_DIM,))),
                            ("b", (2,)), *((n, s, True) for n, s in buffer_entries(RET_NORM, (1,)))])


def initial_theta() -> np.ndarray:
    theta = np.zeros(LAYOUT.size, np.float32)
    for e, start in LAYOUT.offsets():
        theta[start:start + e.size] = 0.5 if not e.buffer else 1.0 if e.name.endswith(".var") else 0.0
    return theta


def entry(theta: np.ndarray, name: str) -> np.ndarray:
    (e, start), = [(e, s) for e, s in LAYOUT.offsets() if e.name == name]
    return theta[start:start + e.size]


def make_core(tmp_path, **spec) -> ParameterServer:
    core = ParameterServer(RunSpec(**{"total_steps": 10**9, "target_return": None, "envs_per_worker": 4,
                                      "t_max": 5, **spec}), ServerConfig(run_dir=str(tmp_path)))
    wid, _ = core.register("h", 1)
    core.pull(wid, LAYOUT, initial_theta().tobytes())
    return core


def push(core, moments, env_steps=20, gradient=None, out=None):
    g = np.ones(LAYOUT.size, np.float32) if gradient is None else gradient  # nonzero on the buffers too
    return core.push(Push(1, core.version, g.tobytes(), env_steps, moments=tuple(moments)), out=out)


@pytest.mark.parametrize("optimizer, fused, sync", [(o, f, False) for o in OPTIMIZERS for f in (False, True)] +
                         [("shared-rmsprop", False, True)])
def test_the_server_merges_pushed_moments_and_never_optimizes_the_buffers(tmp_path, optimizer, fused, sync):
    core = make_core(tmp_path, optimizer=optimizer, sync=sync)
    rng = np.random.default_rng(0)
    seen_obs, seen_ret = [], []
    for _ in range(4):
        obs, ret = rng.normal(2.0, 3.0, (20, OBS_DIM)), rng.normal(-1.0, 0.5, (20, 1))
        seen_obs.append(obs)
        seen_ret.append(ret)
        out = np.empty(LAYOUT.size, np.float32) if fused else None
        outcome = push(core, [batch_moments(OBS_NORM, obs), batch_moments(RET_NORM, ret)], out=out)
        assert outcome.applied
        reply = out if fused else np.frombuffer(outcome.params, np.float32)
        np.testing.assert_array_equal(reply, core.theta)    # the reply carries the merged statistics
    obs, ret = np.concatenate(seen_obs), np.concatenate(seen_ret)
    theta = core.theta
    assert not np.allclose(entry(theta, "w"), 0.5)           # the weights moved ...
    np.testing.assert_allclose(entry(theta, "obs_norm.mean"), obs.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(entry(theta, "obs_norm.var"), obs.var(axis=0), rtol=1e-5)
    assert entry(theta, "obs_norm.count")[0] == 80 == entry(theta, "ret_norm.count")[0]
    np.testing.assert_allclose(entry(theta, "ret_norm.mean"), ret.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(entry(theta, "ret_norm.var"), ret.var(axis=0), rtol=1e-5)
    core.close()


def test_a_push_without_moments_leaves_the_buffers_as_they_were(tmp_path):
    core = make_core(tmp_path, optimizer="momentum-sgd")
    for _ in range(3):
        push(core, [])
    np.testing.assert_array_equal(entry(core.theta, "obs_norm.var"), np.ones(OBS_DIM))
    np.testing.assert_array_equal(entry(core.theta, "obs_norm.mean"), np.zeros(OBS_DIM))
    core.close()


def test_the_target_network_carries_the_buffers(tmp_path):
    core = make_core(tmp_path, algo="n-step-q", target_update_steps=20)
    obs = np.full((20, OBS_DIM), 4.0)
    push(core, [batch_moments(OBS_NORM, obs)])
    np.testing.assert_array_equal(entry(core.target.params, "obs_norm.mean"), [4.0] * OBS_DIM)
    core.close()


def bad(name=OBS_NORM, count=20.0, mean=None, m2=None):
    return Moments(name, count, np.zeros(OBS_DIM) if mean is None else np.asarray(mean, float),
                   np.ones(OBS_DIM) if m2 is None else np.asarray(m2, float))


@pytest.mark.parametrize("moments, words", [
    ([bad(name="obs")], "name no buffers"),
    ([bad(), bad()], "come twice"),
    ([bad(count=21.0)], "whole number in 0..20"),
    ([bad(count=-1.0)], "whole number in 0..20"),
    ([bad(count=2.5)], "whole number"),
    ([bad(count=float("nan"))], "whole number"),
    ([bad(mean=[0.0, 0.0])], "2 means"),
    ([bad(mean=[0.0, float("inf"), 0.0])], "NaN or Inf"),
    ([bad(m2=[0.0, -1.0, 0.0])], "M2 is < 0"),
    ([bad(name=RET_NORM)], "the layout's buffer has 1"),
])
def test_bad_moments_are_refused_in_one_line_and_change_nothing(tmp_path, moments, words):
    core = make_core(tmp_path)
    before = core.theta.copy()
    with pytest.raises(RequestError) as err:
        push(core, moments)
    assert err.value.code == "INVALID_ARGUMENT" and err.value.reason == "bad_moments"
    assert words in str(err.value) and "\n" not in str(err.value)
    np.testing.assert_array_equal(core.theta, before)
    assert core.version == 0 and core.rejected == {"bad_moments": 1}
    core.close()


def test_moments_for_a_layout_without_buffers_are_refused(tmp_path):
    core = ParameterServer(RunSpec(total_steps=10**9, target_return=None), ServerConfig(run_dir=str(tmp_path)))
    core.register("h", 1)
    layout = Layout.from_pairs([("w", (4,))])
    core.pull(1, layout, np.zeros(4, np.float32).tobytes())
    with pytest.raises(RequestError, match="has none"):
        core.push(Push(1, 0, np.zeros(4, np.float32).tobytes(), 10, moments=(bad(),)))
    core.close()


def test_images_are_not_normalised():
    with pytest.raises(ConfigError, match="vector observations"):
        check_env(RunSpec(env_id="MinAtar/Breakout-v1", normalize_obs=True))


def test_the_worker_normalises_with_the_buffers_it_holds_and_reports_what_it_saw():
    spec = RunSpec(env_id="CartPole-v1", normalize_obs=True, normalize_reward=True, envs_per_worker=3)
    raw = EnvBatch(spec.env_id, 3, seed=0)
    flat = FlatParams(build_policy_value_net(spec, raw.observation_space, raw.action_space),
                      normalization_buffers(spec, raw.observation_space))
    assert [e.name for e, _ in flat.layout.buffers()] == ["obs_norm.mean", "obs_norm.var", "obs_norm.count",
                                                          "ret_norm.mean", "ret_norm.var", "ret_norm.count"]
    envs = NormalizedEnvs(raw, spec, flat)
    np.testing.assert_array_equal(envs.obs, raw.obs)       # mean 0, var 1 (up to eps): as they are
    flat.buffer("obs_norm.mean")[...] = [0.0, 1.0, 0.0, -1.0]
    flat.buffer("obs_norm.var")[...] = [4.0, 0.25, 1.0, 1e-6]
    flat.buffer("ret_norm.var")[...] = 16.0
    expected = np.clip((raw.obs - [0.0, 1.0, 0.0, -1.0]) / np.sqrt(np.array([4.0, 0.25, 1.0, 1e-6]) + 1e-8), -10, 10)
    np.testing.assert_allclose(envs.obs, expected, rtol=1e-5)
    assert np.abs(envs.obs[:, 3]).max() == pytest.approx(10.0)   # clipped
    seen = []
    for _ in range(7):
        seen.append(raw.obs.copy())
        rewards, *_ = envs.step(np.zeros(3, np.int64))
        np.testing.assert_allclose(rewards, 0.25)             # CartPole's 1 / sqrt(16)
    obs_moments, ret_moments = envs.take_moments()
    assert obs_moments.count == 21 == ret_moments.count     # one observation per env step
    np.testing.assert_allclose(obs_moments.mean, np.concatenate(seen).mean(axis=0), rtol=1e-6)
    assert envs.take_moments() == ()                        # nothing seen since
    assert normalize(np.array([5.0]), np.array([1.0]), np.array([4.0]), 1.5)[0] == pytest.approx(1.5)
    envs.close()
