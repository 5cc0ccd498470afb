"""--dense-size: the conv nets' dense width, where 0 keeps the published one (and old run specs load)."""
import json

import numpy as np
import pytest
from gymnasium import spaces
from torch import nn

from ps.api.spec import ConfigError, RunSpec
from worker.networks import build_policy_value_net, build_q_network


def dense_width(net) -> int:
    return [m for m in net.torso.modules() if isinstance(m, nn.Linear)][-1].out_features


@pytest.mark.parametrize("shape, published", [((4, 10, 10), 128), ((4, 84, 84), 256)])
@pytest.mark.parametrize("build", [build_policy_value_net, build_q_network])
def test_dense_size_sets_the_conv_nets_dense_width_and_0_keeps_the_published_one(shape, published, build):
    obs, actions = spaces.Box(0.0, 1.0, shape, np.float32), spaces.Discrete(3)
    assert dense_width(build(RunSpec(), obs, actions)) == published
    assert dense_width(build(RunSpec(dense_size=96), obs, actions)) == 96


def test_a_run_spec_saved_without_dense_size_builds_the_published_network():
    saved = json.loads(RunSpec().to_json())
    del saved["dense_size"]
    assert RunSpec.from_json(json.dumps(saved)).dense_size == 0


def test_a_negative_dense_size_is_refused():
    with pytest.raises(ConfigError, match="--dense-size must be >= 0"):
        RunSpec(dense_size=-1)
