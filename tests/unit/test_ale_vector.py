"""ale-py's C++ vector env against the gymnasium path (worker/envs.py): the same preprocessing settings,
spaces and observation format, and nearly the same pixels.

Identical pixels are not expected after a few steps: each path draws its own number of no-op starts
from its own generator, so paddles and ball sit a few frames apart. What must match exactly is the
settings and the format (shape, dtype, range, the stack padded with the first frame after a reset);
the court itself is the same, so the frames differ only where the paddles and the ball are.
"""
import gymnasium
import numpy as np
import pytest

from ps.api.defaults import resolve_spec
from ps.api.envs import ATARI_FRAME_SKIP
from worker.ale_vector import AleVectorBatch
from worker.envs import EnvBatch, make_env, make_env_batch

PONG = "ALE/Pong-v5"


def gymnasium_settings(env) -> dict:
    """The same keys as worker.ale_vector.vector_settings, read off the wrappers make_env builds."""
    found = {}
    while hasattr(env, "env"):
        if isinstance(env, gymnasium.wrappers.AtariPreprocessing):
            found.update(frameskip=env.frame_skip, img_height=env.screen_size[0], img_width=env.screen_size[1],
                         grayscale=env.grayscale_obs, noop_max=env.noop_max, episodic_life=env.terminal_on_life_loss)
        if isinstance(env, gymnasium.wrappers.FrameStackObservation):
            found.update(stack_num=env.stack_size)
        env = env.env
    ale = env.unwrapped.ale
    found.update(game=env.unwrapped.spec.kwargs["game"], use_fire_reset=False, maxpool=True,
                 repeat_action_probability=ale.getFloat("repeat_action_probability"),
                 full_action_space=env.unwrapped.spec.kwargs["full_action_space"],
                 max_num_frames_per_episode=ale.getInt("max_num_frames_per_episode"))
    assert env.unwrapped._frameskip == 1  # gymnasium's wrapper skips and max-pools the frames itself
    return found


@pytest.fixture(scope="module")
def both():
    vector, python = AleVectorBatch(PONG, 4, seed=0), EnvBatch(PONG, 4, seed=0)
    yield vector, python
    vector.close()
    python.close()


def test_the_preprocessing_settings_are_the_same(both):
    vector, _ = both
    env = make_env(PONG)
    assert vector.settings == gymnasium_settings(env)
    assert vector.settings["frameskip"] == ATARI_FRAME_SKIP
    env.close()


def test_spaces_and_observations_have_the_same_format(both):
    vector, python = both
    assert vector.observation_space == python.observation_space and vector.action_space == python.action_space
    for obs in (vector.obs, python.obs):
        assert obs.shape == (4, 4, 84, 84) and obs.dtype == np.float32 and 0 <= obs.min() and obs.max() <= 1
    # Right after a reset the stack is the first frame four times in both (not ale-py's zeros).
    assert all(np.array_equal(vector.obs[k, 0], vector.obs[k, 3]) for k in range(4))
    assert np.abs(vector.obs - python.obs).mean() < 0.005


def test_stepping_gives_the_same_game_and_clipped_rewards(both):
    vector, python = both
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(80):  # Pong's first points come about 60 agent steps in
        actions = rng.integers(0, 6, 4)
        r, term, trunc, final_obs = vector.step(actions)
        python.step(actions)
        rewards.append(r)
        assert r.dtype == np.float32 and not (term | trunc).any() and final_obs == {}
    assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0} and np.min(rewards) == -1.0
    assert vector.obs.dtype == np.float32 and 0 <= vector.obs.min() and vector.obs.max() <= 1
    assert np.abs(vector.obs - python.obs).mean() < 0.01  # the same court; paddles and ball elsewhere


def test_a_truncated_episode_keeps_its_final_observation_and_raw_score():
    gymnasium.register("tests/PongShort-v5", entry_point="ale_py.env:AtariEnv",
                       kwargs=dict(game="pong", full_action_space=False, max_num_frames_per_episode=400))
    envs = AleVectorBatch("tests/PongShort-v5", 2, seed=0)
    total = np.zeros(2)
    for _ in range(200):
        r, term, trunc, final_obs = envs.step(np.zeros(2, np.int64))
        total += r
        if trunc.any():
            break
    assert trunc.all() and not term.any() and sorted(final_obs) == [0, 1]
    assert all(o.shape == (4, 84, 84) and o.dtype == np.float32 and o.max() <= 1 for o in final_obs.values())
    returns, lengths = envs.take_finished()
    assert returns == list(total) and lengths == [400 // ATARI_FRAME_SKIP] * 2
    # The new episodes start padded with their first frame.
    assert all(np.array_equal(envs.obs[k, 0], envs.obs[k, 3]) for k in range(2))
    envs.close()


def test_atari_runs_take_the_vector_env_unless_told_otherwise():
    fast = make_env_batch(resolve_spec({"env_id": PONG, "envs_per_worker": 2}), seed=0)
    slow = make_env_batch(resolve_spec({"env_id": PONG, "envs_per_worker": 2, "ale_vector": False}), seed=0)
    assert isinstance(fast, AleVectorBatch) and isinstance(slow, EnvBatch) and len(fast) == len(slow) == 2
    assert fast.take_moments() == slow.take_moments() == ()  # nothing to normalise here
    fast.close()
    slow.close()
