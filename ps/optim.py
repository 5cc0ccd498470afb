"""The update rules, as pure in-place numpy functions over the flat parameter buffer.

Shared RMSProp as the paper states it (Mnih et al. 2016, eq. in section 4, "RMSProp with shared
statistics"): one statistics vector g for all workers,

    g     = alpha * g + (1 - alpha) * d^2
    theta = theta - lr(T) * d / sqrt(g + eps)

with the learning rate annealed linearly to 0 over the run's total steps.
"""
from __future__ import annotations

import numpy as np


def linear_lr(lr0: float, global_step: int, total_steps: int) -> float:
    """lr(T): lr0 annealed linearly to 0 at total_steps (never negative)."""
    return lr0 * max(0.0, 1.0 - global_step / total_steps)


def clip_by_global_norm(d: np.ndarray, max_norm: float, norm: float) -> float:
    """Scale d in place so its L2 norm is at most max_norm (0 disables); returns the scale used."""
    if max_norm <= 0 or norm <= max_norm:
        return 1.0
    scale = max_norm / (norm + 1e-12)
    d *= scale
    return scale


def shared_rmsprop(theta: np.ndarray, g: np.ndarray, d: np.ndarray, lr: float,
                   alpha: float, eps: float, scratch: np.ndarray) -> None:
    """One shared-RMSProp step, in place on theta and g; `scratch` is a same-size work buffer.

    No allocation per call: every operation writes into theta, g or scratch.
    """
    g *= alpha
    np.multiply(d, d, out=scratch)
    scratch *= 1.0 - alpha
    g += scratch
    np.add(g, eps, out=scratch)
    np.sqrt(scratch, out=scratch)
    np.divide(d, scratch, out=scratch)
    scratch *= lr
    theta -= scratch


class SharedRMSProp:
    """The paper's default optimizer: one statistics vector g shared by all workers.

    Optimizers share one small interface so the server can swap them: apply(), per-worker hooks,
    and state()/load_state() for checkpoints.
    """

    name = "shared-rmsprop"

    def __init__(self, size: int, alpha: float, eps: float) -> None:
        self.alpha, self.eps = alpha, eps
        self.g = np.zeros(size, dtype=np.float32)
        self._scratch = np.zeros(size, dtype=np.float32)

    def apply(self, theta: np.ndarray, d: np.ndarray, lr: float, worker_id: int) -> None:
        """Not thread-safe: the caller holds the server lock."""
        shared_rmsprop(theta, self.g, d, lr, self.alpha, self.eps, self._scratch)

    def add_worker(self, worker_id: int) -> None:
        """Called at registration (per-worker optimizers create their state here)."""

    def remove_worker(self, worker_id: int) -> None:
        """Called when a worker leaves or times out."""

    def state(self) -> dict[str, np.ndarray]:
        return {"g": self.g}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        np.copyto(self.g, state["g"])


def momentum_sgd(theta: np.ndarray, m: np.ndarray, d: np.ndarray, lr: float, alpha: float,
                 scratch: np.ndarray) -> None:
    """The paper's momentum SGD for one worker, in place: m = alpha*m + (1-alpha)*d; theta -= lr*m."""
    m *= alpha
    np.multiply(d, 1.0 - alpha, out=scratch)
    m += scratch
    np.multiply(m, lr, out=scratch)
    theta -= scratch


class _PerWorker:
    """State kept per worker (the paper's "per-thread" variants), created at registration and
    dropped when the worker leaves: a worker that rejoins starts fresh statistics."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.per_worker: dict[int, np.ndarray] = {}
        self._scratch = np.zeros(size, dtype=np.float32)

    def _state_of(self, worker_id: int) -> np.ndarray:
        # Created lazily too: a worker restored from a checkpoint may push before it re-registers.
        if worker_id not in self.per_worker:
            self.add_worker(worker_id)
        return self.per_worker[worker_id]

    def add_worker(self, worker_id: int) -> None:
        self.per_worker.setdefault(worker_id, np.zeros(self.size, dtype=np.float32))

    def remove_worker(self, worker_id: int) -> None:
        self.per_worker.pop(worker_id, None)

    def state(self) -> dict[str, np.ndarray]:
        return {f"worker_{wid}": v for wid, v in self.per_worker.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.per_worker = {int(k.split("_", 1)[1]): np.array(v, dtype=np.float32)
                           for k, v in state.items() if k.startswith("worker_")}


class PerWorkerRMSProp(_PerWorker):
    """RMSProp whose statistics g_i are kept per worker (on the server, keyed by worker id)."""

    name = "rmsprop"

    def __init__(self, size: int, alpha: float, eps: float) -> None:
        super().__init__(size)
        self.alpha, self.eps = alpha, eps

    def apply(self, theta: np.ndarray, d: np.ndarray, lr: float, worker_id: int) -> None:
        shared_rmsprop(theta, self._state_of(worker_id), d, lr, self.alpha, self.eps, self._scratch)


class MomentumSGD(_PerWorker):
    """Momentum SGD with a momentum vector per worker, as in the paper's comparison."""

    name = "momentum-sgd"

    def __init__(self, size: int, alpha: float) -> None:
        super().__init__(size)
        self.alpha = alpha

    def apply(self, theta: np.ndarray, d: np.ndarray, lr: float, worker_id: int) -> None:
        momentum_sgd(theta, self._state_of(worker_id), d, lr, self.alpha, self._scratch)


OPTIMIZERS = ("shared-rmsprop", "rmsprop", "momentum-sgd")


def make_optimizer(spec, size: int):
    """The optimizer the run spec names (one of OPTIMIZERS)."""
    if spec.optimizer == "rmsprop":
        return PerWorkerRMSProp(size, spec.rmsprop_alpha, spec.rmsprop_eps)
    if spec.optimizer == "momentum-sgd":
        return MomentumSGD(size, spec.momentum)
    return SharedRMSProp(size, spec.rmsprop_alpha, spec.rmsprop_eps)
