"""The update rules, in place over the flat parameter buffer.

Shared RMSProp as the paper states it (Mnih et al. 2016, eq. in section 4, "RMSProp with shared
statistics"): one statistics vector g for all workers,

    g     = alpha * g + (1 - alpha) * d^2
    theta = theta - lr(T) * d / sqrt(g + eps)

with the learning rate annealed linearly to 0 over the run's total steps.

Each rule runs as a fused single-pass C kernel (ps/core/_kernels.c, built by setup.py, run without the GIL)
where it was built: numpy needs 9 passes over the buffers for one RMSProp step. The numpy functions
below are the reference the kernels are tested against and the fallback of an install built without a
C compiler; KERNEL says which is in use. Both take d_scale and step with d * d_scale, so a clipped
gradient (apply's scale = max_norm / norm) needs no copy of the read-only wire buffer.
"""
from __future__ import annotations

import numpy as np

try:
    from ps.core import _kernels
except ImportError:  # setup.py's extension is optional: no compiler, no kernel
    _kernels = None

KERNEL = "numpy" if _kernels is None else "c"


def linear_lr(lr0: float, global_step: int, total_steps: int) -> float:
    """lr(T): lr0 annealed linearly to 0 at total_steps (never negative)."""
    return lr0 * max(0.0, 1.0 - global_step / total_steps)


def widen_float16(d: np.ndarray) -> np.ndarray:
    """A float16 gradient as a new float32 array: with the kernel (F16C) ~0.1 ms at Atari size,
    where numpy's cast converts in software (~1.3 ms)."""
    wide = np.empty(d.shape, np.float32)
    if _kernels is not None:
        _kernels.widen(d, wide)
    else:
        np.copyto(wide, d, casting="same_kind")
    return wide


def sum_of_squares(d: np.ndarray) -> float:
    """sum(d^2) in float64: finite for any finite float32 or float16 d, NaN or Inf when d holds one.

    One pass on one thread with the kernel. (numpy's float32 dot goes to OpenBLAS, whose helper
    thread spins while it waits for a busy core: measured inside the server under load, 0.35 ms of
    CPU per 2.8 MB gradient against 0.06 ms here.)
    """
    if _kernels is not None:
        return _kernels.sumsq(d if d.dtype == np.float32 else widen_float16(d))
    wide = d.astype(np.float64)
    return float(np.dot(wide, wide))


def clip_scale(max_norm: float, norm: float) -> float:
    """The factor that brings a gradient of L2 norm `norm` to at most max_norm (0 disables): apply()'s scale."""
    if max_norm <= 0 or norm <= max_norm:
        return 1.0
    return max_norm / (norm + 1e-12)


def clip_by_global_norm(d: np.ndarray, max_norm: float, norm: float) -> float:
    """Scale d in place so its L2 norm is at most max_norm (0 disables); returns the scale used.

    For a writable d; the server instead passes clip_scale() to apply(), which leaves d untouched.
    """
    scale = clip_scale(max_norm, norm)
    if scale != 1.0:
        d *= scale
    return scale


def shared_rmsprop(theta: np.ndarray, g: np.ndarray, d: np.ndarray, d_scale: float, lr: float,
                   alpha: float, eps: float, scratch: np.ndarray) -> None:
    """One shared-RMSProp step with x = d * d_scale, in place on theta and g; `scratch` is a same-size
    work buffer. The numpy reference of _kernels.rmsprop.

    No allocation per call: every operation writes into theta, g or scratch, and d_scale is folded
    into the scalar factors (x^2 = d^2 * d_scale^2) rather than applied to a copy of d.
    """
    g *= alpha
    np.multiply(d, d, out=scratch)
    scratch *= (1.0 - alpha) * d_scale * d_scale
    g += scratch
    np.add(g, eps, out=scratch)
    np.sqrt(scratch, out=scratch)
    np.divide(d, scratch, out=scratch)
    scratch *= lr * d_scale
    theta -= scratch


def momentum_sgd(theta: np.ndarray, m: np.ndarray, d: np.ndarray, d_scale: float, lr: float, alpha: float,
                 scratch: np.ndarray) -> None:
    """The paper's momentum SGD for one worker with x = d * d_scale, in place:
    m = alpha*m + (1-alpha)*x; theta -= lr*m. The numpy reference of _kernels.momentum."""
    m *= alpha
    np.multiply(d, (1.0 - alpha) * d_scale, out=scratch)
    m += scratch
    np.multiply(m, lr, out=scratch)
    theta -= scratch


def _copy_out(theta: np.ndarray, out) -> None:
    """The numpy way of the kernels' `out`: theta copied after the step."""
    if out is not None:
        np.copyto(np.frombuffer(out, np.float32) if not isinstance(out, np.ndarray) else out, theta)


class _Fused:
    """Runs a rule with the C kernel when it was built, else with the numpy reference (whose work
    buffer is made on first use: with the kernel, a server never allocates one)."""

    _scratch: np.ndarray | None = None  # the numpy reference's work buffer

    @staticmethod
    def _work_buffer(buf: np.ndarray | None, like: np.ndarray) -> np.ndarray:
        return buf if buf is not None and buf.shape == like.shape else np.empty_like(like)

    @staticmethod
    def _float32(d: np.ndarray) -> np.ndarray:
        """d itself when it is contiguous float32 (the server's case: it widens float16 on decode);
        else a float32 copy. In float16, d*d would overflow for |d| > 256."""
        return widen_float16(d) if d.dtype == np.float16 else np.ascontiguousarray(d, np.float32)

    def _rmsprop(self, theta, g, d, d_scale: float, lr: float, alpha: float, eps: float, out=None) -> None:
        d = self._float32(d)
        if _kernels is not None:
            _kernels.rmsprop(theta, g, d, d_scale, lr, alpha, eps, out)
            return
        self._scratch = self._work_buffer(self._scratch, theta)
        shared_rmsprop(theta, g, d, d_scale, lr, alpha, eps, self._scratch)
        _copy_out(theta, out)

    def _momentum(self, theta, m, d, d_scale: float, lr: float, alpha: float, out=None) -> None:
        d = self._float32(d)
        if _kernels is not None:
            _kernels.momentum(theta, m, d, d_scale, lr, alpha, out)
            return
        self._scratch = self._work_buffer(self._scratch, theta)
        momentum_sgd(theta, m, d, d_scale, lr, alpha, self._scratch)
        _copy_out(theta, out)


class SharedRMSProp(_Fused):
    """The paper's default optimizer: one statistics vector g shared by all workers.

    Optimizers share one small interface so the server can swap them: apply(), per-worker hooks,
    and state()/load_state() for checkpoints.
    """

    name = "shared-rmsprop"

    def __init__(self, size: int, alpha: float, eps: float) -> None:
        self.alpha, self.eps = alpha, eps
        self.g = np.zeros(size, dtype=np.float32)

    def apply(self, theta: np.ndarray, d: np.ndarray, lr: float, worker_id: int, scale: float = 1.0,
              out=None) -> None:
        """One step with the gradient d * scale (scale < 1 clips). Not thread-safe: the caller holds
        the server lock. d is only read, so it may be the read-only wire buffer. With `out` (a
        writable float32 buffer of theta's size), the new theta is also written there, in the
        step's own pass."""
        self._rmsprop(theta, self.g, d, scale, lr, self.alpha, self.eps, out)

    def add_worker(self, worker_id: int) -> None:
        """Called at registration (per-worker optimizers create their state here)."""

    def remove_worker(self, worker_id: int) -> None:
        """Called when a worker leaves or times out."""

    def keep_only(self, worker_ids) -> None:
        """Drop per-worker state of every worker not in worker_ids (none here)."""

    def state(self) -> dict[str, np.ndarray]:
        return {"g": self.g}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        np.copyto(self.g, state["g"])


class _PerWorker(_Fused):
    """State kept per worker (the paper's "per-thread" variants), created at the worker's first push
    (a registration alone costs no memory) and dropped when the worker leaves or times out: a worker
    that rejoins, under a new id, starts fresh statistics."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.per_worker: dict[int, np.ndarray] = {}

    def _state_of(self, worker_id: int) -> np.ndarray:
        # Created lazily, at the worker's first applied push.
        if worker_id not in self.per_worker:
            self.add_worker(worker_id)
        return self.per_worker[worker_id]

    def add_worker(self, worker_id: int) -> None:
        self.per_worker.setdefault(worker_id, np.zeros(self.size, dtype=np.float32))

    def remove_worker(self, worker_id: int) -> None:
        self.per_worker.pop(worker_id, None)

    def keep_only(self, worker_ids) -> None:
        """Drop the state of every worker not in worker_ids: e.g. after a restart, whose workers all
        register again under new ids, the restored per-worker state belongs to no one."""
        keep = set(worker_ids)
        for wid in [w for w in self.per_worker if w not in keep]:
            del self.per_worker[wid]

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

    def apply(self, theta: np.ndarray, d: np.ndarray, lr: float, worker_id: int, scale: float = 1.0,
              out=None) -> None:
        self._rmsprop(theta, self._state_of(worker_id), d, scale, lr, self.alpha, self.eps, out)


class MomentumSGD(_PerWorker):
    """Momentum SGD with a momentum vector per worker, as in the paper's comparison."""

    name = "momentum-sgd"

    def __init__(self, size: int, alpha: float) -> None:
        super().__init__(size)
        self.alpha = alpha

    def apply(self, theta: np.ndarray, d: np.ndarray, lr: float, worker_id: int, scale: float = 1.0,
              out=None) -> None:
        self._momentum(theta, self._state_of(worker_id), d, scale, lr, self.alpha, out)


def make_optimizer(spec, size: int):
    """The optimizer the run spec names (one of ps.api.spec.OPTIMIZERS)."""
    if spec.optimizer == "rmsprop":
        return PerWorkerRMSProp(size, spec.rmsprop_alpha, spec.rmsprop_eps)
    if spec.optimizer == "momentum-sgd":
        return MomentumSGD(size, spec.momentum)
    return SharedRMSProp(size, spec.rmsprop_alpha, spec.rmsprop_eps)
