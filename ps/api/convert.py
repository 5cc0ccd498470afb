"""Conversions between the wire messages and plain Python values, shared by server and client."""
from __future__ import annotations

from ps.api.layout import Layout
from ps.api.v1 import parameter_server_pb2 as pb


def layout_to_proto(layout: Layout) -> pb.Layout:
    return pb.Layout(tensors=[pb.TensorSpec(name=e.name, shape=list(e.shape)) for e in layout.entries],
                     hash=layout.hash)


def layout_from_proto(msg: pb.Layout) -> Layout:
    return Layout.from_pairs((t.name, tuple(t.shape)) for t in msg.tensors)


def flat_tensor(data: bytes, dtype: str = "float32") -> pb.Tensor:
    itemsize = 2 if dtype == "float16" else 4
    return pb.Tensor(data=data, shape=[len(data) // itemsize], dtype=dtype)
