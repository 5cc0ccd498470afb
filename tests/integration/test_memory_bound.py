"""The server's memory under hostile clients stays within --max-inflight-bytes plus a margin (bench/attacks.py,
scaled down): wrong-length pushes just under --max-message-bytes from many clients at once, 120 MiB pushes
without the token; and afterwards a legitimate worker's push is applied. The server's RSS is sampled every
50 ms; a fresh ps-serve per attack, with a token and a 700,000-float layout adopted."""
import pytest

from bench import attacks as A

MIB = 1024 * 1024
MESSAGE = 4 * MIB          # --max-message-bytes (its minimum): the gate reserves 8 MiB a request
INFLIGHT = 64 * MIB        # --max-inflight-bytes: 8 requests at once
SCALE = A.Scale(pushers=32, push_bytes=MESSAGE - 64 * 1024, big=8, big_bytes=120 * MIB,
                pulls=100, pull_connections=10, pull_hold_seconds=3.0)


@pytest.fixture(autouse=True)
def short_settle(monkeypatch):
    monkeypatch.setattr(A, "SETTLE_SECONDS", 2.0)


def _run(name, tmp_path):
    [result] = A.run([name], SCALE, tmp_path, message=MESSAGE, inflight=INFLIGHT)
    assert result.alive and result.worker_ok, result
    return result


@pytest.mark.timeout(120)
def test_wrong_length_pushes_stay_within_the_inflight_bound(tmp_path):
    r = _run("64 x ~16 MiB wrong-length pushes", tmp_path)
    assert set(r.codes) <= {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED(busy)"}, r.codes
    assert sum(r.codes.values()) == SCALE.pushers
    assert r.growth <= INFLIGHT + A.MARGIN, f"peak {r.peak / MIB:.0f} MiB, steady {r.steady / MIB:.0f} MiB"


@pytest.mark.timeout(120)
def test_big_pushes_without_the_token_are_refused_before_their_body(tmp_path):
    r = _run("32 x 120 MiB pushes, no token", tmp_path)
    assert r.codes == {"UNAUTHENTICATED": SCALE.big}, r.codes
    assert r.growth <= INFLIGHT + A.MARGIN, f"peak {r.peak / MIB:.0f} MiB, steady {r.steady / MIB:.0f} MiB"


def test_unread_pull_replies_stay_within_the_bound(tmp_path):
    r = _run("400 Pull replies never read", tmp_path)
    assert r.growth <= INFLIGHT + A.MARGIN, f"peak {r.peak / MIB:.0f} MiB, steady {r.steady / MIB:.0f} MiB"
