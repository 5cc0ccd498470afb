"""The metrics observer's bookkeeping and the 10 s rate window, driven with hand-made push events."""
from prometheus_client import generate_latest

from ps.api.source import Push, PushOutcome
from ps.service.metrics import PrometheusMetrics
from ps.service.rates import RateWindow


def push(worker_id: int, staleness: int, env_steps: int = 40, applied: bool = True) -> tuple[Push, PushOutcome]:
    return (Push(worker_id, 0, b"", env_steps),
            PushOutcome(applied=applied, dropped_reason="" if applied else "too_stale", version=0, staleness=staleness,
                        stop=False, global_step=0, learning_rate=1e-3, version_at_apply=staleness, grad_norm=1.0,
                        apply_seconds=0.0005, server_seconds=0.001, time=0.0, mean100=20.0))


def value(metrics: PrometheusMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()} or None)


def test_staleness_lands_in_the_published_buckets():
    m = PrometheusMetrics()
    m.on_workers(1, [1])
    for s in (0, 1, 3, 4, 5, 64, 65):
        m.on_push(*push(1, s))
    assert [value(m, "a3c_ps_gradient_staleness_versions_bucket", le=le) for le in ("0.0", "1.0", "2.0", "4.0", "8.0", "64.0", "+Inf")] \
        == [1, 2, 2, 4, 5, 6, 7]
    assert value(m, "a3c_ps_updates_total") == 7 and value(m, "a3c_ps_env_steps_total") == 280
    assert value(m, "a3c_ps_worker_mean_staleness_versions", worker_id=1) == sum((0, 1, 3, 4, 5, 64, 65)) / 7


def test_a_leaving_worker_takes_its_series_with_it():
    m = PrometheusMetrics()
    m.on_workers(2, [1, 2])
    m.on_push(*push(1, 0))
    m.on_push(*push(2, 1))
    m.on_workers(1, [2])                 # worker 1 left
    m.on_push(*push(1, 0))                # a late push from it must not bring its series back
    text = generate_latest(m.registry).decode()
    assert 'worker_id="1"' not in text and 'worker_id="2"' in text
    assert value(m, "a3c_ps_workers_connected") == 1
    assert value(m, "a3c_ps_updates_total") == 3   # the cluster-wide counters still count it


def test_dropped_and_rejected_pushes_are_counted_by_reason():
    m = PrometheusMetrics()
    m.on_push(*push(1, 9, applied=False))
    m.on_reject("bad_length")
    m.on_reject("bad_length")
    assert value(m, "a3c_ps_dropped_pushes_total", reason="too_stale") == 1
    assert value(m, "a3c_ps_rejected_pushes_total", reason="bad_length") == 2
    assert value(m, "a3c_ps_updates_total") == 0 and value(m, "a3c_ps_gradient_staleness_versions_count") == 0


def test_rates_cover_the_last_ten_seconds_only():
    now = [100.0]
    rates = RateWindow(clock=lambda: now[0])
    now[0] = 104.0                       # a young run divides by its age
    for _ in range(8):
        rates.on_push(*push(1, 0, env_steps=40))
    assert rates.rates() == (2.0, 80.0)
    now[0] = 113.0                       # 9 s after those pushes: still in the window
    assert rates.rates() == (0.8, 32.0)
    now[0] = 114.5                       # 10.5 s after: gone
    assert rates.status_fields() == {"rate_window_seconds": 10.0, "updates_per_second": 0.0,
                                     "env_steps_per_second": 0.0}
