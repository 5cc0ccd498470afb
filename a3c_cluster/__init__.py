"""The Python API, for notebooks and scripts: train a run, load a saved policy and act with it.

    from a3c_cluster import train, Policy
    summary = train("CartPole-v1", run_dir="runs/nb", workers=2, target_return=475)
    policy = Policy.load("runs/nb")
    action = policy.act(observation)          # one observation -> one action
    result = policy.evaluate(episodes=10)     # what ps-eval prints and writes
"""
from a3c_cluster.api import Policy, train

__all__ = ["Policy", "train"]
