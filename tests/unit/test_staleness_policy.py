"""The staleness bound and the staleness-aware learning rate on hand-made pushes."""
import numpy as np
import pytest

from ps.api.spec import ConfigError, RunSpec

from ps.config import ServerConfig
from ps.core.parameter_server import ParameterServer
from ps.api.layout import Layout
from ps.core.staleness import TOO_STALE, decide
from ps.api.source import Push

LR = 0.01


@pytest.mark.parametrize("st, applied, lr", [(0, True, LR), (1, True, LR), (4, True, LR), (5, False, 0.0), (40, False, 0.0)])
def test_bound_of_four_drops_only_pushes_past_it(st, applied, lr):
    d = decide(st, LR, max_staleness=4, staleness_lr="none")
    assert (d.apply, d.learning_rate) == (applied, lr)
    assert d.dropped_reason == ("" if applied else TOO_STALE)


@pytest.mark.parametrize("st, lr", [(0, LR), (1, LR), (2, LR / 2), (4, LR / 4), (10, LR / 10)])
def test_inverse_rule_divides_lr_by_staleness_but_never_raises_it(st, lr):
    d = decide(st, LR, max_staleness=0, staleness_lr="inverse")
    assert d.apply and d.learning_rate == pytest.approx(lr)


def test_no_bound_means_nothing_is_dropped():
    assert decide(10**6, LR, 0, "none").apply


def test_bound_and_inverse_rule_combine():
    assert decide(3, LR, 3, "inverse").learning_rate == pytest.approx(LR / 3)
    assert not decide(4, LR, 3, "inverse").apply


def test_unknown_policy_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="inverse"):
        RunSpec(staleness_lr="sqrt")
    with pytest.raises(ConfigError, match="max-staleness"):
        RunSpec(max_staleness=-1)


def test_server_drops_a_too_stale_push_counts_it_and_leaves_params(tmp_path):
    core = ParameterServer(RunSpec(max_staleness=1, staleness_lr="inverse", target_return=None),
                           ServerConfig(run_dir=str(tmp_path)))
    try:
        layout = Layout.from_pairs([("w", (2,))])
        ids = [core.register("h", 1)[0] for _ in range(3)]
        for wid in ids:
            core.pull(wid, layout, np.zeros(2, np.float32).tobytes())
        g = np.ones(2, np.float32).tobytes()
        r0 = core.push(Push(worker_id=ids[0], base_version=0, gradient=g, shape=[2], env_steps=5))  # staleness 0
        r1 = core.push(Push(worker_id=ids[1], base_version=0, gradient=g, shape=[2], env_steps=5))  # staleness 1: at the bound, lr / 1
        before = core.params_snapshot()[1]
        r2 = core.push(Push(worker_id=ids[2], base_version=0, gradient=g, shape=[2], env_steps=5))  # staleness 2: dropped
        assert (r0.applied, r1.applied, r2.applied) == (True, True, False)
        assert r2.dropped_reason == TOO_STALE and r2.version == 2 and r2.learning_rate == 0.0
        np.testing.assert_array_equal(core.params_snapshot()[1], before)
        assert np.frombuffer(r2.params, np.float32).tolist() == before.tolist()  # fresh weights come back
        status = core.status()
        assert status["dropped"] == {TOO_STALE: 1} and status["updates"] == 2
        assert status["env_steps"] == 15  # the dropped push's frames were still experienced
        assert status["staleness"]["count"] == 2
        assert {w["id"]: w["dropped"] for w in status["workers"]}[ids[2]] == 1
    finally:
        core.close()
