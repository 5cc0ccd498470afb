"""The paper's Atari preprocessing as the worker builds it, and the score it reports."""
import gymnasium
import numpy as np
from gymnasium import spaces

from worker.envs import EnvBatch, clip_rewards_report_score, make_env


class FivePerStep(gymnasium.Env):
    """Reward 5 every step, 4 steps an episode: clipped it trains on 1s, its score is 20."""

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 5.0, self.t >= 4, False, {}


def test_pong_observations_are_four_stacked_84x84_grayscale_frames():
    env = make_env("ALE/Pong-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.float32
    assert 0.0 <= obs.min() and obs.max() <= 1.0 and obs.max() > 0
    assert env.observation_space.shape == (4, 84, 84)
    assert env.unwrapped._frameskip == 1  # the preprocessing wrapper skips (4) and max-pools frames itself
    env.close()


def test_training_sees_clipped_rewards_and_the_raw_score_is_reported():
    gymnasium.register(id="tests/FivePerStepClipped-v0",
                       entry_point=lambda: clip_rewards_report_score(FivePerStep()))
    envs = EnvBatch("tests/FivePerStepClipped-v0", 1, seed=0)
    rewards = [envs.step(np.array([0]))[0][0] for _ in range(4)]
    assert rewards == [1.0] * 4
    assert envs.take_finished() == ([20.0], [4])
    envs.close()


def test_minatar_images_are_channels_first_floats():
    env = make_env("MinAtar/Breakout-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 10, 10) and obs.dtype == np.float32 and set(np.unique(obs)) <= {0.0, 1.0}
    env.close()


def test_continuous_actions_are_clipped_to_the_space():
    env = make_env("Pendulum-v1")
    env.reset(seed=0)
    env.step(np.array([100.0], np.float32))  # far outside [-2, 2]: clipped, not an error
    assert env.unwrapped.last_u == 2.0
    env.close()
