"""The run's configuration, RunSpec: set once on the server, sent to every worker at registration.

A frozen dataclass validated at construction, so a bad flag fails at start with a message
that says what is wrong, never halfway through a run.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated

from tyro.conf import arg  # names a field's flag where it is not --field-name (ps/options.py)

from ps.api.presets import preset_names

ALGORITHMS = ("a3c", "one-step-q", "one-step-sarsa", "n-step-q")
VALUE_BASED = ("one-step-q", "one-step-sarsa", "n-step-q")
NETWORKS = ("auto", "mlp", "atari", "minatar")  # worker/networks builds each
OPTIMIZERS = ("shared-rmsprop", "rmsprop", "momentum-sgd")  # ps/core/optim.py applies each
STALENESS_LR = ("none", "inverse")  # ps/core/staleness.py
GAUSSIAN_STD = ("softplus", "parameter")  # worker/networks/heads.py
TARGET_ON = ("auto", "train", "eval")  # ps/core/evaluations.py judges the target on evaluation
Q_LOSSES = ("squared", "huber")  # worker/algorithms/q_learning.py
MAX_EVAL_EPISODES = 10_000  # an evaluation round's episodes; the server refuses a report with more


class ConfigError(Exception):
    """A configuration value is wrong; the message says which and what to do. (Not a ValueError: tyro
    would catch that while building the spec from flags and print it cut short.)"""


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to act and learn; set once on the server, sent at registration."""

    env_id: Annotated[str, arg(name="env")] = "CartPole-v1"
    """Gymnasium environment id every worker builds."""
    algo: str = "a3c"
    """a3c, one-step-q, one-step-sarsa or n-step-q."""
    seed: int = 0
    """Run seed; each worker's seed is derived from it and the worker id."""
    t_max: int = 4
    """Steps per environment between pushes (the paper's t_max)."""
    envs_per_worker: Annotated[int, arg(name="envs")] = 64
    """Environments each worker steps in lockstep with one batched forward; a push sums over all."""
    gamma: float = 0.99
    """Discount factor."""
    lr: float = 4e-3
    """Initial learning rate, annealed linearly to 0 over total_steps."""
    entropy_beta: float = 0.0
    """Weight of the policy-entropy bonus in the A3C loss."""
    value_coef: float = 0.5
    """Weight of the value (critic) loss in the A3C loss."""
    rmsprop_alpha: float = 0.99
    """Decay of the shared RMSProp statistics g."""
    rmsprop_eps: float = 1e-5
    """Added to g under the square root."""
    max_grad_norm: float = 5.0
    """Global-norm clip applied by the server to each pushed (summed) gradient; 0 disables it."""
    hidden_size: int = 64
    """Units per hidden layer of the MLP torso."""
    hidden_layers: int = 2
    """Hidden layers of the MLP torso."""
    total_steps: int = 1_000_000
    """Global environment steps T after which the run stops (and the lr reaches 0)."""
    target_return: float | None = 475.0
    """Stop when the mean return of the last 100 episodes reaches this; None to run to total_steps."""

    # --- optimizers and synchronous mode (the paper's comparisons) ---
    optimizer: str = "shared-rmsprop"
    """Update rule on the server: shared-rmsprop (the paper's best), rmsprop (statistics per worker) or momentum-sgd (momentum per worker)."""
    momentum: float = 0.9
    """Momentum decay alpha of momentum-sgd: m = alpha*m + (1-alpha)*d."""
    sync: bool = False
    """Synchronous (A2C-like) mode: wait for one push from every live worker, apply their sum once, release them."""
    sync_timeout: float = 10.0
    """In --sync mode, seconds a round waits for a slow or dead worker before applying without it."""

    # --- staleness policies ---
    max_staleness: int = 0
    """Drop pushes whose staleness exceeds this many versions (the worker gets fresh weights); 0 = no bound."""
    staleness_lr: str = "none"
    """Learning rate per push: none (the paper's plain update) or inverse (lr(T) / max(1, staleness), Zhang et al. 2016)."""

    # --- domains: Atari, MinAtar, continuous control (network choice; env-family defaults in ps/families.py) ---
    network: str = "auto"
    """Network: auto (from the observation space), mlp, atari (the paper's conv net) or minatar (a small conv net)."""
    dense_size: int = 0
    """Units of the conv nets' dense layer (atari, minatar); 0 = the network's published width: 256 (atari), 128 (minatar)."""
    lstm: bool = False
    """Add an LSTM of 256 cells after the torso (the paper's A3C LSTM); its state is carried across rollouts."""

    # --- value-based methods: one-step Q, one-step Sarsa, n-step Q (ps/target.py, worker/agents/q.py) ---
    target_update_steps: int = 2_000
    """Q methods: copy theta into the target network theta- every this many global env steps (paper: 40,000 frames on Atari)."""
    async_update_steps: int = 5
    """One-step Q and Sarsa: steps per env whose gradients are summed into one push (also pushed at an episode's end)."""
    epsilon_anneal_steps: int = 20_000
    """Q methods: each worker anneals epsilon from 1 to its final value (0.1, 0.01 or 0.5, dealt by worker id) over this many of its own env steps."""
    q_loss: str = "squared"
    """Q methods: squared (the paper's (y - Q)^2) or huber (quadratic within 1 of the target, linear beyond: DQN's error clipping)."""
    double_q: bool = False
    """One-step and n-step Q: bootstrap from theta-'s value of theta's greedy action (double Q-learning, van Hasselt et al. 2016) instead of theta-'s max."""

    # --- A3C beyond the paper (off by default: the paper's forward view and softplus variance) ---
    gae_lambda: float = 1.0
    """A3C: lambda of generalized advantage estimation (Schulman et al. 2016) inside each t_max rollout; 1 = the paper's n-step returns."""
    normalize_advantage: bool = False
    """A3C: scale each rollout's advantages to mean 0, std 1 before the policy loss."""
    gaussian_std: str = "softplus"
    """A3C, continuous actions: softplus (the paper: a variance output per state) or parameter (a learned log-std per action dimension, state-independent)."""
    log_std_init: float = 0.0
    """A3C, --gaussian-std parameter: the log-std the policy starts from."""

    # --- speed (issue 8; measured in bench/) ---
    wire_dtype: str = "float32"
    """Dtype of pushed gradients on the wire: float32, or float16 (half the bytes; the server applies them in float32)."""
    overlap_push: bool = False
    """Each worker acts and learns its next rollout while its push is in flight (staleness one higher), instead of waiting for the reply."""
    ale_vector: bool = True
    """Atari: step each worker's envs in ale-py's C++ vector env (same preprocessing, batched); --no-ale-vector for gymnasium's Python wrappers."""

    # --- normalisation shared by all workers (issue 18; ps/api/moments.py, worker/normalize.py) ---
    normalize_obs: bool = False
    """Feed the network (obs - mean) / sqrt(var + 1e-8), clipped to +-clip_obs, with the running moments of all workers' observations, kept on the server."""
    normalize_reward: bool = False
    """Train on rewards divided by the running std of the discounted return (all workers'), clipped to +-clip_reward; episode returns are reported unscaled."""
    clip_obs: float = 10.0
    """Bound of the normalised observations (VecNormalize's)."""
    clip_reward: float = 10.0
    """Bound of the scaled rewards (VecNormalize's)."""
    # --- evaluation during training (worker-run --evaluator; worker/evaluator.py, ps/core/evaluations.py) ---
    eval_every: float = 0.0
    """Seconds between evaluation rounds of the evaluator (worker-run --evaluator; --local-workers starts one); 0 = no evaluation."""
    eval_episodes: int = 10
    """Episodes per evaluation round; their mean is eval_mean."""
    eval_deterministic: bool = True
    """Evaluate the policy's most likely action (greedy Q); else its sample (Q: epsilon 0.05)."""
    target_on: str = "auto"
    """Judge --target-return on: train (mean100 of the training episodes), eval (an evaluation round's mean) or auto (eval when --eval-every > 0)."""
    # --- presets per env (ps/api/presets.py) ---
    preset: str = "auto"
    """Settings for the flags not given: auto (the env's row in ps/api/presets.py, if it has one), none (the bare family defaults) or an env id whose row to use."""

    def __post_init__(self) -> None:
        if self.wire_dtype not in ("float32", "float16"):
            raise ConfigError(f"--wire-dtype must be float32 or float16, got {self.wire_dtype!r}")
        if self.network not in NETWORKS:
            raise ConfigError(f"unknown --network {self.network!r}: choose one of {', '.join(NETWORKS)}")
        if self.algo not in ALGORITHMS:
            raise ConfigError(f"unknown --algo {self.algo!r}: choose one of {', '.join(ALGORITHMS)}")
        _positive(self, "t_max", "envs_per_worker", "lr", "total_steps", "hidden_size", "hidden_layers")
        _positive(self, "target_update_steps", "async_update_steps", "epsilon_anneal_steps")
        if self.algo in VALUE_BASED and getattr(self, "lstm", False):
            raise ConfigError(f"--lstm is for a3c: --algo {self.algo} uses a feed-forward Q-network (as in the paper)")
        if self.double_q and self.algo not in ("one-step-q", "n-step-q"):
            raise ConfigError(f"--double-q is for one-step-q and n-step-q: --algo {self.algo} bootstraps from no max")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"--gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 <= self.rmsprop_alpha < 1.0:
            raise ConfigError(f"--rmsprop-alpha must be in [0, 1), got {self.rmsprop_alpha}")
        if self.rmsprop_eps <= 0:
            raise ConfigError(f"--rmsprop-eps must be > 0, got {self.rmsprop_eps}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown --optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.staleness_lr not in STALENESS_LR:
            raise ConfigError(f"unknown --staleness-lr {self.staleness_lr!r}: choose one of {', '.join(STALENESS_LR)}")
        if self.max_staleness < 0:
            raise ConfigError(f"--max-staleness must be >= 0 (0 = no bound), got {self.max_staleness}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.sync_timeout <= 0:
            raise ConfigError(f"--sync-timeout must be > 0, got {self.sync_timeout}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError(f"--gae-lambda must be in [0, 1], got {self.gae_lambda}")
        if self.q_loss not in Q_LOSSES:
            raise ConfigError(f"unknown --q-loss {self.q_loss!r}: choose one of {', '.join(Q_LOSSES)}")
        if self.gaussian_std not in GAUSSIAN_STD:
            raise ConfigError(f"unknown --gaussian-std {self.gaussian_std!r}: choose one of {', '.join(GAUSSIAN_STD)}")
        if self.dense_size < 0:
            raise ConfigError(f"--dense-size must be >= 0 (0 = the network's published width), got {self.dense_size}")
        if self.max_grad_norm < 0 or self.entropy_beta < 0 or self.value_coef < 0:
            raise ConfigError("--max-grad-norm, --entropy-beta and --value-coef must be >= 0")
        _positive(self, "clip_obs", "clip_reward")
        _check_evaluation(self)
        if self.preset not in preset_names():
            raise ConfigError(f"unknown --preset {self.preset!r}: choose one of {', '.join(preset_names())}")

    @property
    def target_on_eval(self) -> bool:
        """Whether --target-return is judged on evaluation rounds rather than training episodes."""
        return self.target_on == "eval" or (self.target_on == "auto" and self.eval_every > 0)

    @property
    def steps_per_push(self) -> int:
        """Environment steps one push covers: t_max on each of the worker's environments."""
        return self.t_max * self.envs_per_worker

    @property
    def max_env_steps_per_push(self) -> int:
        """The most env steps one push of this run can report (the server refuses more): t_max steps on
        each env for a3c and n-step Q; async_update_steps for one-step Q and Sarsa (fewer when an
        episode ends first), as worker/agents count them."""
        horizon = self.async_update_steps if self.algo in ("one-step-q", "one-step-sarsa") else self.t_max
        return horizon * self.envs_per_worker

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"run spec has fields this worker does not know: {unknown}; upgrade the worker")
        return cls(**data)


def _positive(spec: object, *names: str) -> None:
    for name in names:
        value = getattr(spec, name)
        if value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def _check_evaluation(spec: RunSpec) -> None:
    if not (spec.eval_every >= 0 and spec.eval_every < float("inf")):
        raise ConfigError(f"--eval-every must be >= 0 seconds (0 = no evaluation), got {spec.eval_every}")
    if not 1 <= spec.eval_episodes <= MAX_EVAL_EPISODES:
        raise ConfigError(f"--eval-episodes must be in 1..{MAX_EVAL_EPISODES}, got {spec.eval_episodes}")
    if spec.target_on not in TARGET_ON:
        raise ConfigError(f"unknown --target-on {spec.target_on!r}: choose one of {', '.join(TARGET_ON)}")
    if spec.target_on == "eval" and spec.eval_every == 0:
        raise ConfigError("--target-on eval needs evaluation rounds: give --eval-every SECONDS too")
