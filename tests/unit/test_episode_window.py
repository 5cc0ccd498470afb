"""best_mean100 is judged when the stop rule is, after a whole push: a run never reports a best at or
above its target without having stopped on it."""
import numpy as np

from ps.api.layout import Layout
from ps.api.source import Push
from ps.api.spec import RunSpec
from ps.config import ServerConfig
from ps.core.episodes import EpisodeWindow
from ps.core.parameter_server import ParameterServer

LAYOUT = Layout.from_pairs([("w", (3,))])


def test_best_is_taken_after_the_push_not_between_its_episodes():
    window = EpisodeWindow(window=3)
    window.extend([10.0, 10.0, 10.0])
    assert window.best_mean100 == 10.0
    window.extend([100.0, 0.0, 0.0])  # the window's mean passes 40 after the first, ends at 33.3
    assert window.best_mean100 == 100.0 / 3 and window.episodes == 6


def test_a_push_that_passes_the_target_midway_and_ends_below_it_is_no_best(tmp_path):
    core = ParameterServer(RunSpec(total_steps=10**9, target_return=50.0, envs_per_worker=100, t_max=5),
                           ServerConfig(run_dir=str(tmp_path)))
    try:
        wid, _ = core.register("h", 1)
        core.pull(wid, LAYOUT, np.zeros(LAYOUT.size, np.float32).tobytes())

        def push(returns):
            return core.push(Push(wid, core.version, np.zeros(LAYOUT.size, np.float32).tobytes(), 500,
                                  episode_returns=tuple(returns), episode_lengths=(1,) * len(returns)))
        push([40.0] * 100)
        outcome = push([100.0] * 30 + [0.0] * 70)  # the mean is 58 after the 30, 30 at the end of the push
        assert not outcome.stop and core.episodes.best_mean100 == 40.0
        outcome = push([60.0] * 100)
        assert outcome.stop and core.episodes.best_mean100 == 60.0
    finally:
        core.close()
