"""Conversions between the wire messages and plain Python values, shared by server and client."""
from __future__ import annotations

import numpy as np

from ps.api.layout import Layout
from ps.api.moments import Moments
from ps.api.v1 import parameter_server_pb2 as pb


def layout_to_proto(layout: Layout) -> pb.Layout:
    return pb.Layout(tensors=[pb.TensorSpec(name=e.name, shape=list(e.shape), buffer=e.buffer)
                              for e in layout.entries], hash=layout.hash)


def layout_from_proto(msg: pb.Layout) -> Layout:
    return Layout.from_pairs((t.name, tuple(t.shape), t.buffer) for t in msg.tensors)


def moments_to_proto(moments) -> list[pb.Moments]:
    return [pb.Moments(name=m.name, count=m.count, mean=m.mean.tolist(), m2=m.m2.tolist()) for m in moments]


def moments_from_proto(msgs) -> tuple[Moments, ...]:
    return tuple(Moments(m.name, m.count, np.array(m.mean, dtype=np.float64), np.array(m.m2, dtype=np.float64))
                 for m in msgs)


def flat_tensor(data: bytes, dtype: str = "float32") -> pb.Tensor:
    itemsize = 2 if dtype == "float16" else 4
    return pb.Tensor(data=data, shape=[len(data) // itemsize], dtype=dtype)
