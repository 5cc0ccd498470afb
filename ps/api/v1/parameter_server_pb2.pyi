from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("data", "shape", "dtype")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    def __init__(self, data: _Optional[bytes] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ...) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "shape", "buffer")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    BUFFER_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    buffer: bool
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., buffer: _Optional[bool] = ...) -> None: ...

class Layout(_message.Message):
    __slots__ = ("tensors", "hash")
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    tensors: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    hash: str
    def __init__(self, tensors: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., hash: _Optional[str] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("host", "pid", "evaluator")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    EVALUATOR_FIELD_NUMBER: _ClassVar[int]
    host: str
    pid: int
    evaluator: bool
    def __init__(self, host: _Optional[str] = ..., pid: _Optional[int] = ..., evaluator: _Optional[bool] = ...) -> None: ...

class RegisterReply(_message.Message):
    __slots__ = ("worker_id", "seed", "run_spec_json", "incarnation", "shards", "shard")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RUN_SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    seed: int
    run_spec_json: str
    incarnation: str
    shards: _containers.RepeatedScalarFieldContainer[str]
    shard: int
    def __init__(self, worker_id: _Optional[int] = ..., seed: _Optional[int] = ..., run_spec_json: _Optional[str] = ..., incarnation: _Optional[str] = ..., shards: _Optional[_Iterable[str]] = ..., shard: _Optional[int] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("worker_id", "layout", "initial_params", "incarnation")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PARAMS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    layout: Layout
    initial_params: Tensor
    incarnation: str
    def __init__(self, worker_id: _Optional[int] = ..., layout: _Optional[_Union[Layout, _Mapping]] = ..., initial_params: _Optional[_Union[Tensor, _Mapping]] = ..., incarnation: _Optional[str] = ...) -> None: ...

class PullReply(_message.Message):
    __slots__ = ("params", "version", "target_params", "target_version", "stop", "global_step")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_PARAMS_FIELD_NUMBER: _ClassVar[int]
    TARGET_VERSION_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_STEP_FIELD_NUMBER: _ClassVar[int]
    params: Tensor
    version: int
    target_params: Tensor
    target_version: int
    stop: bool
    global_step: int
    def __init__(self, params: _Optional[_Union[Tensor, _Mapping]] = ..., version: _Optional[int] = ..., target_params: _Optional[_Union[Tensor, _Mapping]] = ..., target_version: _Optional[int] = ..., stop: _Optional[bool] = ..., global_step: _Optional[int] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("worker_id", "base_version", "gradients", "env_steps", "episode_returns", "episode_lengths", "stats", "target_version", "incarnation", "moments", "grad_norm", "run_staleness")
    class StatsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    GRADIENTS_FIELD_NUMBER: _ClassVar[int]
    ENV_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPISODE_RETURNS_FIELD_NUMBER: _ClassVar[int]
    EPISODE_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    TARGET_VERSION_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    MOMENTS_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    RUN_STALENESS_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    base_version: int
    gradients: Tensor
    env_steps: int
    episode_returns: _containers.RepeatedScalarFieldContainer[float]
    episode_lengths: _containers.RepeatedScalarFieldContainer[int]
    stats: _containers.ScalarMap[str, float]
    target_version: int
    incarnation: str
    moments: _containers.RepeatedCompositeFieldContainer[Moments]
    grad_norm: float
    run_staleness: int
    def __init__(self, worker_id: _Optional[int] = ..., base_version: _Optional[int] = ..., gradients: _Optional[_Union[Tensor, _Mapping]] = ..., env_steps: _Optional[int] = ..., episode_returns: _Optional[_Iterable[float]] = ..., episode_lengths: _Optional[_Iterable[int]] = ..., stats: _Optional[_Mapping[str, float]] = ..., target_version: _Optional[int] = ..., incarnation: _Optional[str] = ..., moments: _Optional[_Iterable[_Union[Moments, _Mapping]]] = ..., grad_norm: _Optional[float] = ..., run_staleness: _Optional[int] = ...) -> None: ...

class Moments(_message.Message):
    __slots__ = ("name", "count", "mean", "m2")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    M2_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: float
    mean: _containers.RepeatedScalarFieldContainer[float]
    m2: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., count: _Optional[float] = ..., mean: _Optional[_Iterable[float]] = ..., m2: _Optional[_Iterable[float]] = ...) -> None: ...

class PushReply(_message.Message):
    __slots__ = ("applied", "dropped_reason", "version", "params", "staleness", "stop", "global_step", "target_version", "target_params", "learning_rate", "padding")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    STALENESS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_STEP_FIELD_NUMBER: _ClassVar[int]
    TARGET_VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_PARAMS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    PADDING_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    dropped_reason: str
    version: int
    params: Tensor
    staleness: int
    stop: bool
    global_step: int
    target_version: int
    target_params: Tensor
    learning_rate: float
    padding: bytes
    def __init__(self, applied: _Optional[bool] = ..., dropped_reason: _Optional[str] = ..., version: _Optional[int] = ..., params: _Optional[_Union[Tensor, _Mapping]] = ..., staleness: _Optional[int] = ..., stop: _Optional[bool] = ..., global_step: _Optional[int] = ..., target_version: _Optional[int] = ..., target_params: _Optional[_Union[Tensor, _Mapping]] = ..., learning_rate: _Optional[float] = ..., padding: _Optional[bytes] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("worker_id", "reason", "incarnation")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    reason: str
    incarnation: str
    def __init__(self, worker_id: _Optional[int] = ..., reason: _Optional[str] = ..., incarnation: _Optional[str] = ...) -> None: ...

class LeaveReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("status_json",)
    STATUS_JSON_FIELD_NUMBER: _ClassVar[int]
    status_json: str
    def __init__(self, status_json: _Optional[str] = ...) -> None: ...

class ReportEvaluationRequest(_message.Message):
    __slots__ = ("worker_id", "incarnation", "version", "returns", "lengths")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    worker_id: int
    incarnation: str
    version: int
    returns: _containers.RepeatedScalarFieldContainer[float]
    lengths: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, worker_id: _Optional[int] = ..., incarnation: _Optional[str] = ..., version: _Optional[int] = ..., returns: _Optional[_Iterable[float]] = ..., lengths: _Optional[_Iterable[int]] = ...) -> None: ...

class ReportEvaluationReply(_message.Message):
    __slots__ = ("stop",)
    STOP_FIELD_NUMBER: _ClassVar[int]
    stop: bool
    def __init__(self, stop: _Optional[bool] = ...) -> None: ...
