"""ps/api/framing.py reads and writes exactly what protobuf does, whatever the field order."""
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from ps.api.framing import MAX_FIELDS_WALKED, WireError, join_tensor, split_tensor
from ps.api.v1 import parameter_server_pb2 as pb

finite = st.floats(allow_nan=False, width=64)
small = st.fixed_dictionaries({
    "worker_id": st.integers(-2**63, 2**63 - 1), "base_version": st.integers(0, 2**40),
    "env_steps": st.integers(0, 10**6), "episode_returns": st.lists(finite, max_size=4),
    "stats": st.dictionaries(st.text(max_size=8), finite, max_size=4), "incarnation": st.text(max_size=12)})
payloads = st.binary(max_size=4096).map(lambda b: b[: len(b) // 4 * 4])


def parts(fields: dict, data: bytes, dtype: str) -> list[bytes]:
    """The message as one serialized piece per field: concatenated in any order, protobuf reads
    them as the one message (its merge rule), so shuffling them gives every legal field order."""
    pieces = [pb.PushRequest(**{k: v}).SerializeToString() for k, v in fields.items()]
    pieces.append(pb.PushRequest(gradients=pb.Tensor(data=data, shape=[len(data) // 4], dtype=dtype))
                  .SerializeToString())
    return [p for p in pieces if p]


@settings(max_examples=300, deadline=None)
@given(small, payloads, st.sampled_from(["float32", "float16", ""]), st.randoms(use_true_random=False))
def test_split_reads_what_protobuf_reads_in_any_field_order(fields, data, dtype, rnd):
    pieces = parts(fields, data, dtype)
    rnd.shuffle(pieces)
    raw = b"".join(pieces)
    framed = split_tensor(raw, pb.PushRequest, "gradients")
    expected = pb.PushRequest.FromString(raw)
    assert bytes(framed.data) == expected.gradients.data
    assert list(framed.tensor.shape) == list(expected.gradients.shape) and framed.tensor.dtype == expected.gradients.dtype
    expected.ClearField("gradients")
    assert framed.message == expected


@settings(max_examples=200, deadline=None)
@given(small, st.integers(0, 1000), st.sampled_from(["float32", "float16"]))
def test_join_writes_what_protobuf_reads(fields, n, dtype):
    array = np.arange(n, dtype=np.float32 if dtype == "float32" else np.float16)
    raw = join_tensor(pb.PushRequest(**fields), "gradients", array, dtype)
    parsed = pb.PushRequest.FromString(raw)
    assert parsed.gradients.data == array.tobytes()
    assert list(parsed.gradients.shape) == [n] and parsed.gradients.dtype == dtype
    assert parsed.worker_id == fields["worker_id"] and dict(parsed.stats) == fields["stats"]
    assert split_tensor(raw, pb.PushRequest, "gradients").data == array.tobytes()  # and back


def test_the_tensor_data_is_a_view_into_the_received_bytes_not_a_copy():
    raw = join_tensor(pb.PushReply(version=3), "params", np.ones(1000, np.float32))
    framed = split_tensor(raw, pb.PushReply, "params")
    assert framed.data.obj is raw and framed.message.version == 3
    assert np.frombuffer(framed.data, np.float32).sum() == 1000


def test_a_tensor_field_sent_twice_is_merged_as_protobuf_merges_it():
    first = pb.PushRequest(gradients=pb.Tensor(data=b"\x01" * 8, shape=[2])).SerializeToString()
    second = pb.PushRequest(gradients=pb.Tensor(data=b"\x02" * 4, shape=[1]), worker_id=7).SerializeToString()
    framed = split_tensor(first + second, pb.PushRequest, "gradients")
    assert bytes(framed.data) == b"\x02" * 4 and list(framed.tensor.shape) == [2, 1]
    assert framed.message.worker_id == 7


def test_a_message_of_very_many_fields_goes_to_protobufs_parser_with_the_same_result():
    raw = b"".join(pb.PushRequest(episode_returns=[float(i)]).SerializeToString()
                   for i in range(MAX_FIELDS_WALKED + 10))
    raw += pb.PushRequest(gradients=pb.Tensor(data=b"abcd")).SerializeToString()
    framed = split_tensor(raw, pb.PushRequest, "gradients")
    assert bytes(framed.data) == b"abcd" and len(framed.message.episode_returns) == MAX_FIELDS_WALKED + 10


def test_an_unknown_group_field_is_accepted_as_protobuf_accepts_it():
    # field 100 as a group (start tag, one varint inside, end tag): protobuf keeps it as unknown
    raw = b"\xa3\x06" + b"\x08\x01" + b"\xa4\x06" + join_tensor(pb.PushRequest(worker_id=2), "gradients", b"wxyz")
    assert pb.PushRequest.FromString(raw).worker_id == 2
    framed = split_tensor(raw, pb.PushRequest, "gradients")
    assert bytes(framed.data) == b"wxyz" and framed.message.worker_id == 2


def test_no_tensor_at_all_gives_an_empty_view():
    framed = split_tensor(pb.PushRequest(worker_id=4).SerializeToString(), pb.PushRequest, "gradients")
    assert framed.data.nbytes == 0 and framed.message.worker_id == 4


@pytest.mark.parametrize("raw", [b"\x1a\xff\xff\xff\xff\x0f", b"\x1a\x05abc", b"\x0b", b"\x80" * 12, b"\x1a\x02\x0a\x09"])
def test_malformed_bytes_raise_wire_error(raw):
    with pytest.raises(WireError):
        split_tensor(raw, pb.PushRequest, "gradients")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_are_read_as_protobuf_reads_them_or_refused_with_wire_error(raw):
    try:
        expected = pb.PushRequest.FromString(raw)
    except DecodeError:
        expected = None
    try:
        framed = split_tensor(raw, pb.PushRequest, "gradients")
    except WireError:
        assert expected is None
        return
    assert expected is not None and bytes(framed.data) == expected.gradients.data
    expected.ClearField("gradients")
    assert framed.message == expected
