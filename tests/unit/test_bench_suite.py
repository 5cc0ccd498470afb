"""bench.suite's arithmetic: SB3's final quality as the bar, our time to it, the goals' ratios."""
import math

from bench.sb3_zoo import thinned
from bench.suite import PUBLISHED_STEPS, Run, env_table, our_budget, steps_by_time
from ps.api.defaults import resolve_spec


def test_time_to_sb3s_final_and_the_ratios_are_medians_over_seeds():
    sb3 = [Run("sb3", "a2c", "Acrobot-v1", s, 100.0, [(50.0, 1, -120.0), (100.0, 2, -80.0)]) for s in (1, 2, 3)]
    ours = [Run("ours", "a3c", "Acrobot-v1", 1, 40.0, [(10.0, 1, -90.0), (20.0, 2, -80.0), (40.0, 3, -85.0)]),
            Run("ours", "a3c", "Acrobot-v1", 2, 40.0, [(10.0, 1, -75.0), (40.0, 3, -70.0)]),
            Run("ours", "a3c", "Acrobot-v1", 3, 40.0, [(40.0, 3, -300.0)])]  # never reaches SB3's -80
    table = env_table("Acrobot-v1", sb3 + ours)
    assert table["sb3_final"] == -80.0 and table["sb3_wall_seconds"] == 100.0
    row = next(r for r in table["rows"] if r["system"] == "ours")
    assert row["final"] == -85.0 and row["best"] == -80.0  # bests -80, -70, -300
    assert row["seconds_to_sb3_final"] == 20.0                  # 20, 10 and never (+inf): the median is 20
    assert row["time_ratio"] == 0.2 and math.isclose(row["gap_pct_of_range"], 100 * -5 / 500)


def test_a_side_that_never_reaches_the_bar_has_no_time_ratio():
    sb3 = [Run("sb3", "a2c", "CartPole-v1", 1, 60.0, [(60.0, 1, 500.0)])]
    ours = [Run("ours", "a3c", "CartPole-v1", 1, 30.0, [(30.0, 1, 200.0)])]
    row = env_table("CartPole-v1", sb3 + ours)["rows"][1]
    assert math.isinf(row["seconds_to_sb3_final"]) and row["time_ratio"] is None and row["gap_pct_of_range"] == -60.0


def test_thinned_spreads_evenly_and_keeps_the_last():
    assert thinned(list(range(10)), 4) == [0, 3, 6, 9] and thinned([1, 2], 5) == [1, 2]


def test_steps_by_time_sums_the_pushes_up_to_a_moment(tmp_path):
    csv = tmp_path / "pushes.csv"
    csv.write_text("time,worker_id,base_version,applied_version,staleness,env_steps\n"
                   "10.0,1,0,1,0,40\n11.0,2,0,2,1,40\n12.0,1,1,3,1,40\n")
    at = steps_by_time(csv)
    assert (at(9.0), at(10.0), at(11.5), at(99.0)) == (0, 40, 80, 120)


def test_against_a_published_figure_the_gap_is_a_share_of_it_and_there_is_no_time_ratio():
    ours = [Run("ours", "a3c", "MinAtar/Breakout-v1", s, 900.0, [(450.0, 1, 10.0), (900.0, 2, f)])
            for s, f in ((1, 14.0), (2, 21.0), (3, 30.0))]
    table = env_table("MinAtar/Breakout-v1", ours, published=28.0)
    (row,) = table["rows"]
    assert table["sb3_final"] == 28.0 and table["sb3_wall_seconds"] is None
    assert row["final"] == 21.0 and math.isclose(row["gap_pct_of_range"], -25.0)  # (21 - 28) / 28
    assert row["seconds_to_sb3_final"] == math.inf and row["time_ratio"] is None  # 2 of 3 seeds never reach 28


def test_against_a_published_figure_ours_trains_for_its_steps_elsewhere_for_its_preset():
    assert our_budget("MinAtar/Breakout-v1", "a3c", 1.0) == PUBLISHED_STEPS
    assert our_budget("MinAtar/SpaceInvaders-v1", "a3c", 0.05) == PUBLISHED_STEPS // 20
    acrobot_q = resolve_spec({"env_id": "Acrobot-v1", "algo": "one-step-q"})
    assert our_budget("Acrobot-v1", "one-step-q", 1.0) == acrobot_q.total_steps != PUBLISHED_STEPS
