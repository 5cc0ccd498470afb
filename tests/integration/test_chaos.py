"""A short bench.chaos run: real ps-serve and worker-run processes, on a real tmpfs filled to the last
byte, with a server kill -9, a worker kill -9 and 16 stalled calls, all in about 80 s of CartPole.

The disk fill needs root (mount); without it the fill is skipped and the rest still runs."""
import math
import os

import pytest

from bench.chaos import ChaosConfig, print_report, run_chaos

pytestmark = pytest.mark.serial  # a run that must reach its budget while faults are injected on a schedule

# seconds after the first update, kind, hold seconds: one of each, all done well before the budget
# (216k env steps: ~72 s at the nominal 3,000 steps/s, and no less than ~56 s at the 50 ms sleep's
# ceiling of 3 x 20 pushes/s x 64 steps)
SCHEDULE = [(12.0, "server_kill", 0.0), (18.0, "worker_kill", 0.0), (22.0, "disk_fill", 8.0), (35.0, "stall", 12.0)]


@pytest.mark.timeout(420)
def test_a_short_chaos_run_survives_every_fault_and_its_records_hold(tmp_path):
    cfg = ChaosConfig(minutes=1.2, seed=1, out_dir=tmp_path / "chaos", schedule=SCHEDULE, total_steps=216_000)
    report = run_chaos(cfg)
    print_report(report, cfg)

    assert [f.kind for f in report.faults] == [kind for _, kind, _ in SCHEDULE], report.faults
    if os.geteuid() == 0:
        assert report.disk_fill == "done"
    for fault in report.faults:
        if not fault.detail.get("skipped"):
            assert fault.survived, fault

    assert report.finished and report.final_exit_code == 0
    assert report.reached_budget, (report.env_steps, report.budget, report.stop_reason)
    assert report.rows == report.updates > 0
    assert report.versions_once
    assert report.nan_seen == [] and report.statuses_polled > 50
    assert report.unexpected == []

    (kill,) = report.of("server_kill")
    lost, per_interval = kill.detail["lost"], kill.detail["updates_per_interval"]
    assert 0 <= lost <= 2 * per_interval, kill.detail  # at most about two checkpoint intervals of updates
    assert kill.detail["resumed_from"] is not None
    (stall,) = report.of("stall")
    assert stall.detail["health"] is True and stall.detail["updates_per_second_during"] > 0
    assert math.isfinite(report.peak_rss_mib) and 0 < report.peak_rss_mib < 1024
