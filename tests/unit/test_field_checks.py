"""Every push field against the run spec, the registry's reaping and cap, and a status that is always
JSON: hand-made Push records straight into the core (no network)."""
import json
import logging
import time

import numpy as np
import pytest

from ps.api.layout import Layout
from ps.api.source import Push
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.errors import RequestError
from ps.core.parameter_server import ParameterServer
from ps.core.validate import MAX_EPISODE_RETURN, finite, printable
from ps.core.workers import DEPARTED_KEPT

LAYOUT = Layout.from_pairs([("w", (3,))])
N = LAYOUT.size


def make_core(tmp_path, **spec):
    config = spec.pop("config", {})
    core = ParameterServer(RunSpec(**{"total_steps": 10**9, "target_return": None, **spec}),
                           ServerConfig(run_dir=str(tmp_path), **config))
    return core


@pytest.fixture
def core(tmp_path):
    c = make_core(tmp_path, envs_per_worker=8, t_max=5)
    yield c
    c.close()


def join(core):
    wid, _ = core.register("h", 1)
    core.pull(wid, LAYOUT, np.zeros(N, np.float32).tobytes())
    return wid


def push(core, wid, env_steps=5, returns=(), lengths=(), stats=None, base=None):
    return core.push(Push(wid, core.version if base is None else base, np.ones(N, np.float32).tobytes(), env_steps,
                          episode_returns=tuple(returns), episode_lengths=tuple(lengths), stats=stats or {}))


def refused(core, reason, fn, *args, **kwargs):
    """fn refused with `reason`, counted, and T, version and theta untouched; returns the error."""
    before = (core.global_step, core.version, core.theta.tobytes() if core.theta is not None else b"")
    count = core.rejected.get(reason, 0)
    with pytest.raises(RequestError) as err:
        fn(*args, **kwargs)
    assert err.value.reason == reason, err.value.message
    assert "\n" not in err.value.message
    assert core.rejected[reason] == count + 1
    assert (core.global_step, core.version, core.theta.tobytes() if core.theta is not None else b"") == before
    return err.value


# --- env steps per push ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec, bound", [
    (dict(algo="a3c", envs_per_worker=8, t_max=5, async_update_steps=9), 40),
    (dict(algo="n-step-q", envs_per_worker=4, t_max=7, async_update_steps=9), 28),
    (dict(algo="one-step-q", envs_per_worker=8, t_max=5, async_update_steps=3), 24),
    (dict(algo="one-step-sarsa", envs_per_worker=2, t_max=50, async_update_steps=6), 12),
])
def test_env_steps_per_push_are_bounded_by_what_one_push_of_the_run_covers(tmp_path, spec, bound):
    assert RunSpec(**spec).max_env_steps_per_push == bound
    core = make_core(tmp_path, **spec)
    wid = join(core)
    assert push(core, wid, env_steps=bound).applied and core.global_step == bound
    err = refused(core, "bad_env_steps", push, core, wid, env_steps=bound + 1)
    assert f"outside 0..{bound}" in err.message and "envs" in err.message
    refused(core, "bad_env_steps", push, core, wid, env_steps=10_000_000)  # the claim that ended a run
    refused(core, "bad_env_steps", push, core, wid, env_steps=-1)
    core.close()


def test_the_worker_agents_count_steps_within_the_bound():
    """The bound matches worker/agents: a3c and n-step Q report t_max x envs, one-step methods at most
    async_update_steps x envs (fewer when an episode ends first)."""
    import gymnasium  # noqa: F401  (the worker's env stack)
    from worker.agents import make_agent
    from worker.envs import EnvBatch
    for algo in ("a3c", "n-step-q", "one-step-q"):
        spec = RunSpec(algo=algo, envs_per_worker=3, t_max=4, async_update_steps=2)
        envs = EnvBatch(spec.env_id, spec.envs_per_worker, 0)
        try:
            agent = make_agent(spec, envs, 0)
            steps = [agent.learn_step(envs)[0] for _ in range(5)]
        finally:
            envs.close()
        assert max(steps) <= spec.max_env_steps_per_push, (algo, steps)
        if algo != "one-step-q":
            assert steps == [spec.max_env_steps_per_push] * 5


# --- episodes ---------------------------------------------------------------------------------------

@pytest.mark.serial  # "at once": a wall-clock bound
def test_a_push_with_a_million_returns_is_refused_at_once_without_reading_them(core):
    wid = join(core)
    start = time.perf_counter()
    err = refused(core, "bad_episodes", push, core, wid, env_steps=40, returns=[1.0] * 800_000)
    assert time.perf_counter() - start < 1.0
    assert "800000 episodes" in err.message and core.episodes.episodes == 0


@pytest.mark.parametrize("bad, reason", [
    (float("inf"), "non_finite"), (float("nan"), "non_finite"), (-float("inf"), "non_finite"),
    (1e308, "bad_episodes"), (-2 * MAX_EPISODE_RETURN, "bad_episodes"),
])
def test_returns_must_be_finite_and_bounded(core, bad, reason):
    wid = join(core)
    refused(core, reason, push, core, wid, env_steps=5, returns=[1.0, bad])
    assert core.episodes.episodes == 0


def test_a_hundred_huge_returns_refused_leave_mean100_finite_and_the_run_unsolved(tmp_path):
    core = make_core(tmp_path, envs_per_worker=8, t_max=5, target_return=475.0)
    wid = join(core)
    for _ in range(100):
        with pytest.raises(RequestError):
            push(core, wid, env_steps=1, returns=[1e308])
    assert core.rejected["bad_episodes"] == 100 and not core.stopped.is_set()
    for _ in range(10):  # the largest accepted returns: mean100 stays finite
        push(core, wid, env_steps=10, returns=[MAX_EPISODE_RETURN] * 10, lengths=[1] * 10)
    status = core.status()
    assert status["final_mean100"] == MAX_EPISODE_RETURN
    json.dumps(status, allow_nan=False)
    core.close()


def test_more_episodes_than_steps_and_mismatched_lengths_are_refused(core):
    wid = join(core)
    refused(core, "bad_episodes", push, core, wid, env_steps=1, returns=[1.0, 2.0])
    refused(core, "bad_episodes", push, core, wid, env_steps=5, returns=[1.0, 2.0], lengths=[3])
    refused(core, "bad_episodes", push, core, wid, env_steps=5, returns=[1.0], lengths=[-1])
    assert push(core, wid, env_steps=5, returns=[1.0, 2.0], lengths=[3, 2]).applied


# --- the status document is JSON ---------------------------------------------------------------------

def test_status_is_json_after_hostile_but_accepted_input(core):
    wid = join(core)
    push(core, wid, env_steps=40, returns=[MAX_EPISODE_RETURN, -MAX_EPISODE_RETURN] * 20, lengths=[10**9] * 40,
         stats={"loss": float("inf"), "ok": 1.5, "nan": float("nan"), "big": 1e308})
    core.leave(join(core), "bye\nINFO ps forged line\x1b[2J" + "x" * 10_000)
    status = core.status()
    text = json.dumps(status, allow_nan=False)
    assert "Infinity" not in text and "NaN" not in text
    me = next(w for w in status["workers"] if w["id"] == wid)
    assert me["stats"] == {"ok": 1.5, "big": 1e308}  # non-finite stats are not kept


def test_finite_replaces_every_non_finite_float_with_none():
    doc = {"a": float("inf"), "b": [1.0, float("nan"), {"c": -float("inf"), "d": np.float32("inf")}],
           "e": (np.float64(2.5), "x", None, 3, True)}
    assert finite(doc) == {"a": None, "b": [1.0, None, {"c": None, "d": None}], "e": [2.5, "x", None, 3, True]}
    json.dumps(finite(doc), allow_nan=False)


# --- Leave's reason -------------------------------------------------------------------------------------

def test_leave_reason_is_cut_and_escaped_in_the_log_and_the_status(core, caplog):
    wid = join(core)
    with caplog.at_level(logging.INFO, logger="ps"):
        core.leave(wid, "done\nERROR ps worker 1 forged\r\x00\u2028" + "y" * 1_000_000)
    line = next(r.getMessage() for r in caplog.records if "left" in r.getMessage())
    assert "\n" not in line and "\r" not in line and "\x00" not in line and "\u2028" not in line
    assert len(line) < 160 and "done\\nERROR ps worker 1 forged\\r\\x00\\u2028" in line
    left = next(w for w in core.status()["workers"] if w["id"] == wid)
    assert left["left_reason"] == line[line.index("(") + 1:-1] and len(left["left_reason"]) <= 100
    assert left["left_reason"].isprintable() and not left["connected"]


def test_printable_keeps_plain_text_and_bounds_escaped_text():
    assert printable("stopped") == "stopped"
    assert printable("\n" * 1000) == "\\n" * 50
    assert printable("\U0010ffff" * 50).isprintable() and len(printable("\U0010ffff" * 50)) <= 100


# --- incarnation ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("incarnation, words", [("", "no incarnation"), ("0ld", "restarted")])
def test_an_empty_or_foreign_incarnation_is_refused(core, incarnation, words):
    err = refused(core, "unknown_worker", core.check_incarnation, incarnation)
    assert err.code == "NOT_FOUND" and words in err.message
    core.check_incarnation(core.incarnation)  # this server's own passes


# --- expired workers ------------------------------------------------------------------------------------

def test_a_worker_timed_out_is_gone_its_push_refused_not_found_and_it_can_register_again(tmp_path):
    core = make_core(tmp_path, envs_per_worker=8, t_max=5, config={"worker_timeout_seconds": 0.05})
    wid, other = join(core), join(core)
    push(core, wid)
    time.sleep(0.1)
    push(core, other)  # other stays alive
    core.expire_workers()
    assert [w.worker_id for w in core.workers.connected] == [other]
    version, steps = core.version, core.global_step
    err = refused(core, "expired_worker", push, core, wid)
    assert err.code == "NOT_FOUND" and f"worker {wid}" in err.message and "timed out" in err.message
    assert (core.version, core.global_step) == (version, steps)  # the stale push was not applied, nor counted in T
    refused(core, "expired_worker", core.pull, wid, LAYOUT, b"")
    refused(core, "expired_worker", core.leave, wid, "late")
    new = join(core)
    assert new > other and push(core, new).applied
    gone = next(w for w in core.status()["workers"] if w["id"] == wid)
    assert not gone["connected"] and gone["timed_out"] and gone["left_reason"] == "" and gone["pushes"] == 1
    core.close()


def test_a_worker_that_left_is_gone_too(core):
    wid = join(core)
    core.leave(wid, "stopped")
    err = refused(core, "expired_worker", push, core, wid)
    assert "stopped" in err.message
    refused(core, "unknown_worker", push, core, 10**6)  # never issued: unknown, not expired


# --- reaping and the cap ------------------------------------------------------------------------------------

def test_registrations_are_capped_and_departed_workers_reaped_to_a_bounded_summary(tmp_path):
    core = make_core(tmp_path, config={"max_registered_workers": 50, "worker_timeout_seconds": 0.05})
    ids = [core.register("h", i)[0] for i in range(50)]
    err = refused(core, "too_many_workers", core.register, "h", 99)
    assert err.code == "RESOURCE_EXHAUSTED"
    for wid in ids[:10]:
        core.leave(wid, "bye")
    more = [core.register("h", i)[0] for i in range(10)]  # room again
    time.sleep(0.1)
    core.expire_workers()
    assert core.workers.connected == []
    for _ in range(20):  # 1000 more registrations, reaped as they go
        for i in range(50):
            core.register("h", i)
        time.sleep(0.06)
        core.expire_workers()
    status = core.status()
    assert status["workers_connected"] == 0 and status["workers_departed"] == 60 + 1000
    assert len(status["workers"]) == DEPARTED_KEPT and len(core.workers.workers) == 0
    assert len(json.dumps(status)) < 64 * 1024
    assert max(ids + more) < min(w["id"] for w in status["workers"])  # the most recent are kept
    core.close()


@pytest.mark.parametrize("optimizer", ["rmsprop", "momentum-sgd"])
def test_per_worker_optimizer_state_is_made_at_the_first_push_and_freed_when_the_worker_goes(tmp_path, optimizer):
    core = make_core(tmp_path, optimizer=optimizer, config={"worker_timeout_seconds": 0.05})
    ids = [join(core) for _ in range(200)]
    assert core.optimizer.per_worker == {}  # registrations alone cost nothing
    push(core, ids[0])
    push(core, ids[1])
    assert set(core.optimizer.per_worker) == {ids[0], ids[1]}
    assert not [k for k in core.state_dict()["arrays"] if k.startswith("opt.") and str(ids[2]) in k]
    core.leave(ids[0], "bye")
    assert set(core.optimizer.per_worker) == {ids[1]}
    time.sleep(0.1)
    core.expire_workers()
    assert core.optimizer.per_worker == {}
    assert [k for k in core.state_dict()["arrays"] if k.startswith("opt.")] == []  # checkpoints hold no departed
    core.close()


def test_per_worker_state_restored_from_a_checkpoint_is_freed(tmp_path):
    a = make_core(tmp_path / "a", optimizer="rmsprop")
    push(a, join(a))
    state = a.state_dict()
    assert any(k.startswith("opt.worker_") for k in state["arrays"])
    b = make_core(tmp_path / "b", optimizer="rmsprop")
    b.load_state_dict(state)
    assert b.optimizer.per_worker == {}  # ids of the last life never come back
    wid = join(b)
    assert wid > max(a.workers.workers) and push(b, wid).applied
    a.close()
    b.close()


def test_target_network_send_counts_are_kept_for_live_workers_only(tmp_path):
    core = make_core(tmp_path, algo="one-step-q", envs_per_worker=2, async_update_steps=5)
    ids = [join(core) for _ in range(20)]
    for wid in ids:
        core.target_reply(wid)
    for wid in ids[:15]:
        core.leave(wid, "bye")
    target = core.status()["target_network"]
    assert target["sends_total"] == 20 and len(target["sends"]) == 5
    core.close()
