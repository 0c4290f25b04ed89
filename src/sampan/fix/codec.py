"""FIX tag=value framing for FIXT.1.1: encode messages, decode a byte stream incrementally.

Guarantees:
- `encode` writes BeginString (8) = FIXT.1.1, BodyLength (9) and CheckSum (10) itself; the
  caller supplies every other field in wire order, starting with MsgType (35). Encoding is
  deterministic, so the bytes a session stores for resend are the bytes it sent.
- `FixDecoder` accepts bytes in chunks of any size and yields each complete message once, in
  order. Its buffer never holds more than one partial message plus one read: a frame whose
  BodyLength exceeds `message_bytes_max` is refused without waiting for its bytes.
- Bad input never raises out of the decoder: garbage, bad lengths, bad checksums and
  malformed fields come out as typed `DecodeError` items, and the decoder resynchronises on
  the next `8=FIXT.1.1` prefix.

Limits: values are ASCII text (decoded as Latin-1, so any byte survives); data fields that
embed SOH (RawData and friends) are not supported. Repeating groups are kept as a flat
ordered field list; interpreting them is the caller's business.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SOH = b"\x01"
BEGIN_STRING = "FIXT.1.1"
_PREFIX = b"8=" + BEGIN_STRING.encode("ascii") + SOH

# A body this size holds any order-entry message with room to spare; a larger BodyLength is
# a corrupt or hostile peer, and waiting for its bytes would let it grow our buffer.
MESSAGE_BYTES_MAX = 16 * 1024
# "9=" plus at most this many digits plus SOH; anything longer cannot be a valid length.
_BODY_LENGTH_DIGITS_MAX = 6
_TRAILER_LEN = len(b"10=000\x01")
FIELDS_PER_MESSAGE_MAX = 512

# Session-layer tags the codec and session both need.
TAG_BEGIN_STRING = 8
TAG_BODY_LENGTH = 9
TAG_CHECKSUM = 10
TAG_MSG_TYPE = 35
TAG_MSG_SEQ_NUM = 34
TAG_SENDER_COMP_ID = 49
TAG_TARGET_COMP_ID = 56
TAG_SENDING_TIME = 52
TAG_POSS_DUP_FLAG = 43
TAG_ORIG_SENDING_TIME = 122
TAG_TEXT = 58

_FRAMING_TAGS = frozenset({TAG_BEGIN_STRING, TAG_BODY_LENGTH, TAG_CHECKSUM})


class DecodeErrorKind(enum.StrEnum):
    """Why bytes did not become a message; GARBLED kinds are ignored by a FIX session."""

    GARBAGE = "garbage"  # bytes before a BeginString prefix
    BAD_BODY_LENGTH = "bad_body_length"  # garbled: framing does not line up
    MESSAGE_TOO_LARGE = "message_too_large"
    BAD_CHECKSUM = "bad_checksum"  # garbled: the frame is intact but corrupted
    MALFORMED = "malformed"  # framed and checksummed, but fields are not tag=value
    TRUNCATED = "truncated"  # the stream ended inside a message


@dataclass(frozen=True, slots=True)
class DecodeError:
    """A typed decoding failure; `msg_seq_num` is set when a malformed frame still named one."""

    kind: DecodeErrorKind
    detail: str
    msg_seq_num: int | None = None


class FieldError(ValueError):
    """A required field is missing or its value does not parse; `tag` names the field."""

    def __init__(self, tag: int, reason: str) -> None:
        super().__init__(f"tag {tag}: {reason}")
        self.tag = tag
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FixMessage:
    """One FIX message without its framing fields (8, 9, 10), in wire order from 35 on."""

    fields: tuple[tuple[int, str], ...]

    def __post_init__(self) -> None:
        assert self.fields and self.fields[0][0] == TAG_MSG_TYPE, "MsgType (35) comes first"
        assert not any(t in _FRAMING_TAGS for t, _ in self.fields), "framing tags are ours"

    @classmethod
    def of(cls, msg_type: str, *fields: tuple[int, str]) -> FixMessage:
        return cls(((TAG_MSG_TYPE, msg_type), *fields))

    @property
    def msg_type(self) -> str:
        return self.fields[0][1]

    def get(self, tag: int) -> str | None:
        """The first value of `tag`, or None when absent."""
        for t, v in self.fields:
            if t == tag:
                return v
        return None

    def require(self, tag: int) -> str:
        value = self.get(tag)
        if value is None or value == "":
            raise FieldError(tag, "required field missing")
        return value

    def get_int(self, tag: int) -> int | None:
        value = self.get(tag)
        return None if value is None else parse_int(tag, value)

    def require_int(self, tag: int) -> int:
        return parse_int(tag, self.require(tag))

    @property
    def msg_seq_num(self) -> int | None:
        """MsgSeqNum, or None when absent or not a positive integer."""
        try:
            n = self.get_int(TAG_MSG_SEQ_NUM)
        except FieldError:
            return None
        return n if n is not None and n > 0 else None

    @property
    def poss_dup(self) -> bool:
        return self.get(TAG_POSS_DUP_FLAG) == "Y"

    def without(self, *tags: int) -> FixMessage:
        return FixMessage(tuple((t, v) for t, v in self.fields if t not in tags))


_INT_RE = re.compile(r"-?[0-9]{1,18}")


def parse_int(tag: int, value: str) -> int:
    if not _INT_RE.fullmatch(value):
        raise FieldError(tag, f"not an integer: {value[:32]!r}")
    return int(value)


def encode(msg: FixMessage) -> bytes:
    """Frame `msg` as FIXT.1.1 bytes with a correct BodyLength and CheckSum."""
    body = b"".join(b"%d=%s\x01" % (t, v.encode("latin-1")) for t, v in msg.fields)
    head = _PREFIX + b"9=%d\x01" % len(body)
    checksum = (sum(head) + sum(body)) % 256
    return head + body + b"10=%03d\x01" % checksum


def decode_one(data: bytes) -> FixMessage:
    """Decode exactly one complete message; raises `ValueError` on anything else (for tests)."""
    decoder = FixDecoder()
    items = decoder.feed(data)
    if len(items) != 1 or not isinstance(items[0], FixMessage) or decoder.buffered_bytes:
        raise ValueError(f"not exactly one message: {items!r}")
    return items[0]


class FixDecoder:
    """Incremental FIXT.1.1 stream decoder with a bounded buffer."""

    def __init__(self, message_bytes_max: int = MESSAGE_BYTES_MAX) -> None:
        assert message_bytes_max > 0
        self._message_bytes_max = message_bytes_max
        self._buf = bytearray()

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[FixMessage | DecodeError]:
        """Append `data` and return every message (or error) now complete, in stream order."""
        self._buf += data
        return list(self._drain())

    def close(self) -> list[DecodeError]:
        """The stream ended: report leftover bytes as TRUNCATED and reset."""
        leftover = len(self._buf)
        self._buf.clear()
        if leftover == 0:
            return []
        return [DecodeError(DecodeErrorKind.TRUNCATED, f"{leftover} bytes after last message")]

    def _drain(self) -> Iterator[FixMessage | DecodeError]:
        while True:
            start = self._buf.find(_PREFIX)
            if start < 0:
                # Keep a tail that might be the start of a split prefix; the rest is garbage.
                keep = len(_PREFIX) - 1
                if len(self._buf) > keep:
                    dropped = len(self._buf) - keep
                    del self._buf[:dropped]
                    yield DecodeError(DecodeErrorKind.GARBAGE, f"{dropped} bytes skipped")
                return
            if start > 0:
                del self._buf[:start]
                yield DecodeError(DecodeErrorKind.GARBAGE, f"{start} bytes skipped")
            item = self._frame()
            if item is None:
                return
            yield item

    def _skip_prefix(self) -> None:
        # Drop just the prefix so the search can find a real frame that started inside the
        # bytes we wrongly took for this one.
        del self._buf[: len(_PREFIX)]

    def _frame(self) -> FixMessage | DecodeError | None:
        """Decode the frame at the start of the buffer, or None when more bytes are needed."""
        buf = self._buf
        pos = len(_PREFIX)
        length_end = buf.find(SOH, pos, pos + 3 + _BODY_LENGTH_DIGITS_MAX)
        if length_end < 0:
            if len(buf) < pos + 3 + _BODY_LENGTH_DIGITS_MAX:
                return None
            self._skip_prefix()
            return DecodeError(DecodeErrorKind.BAD_BODY_LENGTH, "BodyLength field unterminated")
        length_field = bytes(buf[pos:length_end])
        if not (length_field.startswith(b"9=") and length_field[2:].isdigit()):
            self._skip_prefix()
            return DecodeError(DecodeErrorKind.BAD_BODY_LENGTH, "BodyLength must follow 8=")
        body_len = int(length_field[2:])
        if body_len > self._message_bytes_max:
            self._skip_prefix()
            return DecodeError(DecodeErrorKind.MESSAGE_TOO_LARGE, f"BodyLength {body_len}")
        body_start = length_end + 1
        body_end = body_start + body_len
        if len(buf) < body_end + _TRAILER_LEN:
            return None
        trailer = bytes(buf[body_end : body_end + _TRAILER_LEN])
        if not (
            trailer.startswith(b"10=") and trailer[3:6].isdigit() and trailer.endswith(SOH)
        ) or (body_len > 0 and buf[body_end - 1] != SOH[0]):
            self._skip_prefix()
            return DecodeError(DecodeErrorKind.BAD_BODY_LENGTH, "CheckSum not at BodyLength")
        expected = sum(buf[:body_end]) % 256
        body = bytes(buf[body_start:body_end])
        del buf[: body_end + _TRAILER_LEN]
        if int(trailer[3:6]) != expected:
            return DecodeError(
                DecodeErrorKind.BAD_CHECKSUM, f"got {trailer[3:6].decode()}, want {expected:03d}"
            )
        return _parse_body(body)


def _parse_body(body: bytes) -> FixMessage | DecodeError:
    fields: list[tuple[int, str]] = []
    problem: str | None = None
    for raw in body[:-1].split(SOH) if body else []:
        tag_bytes, eq, value = raw.partition(b"=")
        if not eq or not tag_bytes.isdigit() or tag_bytes.startswith(b"0"):
            problem = f"field {raw[:32]!r} is not tag=value"
            continue
        tag = int(tag_bytes)
        if tag in _FRAMING_TAGS:
            problem = f"framing tag {tag} inside the body"
            continue
        fields.append((tag, value.decode("latin-1")))
    if len(fields) > FIELDS_PER_MESSAGE_MAX:
        problem = f"{len(fields)} fields, more than {FIELDS_PER_MESSAGE_MAX}"
    if problem is None and (not fields or fields[0][0] != TAG_MSG_TYPE or not fields[0][1]):
        problem = "MsgType (35) must be the first body field"
    if problem is None:
        return FixMessage(tuple(fields))
    seq = next((v for t, v in fields if t == TAG_MSG_SEQ_NUM), None)
    seq_num = int(seq) if seq is not None and seq.isdigit() and int(seq) > 0 else None
    return DecodeError(DecodeErrorKind.MALFORMED, problem, seq_num)


# UTCTimestamp with milliseconds, the precision OCG-C uses on the wire.
_TS_RE = re.compile(r"(\d{8})-(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_utc_timestamp(ts_ns: int) -> str:
    """`YYYYMMDD-HH:MM:SS.sss` in UTC; sub-millisecond digits are truncated, not rounded."""
    seconds, rem_ns = divmod(ts_ns, _NS_PER_S)
    dt = datetime.fromtimestamp(seconds, UTC)
    return f"{dt:%Y%m%d-%H:%M:%S}.{rem_ns // _NS_PER_MS:03d}"


def parse_utc_timestamp(tag: int, value: str) -> int:
    """A UTCTimestamp of any precision up to nanoseconds, as ns since the epoch."""
    m = _TS_RE.fullmatch(value)
    if m is None:
        raise FieldError(tag, f"not a UTCTimestamp: {value[:32]!r}")
    date_s, hh, mm, ss, frac = m.groups()
    try:
        dt = datetime.strptime(f"{date_s}{hh}{mm}{ss}", "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:  # e.g. month 13; strptime already rejects it precisely
        raise FieldError(tag, f"not a UTCTimestamp: {value[:32]!r}") from exc
    frac_ns = int((frac or "").ljust(9, "0"))
    return (dt - _EPOCH) // timedelta(seconds=1) * _NS_PER_S + frac_ns
