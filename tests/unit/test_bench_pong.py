"""bench.pong's curve and bench.atari's step timers report what they measured."""
import csv
import time

from bench.pong import WINDOW, Curve
from bench.step_times import StepTimes


def test_milestones_are_the_first_time_the_mean_of_the_last_20_reaches_them(tmp_path):
    curve = Curve(started_unix=1000.0)
    scores = [-21.0] * WINDOW + [20.0] * WINDOW  # the mean of 20 climbs from -21 to 20
    curve.add([(1000.0 + i, 400 * i, s) for i, s in enumerate(scores)])
    # mean of the last 20 >= 0 first when 11 of them are 20: (11*20 - 9*21)/20 = 1.55
    first_zero = WINDOW + 10
    assert curve.reached[0.0] == (first_zero, 400 * first_zero)
    assert curve.reached[18.0][1] == 400 * (2 * WINDOW - 1) and curve.mean == 20.0
    curve.write(tmp_path, "test")
    rows = list(csv.DictReader(open(tmp_path / "curve.csv")))
    assert len(rows) == 2 * WINDOW and float(rows[-1][f"mean{WINDOW}"]) == 20.0
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_a_short_curve_reaches_no_milestone():
    curve = Curve(started_unix=0.0)
    curve.add([(1.0, 100, 21.0)] * (WINDOW - 1))  # a high mean, but fewer than 20 episodes
    assert curve.reached == {}


class Timed:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, *args):
        time.sleep(self.seconds)
        return 0


def test_the_step_timers_split_each_push_into_its_parts():
    class Envs:
        step = Timed(0.01)

    class Model:
        step = Timed(0.005)

    class Agent:
        model = Model()

        def learn_step(self, envs):
            envs.step()
            self.model.step()
            time.sleep(0.02)  # the loss pass
            return 20, {}

    class Source:
        push = Timed(0.03)

    times, envs, agent, source = StepTimes(), Envs(), Agent(), Source()
    times.install(envs, agent)
    times.wrap_push(source)
    for _ in range(3):
        agent.learn_step(envs)
        source.push()
    ms = times.per_push_ms(wire_seconds=0.001)
    assert times.pushes == 3
    # Sleeps overrun on a busy machine, never undershoot: lower bounds, and loose upper ones.
    assert 10 <= ms["env"] < 40 and 5 <= ms["forward"] < 30 and 20 <= ms["backward"] < 60
    assert ms["wire"] == 1.0 and 29 <= ms["wait"] < 90 and 30 <= ms["round_trip"] < 90
    assert abs(ms["wall"] - sum(ms[k] for k in ("env", "forward", "backward", "wire", "wait"))) < 1e-6
