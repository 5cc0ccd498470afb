"""Push messages with their one big tensor moved without copies: still protobuf on the wire.

A push carries ~2.8 MB (Atari size) of gradient in and of parameters out. Through the generated
classes each side copies that payload three times (tobytes, into the message, serialize; parse,
`.data`). Here the big `Tensor` field is spliced in and cut out by hand: encoding joins the small
fields' bytes with the array's buffer (one copy; the server's reply instead has the update kernel
write the parameters between the envelope's bytes: ps/service/reply.py), decoding returns a
memoryview into the received bytes (no copy) and parses only the small fields with protobuf. The bytes are exactly what
protobuf itself writes and reads, so generated stubs in any language still talk to us.

Fields may come in any order (protobuf allows it); a message whose tensor field, or that field's
`data`, occurs more than once (protobuf merges those) is parsed by protobuf itself instead.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

from google.protobuf.message import DecodeError, Message

from ps.api.v1 import parameter_server_pb2 as pb

LEN = 2  # the wire type of bytes and sub-message fields
TENSOR_DATA = pb.Tensor.DESCRIPTOR.fields_by_name["data"].number  # Tensor.data's field number
MAX_FIELDS_WALKED = 4096  # past this many fields a message goes to protobuf's C parser whole


class WireError(ValueError):
    """Bytes that are not a valid protobuf message of the expected type."""


class Framed(NamedTuple):
    message: Message    # every field but the tensor's data
    tensor: pb.Tensor   # the tensor's shape and dtype (its data left empty)
    data: memoryview    # the tensor's bytes: a view into the received buffer, no copy


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def _only(buf: bytes, start: int, end: int, number: int):
    """(field_start, value_start, field_end) of the one LEN field `number` in buf[start:end], or None
    if it is absent, repeated or not LEN.

    One flat loop with one-byte keys and varints read inline: it runs on every push, right after
    gRPC's copy of the message has pushed the interpreter's own data out of cache, where each
    Python operation costs several times what it does in a micro-benchmark."""
    pos, walked, found, count = start, 0, None, 0
    while pos < end:
        walked += 1
        if walked > MAX_FIELDS_WALKED:
            raise _Fallback
        field_start = pos
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        wire_type = key & 7
        if wire_type == 0:
            if pos < end and buf[pos] < 0x80:
                pos += 1
            else:
                _, pos = _varint(buf, pos, end)
        elif wire_type == LEN:
            if pos < end and buf[pos] < 0x80:
                length, value_start = buf[pos], pos + 1
            else:
                length, value_start = _varint(buf, pos, end)
            pos = value_start + length
            if key >> 3 == number:
                found = (field_start, value_start, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:  # groups (deprecated) and invalid types: protobuf knows which to accept
            raise _Fallback
        if pos > end:
            raise WireError("a field runs past the end of the message")
        count += key >> 3 == number
    return found if count == 1 else None


class _Fallback(Exception):
    """A message not worth walking in Python (very many fields, groups): protobuf parses it whole."""


def split_tensor(raw: bytes, message_type: type[Message], field: str) -> Framed:
    """Decode `raw` as message_type with its Tensor field `field` cut out (data as a view). Raises WireError."""
    number = message_type.DESCRIPTOR.fields_by_name[field].number
    try:
        outer = _only(raw, 0, len(raw), number)
        inner = outer and _only(raw, outer[1], outer[2], TENSOR_DATA)
        if not inner:
            return _parsed_whole(raw, message_type, field)
        (o_start, o_value, o_end), (i_start, i_value, i_end) = outer, inner
        message = message_type.FromString(raw[:o_start] + raw[o_end:])
        tensor = pb.Tensor.FromString(raw[o_value:i_start] + raw[i_end:o_end])
        return Framed(message, tensor, memoryview(raw)[i_value:i_end])
    except _Fallback:
        return _parsed_whole(raw, message_type, field)
    except DecodeError as err:
        raise WireError(f"not a valid {message_type.DESCRIPTOR.name}: {err}") from None


def _parsed_whole(raw: bytes, message_type: type[Message], field: str) -> Framed:
    try:
        message = message_type.FromString(raw)
    except DecodeError as err:
        raise WireError(f"not a valid {message_type.DESCRIPTOR.name}: {err}") from None
    whole = getattr(message, field)
    tensor = pb.Tensor(shape=whole.shape, dtype=whole.dtype)
    data = memoryview(whole.data)
    message.ClearField(field)
    return Framed(message, tensor, data)


def tensor_frame(message: Message, field: str, nbytes: int, dtype: str = "float32") -> tuple[bytes, bytes]:
    """(head, tail): message (its `field` unset) serialized with a flat Tensor of nbytes of `dtype`
    as `field` is head + those bytes + tail. The server's update kernels fill the middle in place."""
    envelope, tail = tensor_envelope(message.DESCRIPTOR.fields_by_name[field].number, nbytes, dtype)
    return message.SerializeToString() + envelope, tail


@functools.lru_cache(maxsize=64)
def tensor_envelope(number: int, nbytes: int, dtype: str) -> tuple[bytes, bytes]:
    """The bytes before and after a flat tensor's data in field `number`: the same on every push of a
    run, so made once."""
    itemsize = 2 if dtype == "float16" else 4
    tail = pb.Tensor(shape=[nbytes // itemsize], dtype=dtype).SerializeToString()
    data_head = encode_varint(TENSOR_DATA << 3 | LEN) + encode_varint(nbytes)
    return encode_varint(number << 3 | LEN) + encode_varint(len(data_head) + nbytes + len(tail)) + data_head, tail


def join_tensor(message: Message, field: str, data, dtype: str = "float32") -> bytes:
    """message (its `field` unset) serialized with a flat Tensor of `data` (any buffer) as `field`.

    One copy of data: the join.
    """
    view = memoryview(data).cast("B")
    head, tail = tensor_frame(message, field, view.nbytes, dtype)
    return b"".join((head, view, tail))
