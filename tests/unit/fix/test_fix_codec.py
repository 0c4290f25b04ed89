"""Codec: exact framing against a hand-computed message, incremental decoding, bad input."""

from __future__ import annotations

import pytest
import simplefix
from hypothesis import given
from hypothesis import strategies as st

from sampan.fix.codec import (
    MESSAGE_BYTES_MAX,
    DecodeError,
    DecodeErrorKind,
    FieldError,
    FixDecoder,
    FixMessage,
    decode_one,
    encode,
    format_utc_timestamp,
    parse_utc_timestamp,
)

HEARTBEAT = FixMessage.of(
    "0", (49, "SAMPAN"), (56, "HKEX"), (34, "1"), (52, "20260102-03:04:05.006")
)
# BodyLength counted by hand: "35=0|"=5, "49=SAMPAN|"=10, "56=HKEX|"=8, "34=1|"=5,
# "52=20260102-03:04:05.006|"=25, total 53. CheckSum: byte sum of everything before "10="
# modulo 256 is 1 (simplefix, an independent implementation, agrees below).
HEARTBEAT_WIRE = (
    b"8=FIXT.1.1\x019=53\x0135=0\x0149=SAMPAN\x0156=HKEX\x0134=1\x01"
    b"52=20260102-03:04:05.006\x0110=001\x01"
)


def test_encode_matches_hand_computed_bytes() -> None:
    assert encode(HEARTBEAT) == HEARTBEAT_WIRE


def test_encode_agrees_with_simplefix() -> None:
    ref = simplefix.FixMessage()
    ref.append_pair(8, "FIXT.1.1")
    for tag, value in HEARTBEAT.fields:
        ref.append_pair(tag, value)
    assert ref.encode() == HEARTBEAT_WIRE


def test_decode_hand_computed_message() -> None:
    msg = decode_one(HEARTBEAT_WIRE)
    assert msg == HEARTBEAT
    assert msg.msg_type == "0" and msg.msg_seq_num == 1 and msg.get(49) == "SAMPAN"


def test_decoder_accepts_one_byte_at_a_time() -> None:
    decoder = FixDecoder()
    out: list[FixMessage | DecodeError] = []
    stream = HEARTBEAT_WIRE * 3
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == [HEARTBEAT] * 3
    assert decoder.buffered_bytes == 0


def test_garbage_before_message_is_reported_and_skipped() -> None:
    out = FixDecoder().feed(b"hello world" + HEARTBEAT_WIRE)
    assert isinstance(out[0], DecodeError) and out[0].kind is DecodeErrorKind.GARBAGE
    assert out[1:] == [HEARTBEAT]


def test_bad_checksum_is_typed_and_next_message_survives() -> None:
    bad = HEARTBEAT_WIRE[:-4] + b"002\x01"
    out = FixDecoder().feed(bad + HEARTBEAT_WIRE)
    assert isinstance(out[0], DecodeError) and out[0].kind is DecodeErrorKind.BAD_CHECKSUM
    assert out[1:] == [HEARTBEAT]


def test_wrong_body_length_resyncs_on_next_prefix() -> None:
    bad = HEARTBEAT_WIRE.replace(b"9=53", b"9=50")
    out = FixDecoder().feed(bad + HEARTBEAT_WIRE)
    kinds = [i.kind for i in out if isinstance(i, DecodeError)]
    assert DecodeErrorKind.BAD_BODY_LENGTH in kinds
    assert out[-1] == HEARTBEAT


def test_oversized_body_length_refused_without_buffering() -> None:
    decoder = FixDecoder()
    out = decoder.feed(b"8=FIXT.1.1\x019=%d\x0135=D\x01" % (MESSAGE_BYTES_MAX + 1))
    assert isinstance(out[0], DecodeError)
    assert out[0].kind is DecodeErrorKind.MESSAGE_TOO_LARGE
    assert decoder.buffered_bytes < 64


def test_truncated_stream_reported_on_close() -> None:
    decoder = FixDecoder()
    assert decoder.feed(HEARTBEAT_WIRE[:30]) == []
    (err,) = decoder.close()
    assert err.kind is DecodeErrorKind.TRUNCATED
    assert decoder.close() == []


def test_malformed_field_keeps_seq_num_for_reject() -> None:
    body = b"35=D\x0134=7\x01oops\x01"
    head = b"8=FIXT.1.1\x019=%d\x01" % len(body)
    wire = head + body + b"10=%03d\x01" % (sum(head + body) % 256)
    (err,) = FixDecoder().feed(wire)
    assert isinstance(err, DecodeError)
    assert err.kind is DecodeErrorKind.MALFORMED and err.msg_seq_num == 7


def test_missing_msg_type_is_malformed() -> None:
    body = b"34=7\x0135=D\x01"
    head = b"8=FIXT.1.1\x019=%d\x01" % len(body)
    wire = head + body + b"10=%03d\x01" % (sum(head + body) % 256)
    (err,) = FixDecoder().feed(wire)
    assert isinstance(err, DecodeError) and err.kind is DecodeErrorKind.MALFORMED


@given(st.binary(max_size=400), st.integers(1, 64))
def test_arbitrary_bytes_never_raise(data: bytes, chunk: int) -> None:
    decoder = FixDecoder(message_bytes_max=256)
    for i in range(0, len(data), chunk):
        for item in decoder.feed(data[i : i + chunk]):
            assert isinstance(item, (FixMessage, DecodeError))
        assert decoder.buffered_bytes <= 256 + 64 + chunk
    decoder.close()


_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20
)
_fields = st.lists(st.tuples(st.integers(11, 9999), _values), max_size=20)


@given(st.text(alphabet="0123456789ADGFj", min_size=1, max_size=2), _fields, st.binary(max_size=30))
def test_roundtrip_after_garbage(msg_type: str, fields: list[tuple[int, str]], junk: bytes) -> None:
    msg = FixMessage.of(msg_type, *fields)
    out = FixDecoder().feed(junk + encode(msg))
    assert out[-1] == msg


def test_field_accessors_type_errors() -> None:
    msg = FixMessage.of("D", (38, "abc"))
    with pytest.raises(FieldError) as exc:
        msg.require_int(38)
    assert exc.value.tag == 38
    with pytest.raises(FieldError):
        msg.require(11)
    assert msg.msg_seq_num is None


def test_utc_timestamp_roundtrip_and_precision() -> None:
    ts_ns = 1_767_323_045_006_999_999  # 2026-01-02T03:04:05.006999999Z
    text = format_utc_timestamp(ts_ns)
    assert text == "20260102-03:04:05.006"
    assert parse_utc_timestamp(52, text) == 1_767_323_045_006_000_000
    assert parse_utc_timestamp(60, "20260102-03:04:05.006999999") == ts_ns
    with pytest.raises(FieldError):
        parse_utc_timestamp(60, "20261302-03:04:05")
