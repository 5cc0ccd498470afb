"""A push's reply, made before the push is decided, so that the update kernel writes the parameters
straight into it (the core's `out=`) and no second pass copies theta out.

Its bytes are a valid PushReply (protobuf reads fields in any order):

    [params: Tensor envelope | nbytes of parameters | shape, dtype] [the other fields] [padding]

The parameters' region is the `params` array handed to the core; finish() writes the other fields
after the outcome is known, and a `padding` field fills the reply to the size fixed at the start.
gRPC sends only `bytes`, so the reply is a bytes object written in place (ps/service/_bytesbuf.c);
without that extension it is a bytearray, copied once more at the end.
"""
from __future__ import annotations

import numpy as np

from ps.api.convert import flat_tensor
from ps.api.framing import LEN, encode_varint, tensor_envelope
from ps.api.source import PushOutcome
from ps.api.v1 import parameter_server_pb2 as pb

try:
    from ps.service._bytesbuf import BytesBuf
except ImportError:  # setup.py's extension is optional: no compiler, one more copy per reply
    BytesBuf = None

PARAMS = pb.PushReply.DESCRIPTOR.fields_by_name["params"].number
PADDING_KEY = encode_varint(pb.PushReply.DESCRIPTOR.fields_by_name["padding"].number << 3 | LEN)
FIELDS_BYTES = 192  # room for the other fields (at most ~80 bytes with a 64-character dropped_reason) and padding


class PushReplyBuffer:
    """One reply of a theta of nbytes. Use once: params (the core's out=), then finish(outcome)."""

    def __init__(self, nbytes: int) -> None:
        head, tensor_tail = tensor_envelope(PARAMS, nbytes, "float32")
        self._fields_at = len(head) + nbytes + len(tensor_tail)
        self._buf = BytesBuf(self._fields_at + FIELDS_BYTES) if BytesBuf is not None else \
            bytearray(self._fields_at + FIELDS_BYTES)
        with memoryview(self._buf) as view:
            view[:len(head)] = head
            view[len(head) + nbytes:self._fields_at] = tensor_tail
        self.params: np.ndarray | None = np.frombuffer(self._buf, np.float32, nbytes // 4, len(head))

    def finish(self, outcome: PushOutcome) -> bytes:
        """The reply's bytes, with outcome's fields after the parameters the core wrote."""
        self.params = None  # the last view of the buffer: take() hands it out only once none is left
        fields = pb.PushReply(
            applied=outcome.applied, dropped_reason=outcome.dropped_reason[:64], version=outcome.version,
            staleness=outcome.staleness, stop=outcome.stop, global_step=outcome.global_step,
            learning_rate=outcome.learning_rate, target_version=outcome.target_version,
            target_params=flat_tensor(outcome.target_params) if outcome.target_params else None,
        ).SerializeToString()
        room = FIELDS_BYTES - len(fields)
        if room < 2:  # theta- rides along (value-based methods, after a copy): join, one more copy
            with memoryview(self._buf) as view:
                return b"".join((view[:self._fields_at], fields))
        with memoryview(self._buf) as view:
            view[self._fields_at:self._fields_at + len(fields)] = fields
            view[self._fields_at + len(fields):] = _padding(room)
        if BytesBuf is None:
            return bytes(self._buf)
        try:
            return self._buf.take()
        except BufferError:  # a view outlived the push (an exception's traceback can hold one): copy
            return bytes(self._buf)


def _padding(room: int) -> bytes:
    """A `padding` field of exactly `room` (>= 2) bytes: key, length, zeros."""
    length = room - len(PADDING_KEY) - 1
    header = PADDING_KEY + encode_varint(length)
    if len(header) + length != room:  # a length of 128+ takes a 2-byte varint
        length -= 1
        header = PADDING_KEY + encode_varint(length)
    return header + bytes(length)
