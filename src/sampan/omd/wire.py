"""OMD-C binary messages: frozen dataclasses, their encoders and one decoder registry.

Guarantees:
- Byte layouts follow the OMD-C Binary Interface Specification v1.45 §3 exactly: little-endian
  integers, fillers written as NUL bytes, ASCII strings left-aligned and padded with spaces
  (Logon's Username with NULs, as §3.5.1 says), Chinese names as UTF-16LE padded with NULs.
- ``decode_message(buf, offset)`` never lets ``IndexError``/``struct.error`` escape: a message
  that is truncated or shorter than its layout raises ``MalformedPacket``. A message type
  we do not model decodes to ``UnknownMessage`` so the caller can skip and count it.
- Prices are ``int`` with 3 implied decimals (``*_e3``); times are ``int`` nanoseconds since the
  Unix epoch (``*_ns``). No float anywhere.

Limits:
- The decoder checks structure, not meaning: an out-of-range Side or UpdateAction decodes as
  is, and the book (``book.py``) rejects it.
- A MsgSize larger than the layout is accepted and the tail skipped, because HKEX appends
  fields in new versions of the spec; a smaller one is malformed.
- Decoded strings have trailing spaces and NULs stripped, so a string that ends in a space
  does not round-trip (the wire cannot tell padding from content).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview

MSG_HEADER = struct.Struct("<HH")  # MsgSize, MsgType (§3.2)


class MalformedPacket(ValueError):
    """A packet or message whose bytes do not fit the OMD-C layout (truncated, bad sizes)."""


# Update actions of AggregateOrderBookUpdate (53), §3.9.6.
ACTION_NEW = 0
ACTION_CHANGE = 1
ACTION_DELETE = 2
ACTION_CLEAR = 74
SIDE_BID = 0
SIDE_OFFER = 1


def _pad_ascii(value: str, size: int, pad: bytes) -> bytes:
    raw = value.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{value!r} is longer than its {size}-byte field")
    return raw.ljust(size, pad)


def _pad_utf16(value: str, size: int) -> bytes:
    raw = value.encode("utf-16-le")
    if len(raw) > size:
        raise ValueError(f"{value!r} is longer than its {size}-byte field")
    return raw.ljust(size, b"\x00")


def _strip_ascii(raw: bytes) -> str:
    # latin-1 never fails: one stray byte in FreeText must not cost us the whole packet.
    return raw.rstrip(b" \x00").decode("latin-1")


def _strip_utf16(raw: bytes) -> str:
    text = raw.decode("utf-16-le", errors="replace")
    return text.rstrip("\x00 ")


# Field kinds for the table-driven codec of the fixed-size messages: "i" an integer,
# "a" an ASCII string padded with spaces, "z" ASCII padded with NULs, "u" UTF-16LE.
_Kinds: TypeAlias = str


@dataclass(frozen=True, slots=True)
class _Fixed:
    """Base of the fixed-layout messages: a struct and one kind letter per field."""

    MSG_TYPE: ClassVar[int] = -1
    _STRUCT: ClassVar[struct.Struct]
    _KINDS: ClassVar[_Kinds] = ""
    _NAMES: ClassVar[tuple[str, ...]] = ()

    def encode(self) -> bytes:
        values = _field_values(self, self._NAMES, self._KINDS, _STRING_SIZES[type(self)])
        try:
            return self._STRUCT.pack(self._STRUCT.size, self.MSG_TYPE, *values)
        except struct.error as exc:  # an integer out of its field's range: a caller bug
            raise ValueError(f"{type(self).__name__}: {exc}") from exc


def _field_values(
    obj: object, names: tuple[str, ...], kinds: str, sizes: tuple[int, ...]
) -> list[Any]:
    """The values to pack for ``obj``'s fields, strings padded to their field sizes."""
    values: list[Any] = []
    for name, kind, size in zip(names, kinds, sizes, strict=True):
        value = getattr(obj, name)
        if kind == "i":
            values.append(value)
        elif kind == "u":
            values.append(_pad_utf16(value, size))
        else:
            values.append(_pad_ascii(value, size, b" " if kind == "a" else b"\x00"))
    return values


def _typed_values(values: tuple[Any, ...], kinds: str) -> list[Any]:
    """Unpacked raw values turned into field values: strings stripped of their padding."""
    out: list[Any] = []
    for kind, value in zip(kinds, values, strict=True):
        if kind == "i":
            out.append(value)
        elif kind == "u":
            out.append(_strip_utf16(value))
        else:
            out.append(_strip_ascii(value))
    return out


_STRING_SIZES: dict[type[_Fixed], tuple[int, ...]] = {}
_Decoder: TypeAlias = Callable[[Buffer, int, int], Any]
_DECODERS: dict[int, _Decoder] = {}


def _string_sizes(fmt: str) -> tuple[int, ...]:
    """One entry per unpacked value after MsgSize/MsgType: the byte size of 's' fields, else 0."""
    sizes: list[int] = []
    count = ""
    for ch in fmt.lstrip("<"):
        if ch.isdigit():
            count += ch
            continue
        if ch == "s":
            sizes.append(int(count or "1"))
        elif ch != "x":
            sizes.extend([0] * int(count or "1"))
        count = ""
    return tuple(sizes[2:])


def _register_fixed(cls: type[_Fixed]) -> type[_Fixed]:
    names = tuple(f.name for f in fields(cls))
    assert len(names) == len(cls._KINDS), cls
    cls._NAMES = names
    _STRING_SIZES[cls] = _string_sizes(cls._STRUCT.format)
    assert len(_STRING_SIZES[cls]) == len(names), cls
    unpack_from = cls._STRUCT.unpack_from
    size = cls._STRUCT.size
    kinds = cls._KINDS
    plain = all(k == "i" for k in kinds)

    def decode(buf: Buffer, offset: int, msg_size: int) -> _Fixed:
        if msg_size < size:
            raise MalformedPacket(f"{cls.__name__} MsgSize {msg_size} < layout size {size}")
        values = unpack_from(buf, offset)[2:]
        if plain:
            return cls(*values)
        return cls(*_typed_values(values, kinds))

    _DECODERS[cls.MSG_TYPE] = decode
    return cls


@_register_fixed
@dataclass(frozen=True, slots=True)
class TradingSessionStatus(_Fixed):
    """§3.8.1 (20): a market segment's trading session changed."""

    MSG_TYPE: ClassVar[int] = 20
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HH4sxBB1s4xQQ")
    _KINDS: ClassVar[str] = "aiiaii"

    market_code: str
    trading_session_sub_id: int
    trading_ses_status: int
    trading_ses_control_flag: str
    start_date_time_ns: int
    end_date_time_ns: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class MarketDefinition(_Fixed):
    """§3.7.1 (10): a market segment, at the start of the business day and in every refresh."""

    MSG_TYPE: ClassVar[int] = 10
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HH4s25s3sI")
    _KINDS: ClassVar[str] = "aaai"

    market_code: str
    market_name: str
    currency_code: str
    number_of_securities: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class IndicativeEquilibriumPrice(_Fixed):
    """§3.10.6 (41): the IEP (0 when there is none) and the IEV during an auction."""

    MSG_TYPE: ClassVar[int] = 41
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHIiQ")
    _KINDS: ClassVar[str] = "iii"

    security_code: int
    price_e3: int
    aggregate_quantity: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class OrderImbalance(_Fixed):
    """§3.9.8 (56): direction N (buy = sell), B (buy surplus), S (sell surplus) or blank (no
    IEP, the quantity to be ignored); the quantity is the absolute difference at the IEP."""

    MSG_TYPE: ClassVar[int] = 56
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHI1sxQ2x")
    _KINDS: ClassVar[str] = "iai"

    security_code: int
    order_imbalance_direction: str
    order_imbalance_quantity: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class SecurityStatus(_Fixed):
    """§3.8.2 (21): suspension_indicator 2 halted or suspended, 3 resumed."""

    MSG_TYPE: ClassVar[int] = 21
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHIB3x")
    _KINDS: ClassVar[str] = "ii"

    security_code: int
    suspension_indicator: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class NominalPrice(_Fixed):
    """§3.10.5 (40)."""

    MSG_TYPE: ClassVar[int] = 40
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHIi")
    _KINDS: ClassVar[str] = "ii"

    security_code: int
    nominal_price_e3: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class ReferencePrice(_Fixed):
    """§3.10.7 (43): auction reference price and its band; 0 means not available."""

    MSG_TYPE: ClassVar[int] = 43
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHIiii")
    _KINDS: ClassVar[str] = "iiii"

    security_code: int
    reference_price_e3: int
    lower_price_e3: int
    upper_price_e3: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class TradeCancel(_Fixed):
    """§3.10.2 (51)."""

    MSG_TYPE: ClassVar[int] = 51
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHII")
    _KINDS: ClassVar[str] = "ii"

    security_code: int
    trade_id: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class Statistics(_Fixed):
    """§3.11.1 (60). Turnovers carry 3 implied decimals like prices."""

    MSG_TYPE: ClassVar[int] = 60
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHIQqiiiiIq")
    _KINDS: ClassVar[str] = "iiiiiiiii"

    security_code: int
    shares_traded: int
    turnover_e3: int
    high_price_e3: int
    low_price_e3: int
    last_price_e3: int
    vwap_e3: int
    short_sell_shares_traded: int
    short_sell_turnover_e3: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class ClosingPrice(_Fixed):
    """§3.10.4 (62): closing_price_e3 is 0 when there is no closing price."""

    MSG_TYPE: ClassVar[int] = 62
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHIiI")
    _KINDS: ClassVar[str] = "iii"

    security_code: int
    closing_price_e3: int
    number_of_trades: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class SequenceReset(_Fixed):
    """§3.4.2 (100): clear all state; the next expected sequence number is new_seq_no."""

    MSG_TYPE: ClassVar[int] = 100
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHI")
    _KINDS: ClassVar[str] = "i"

    new_seq_no: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class Logon(_Fixed):
    """§3.5.1 (101), client to retransmission server; username padded with NULs."""

    MSG_TYPE: ClassVar[int] = 101
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HH12s")
    _KINDS: ClassVar[str] = "z"

    username: str


@_register_fixed
@dataclass(frozen=True, slots=True)
class LogonResponse(_Fixed):
    """§3.5.2 (102): session_status 0 active, 5 invalid username or IP, 100 already connected."""

    MSG_TYPE: ClassVar[int] = 102
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHB3x")
    _KINDS: ClassVar[str] = "i"

    session_status: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class RetransmissionRequest(_Fixed):
    """§3.5.3 (201): resend begin_seq_num..end_seq_num inclusive on channel_id."""

    MSG_TYPE: ClassVar[int] = 201
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHH2xII")
    _KINDS: ClassVar[str] = "iii"

    channel_id: int
    begin_seq_num: int
    end_seq_num: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class RetransmissionResponse(_Fixed):
    """§3.5.4 (202): retrans_status 0 accepted, 1 bad channel, 2 unavailable, 100, 101 limits."""

    MSG_TYPE: ClassVar[int] = 202
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHHBxII")
    _KINDS: ClassVar[str] = "iiii"

    channel_id: int
    retrans_status: int
    begin_seq_num: int
    end_seq_num: int


@_register_fixed
@dataclass(frozen=True, slots=True)
class RefreshComplete(_Fixed):
    """§3.6.1 (203): the snapshot just sent is synchronised with last_seq_num."""

    MSG_TYPE: ClassVar[int] = 203
    _STRUCT: ClassVar[struct.Struct] = struct.Struct("<HHI")
    _KINDS: ClassVar[str] = "i"

    last_seq_num: int


# --- Trade (50): hand-written because it is on the hot path. ----------------------------

_TRADE = struct.Struct("<HHIIiIh2xQ")


@dataclass(frozen=True, slots=True)
class Trade:
    """§3.10.1 (50): one trade; trd_type 0 automatch, 4 late, 22, 100..104 per the spec."""

    MSG_TYPE: ClassVar[int] = 50

    security_code: int
    trade_id: int
    price_e3: int
    quantity: int
    trd_type: int
    trade_time_ns: int

    def encode(self) -> bytes:
        try:
            return _TRADE.pack(
                _TRADE.size,
                50,
                self.security_code,
                self.trade_id,
                self.price_e3,
                self.quantity,
                self.trd_type,
                self.trade_time_ns,
            )
        except struct.error as exc:
            raise ValueError(f"Trade: {exc}") from exc


def _decode_trade(buf: Buffer, offset: int, msg_size: int) -> Trade:
    if msg_size < 32:
        raise MalformedPacket(f"Trade MsgSize {msg_size} < 32")
    _, _, code, trade_id, price, qty, trd_type, time_ns = _TRADE.unpack_from(buf, offset)
    return Trade(code, trade_id, price, qty, trd_type, time_ns)


_DECODERS[50] = _decode_trade


# --- AggregateOrderBookUpdate (53): a header and NoEntries 24-byte entries. ---------------

_AOBU_HEAD = struct.Struct("<HHI3xB")
_AOBU_ENTRY = struct.Struct("<QiIHBB4x")
AOBU_ENTRIES_MAX = 255  # NoEntries is a Uint8


@dataclass(frozen=True, slots=True)
class BookEntry:
    """One entry of message 53: a price level on one side and what happened to it."""

    aggregate_quantity: int
    price_e3: int
    number_of_orders: int
    side: int
    price_level: int
    update_action: int


@dataclass(frozen=True, slots=True)
class AggregateOrderBookUpdate:
    """§3.9.6 (53): deltas to the 10-tick aggregate book of one security (see §5)."""

    MSG_TYPE: ClassVar[int] = 53

    security_code: int
    entries: tuple[BookEntry, ...]

    def encode(self) -> bytes:
        n = len(self.entries)
        if n > AOBU_ENTRIES_MAX:
            raise ValueError(f"{n} entries exceed NoEntries' maximum {AOBU_ENTRIES_MAX}")
        try:
            parts = [_AOBU_HEAD.pack(12 + 24 * n, 53, self.security_code, n)]
            pack = _AOBU_ENTRY.pack
            for e in self.entries:
                parts.append(
                    pack(
                        e.aggregate_quantity,
                        e.price_e3,
                        e.number_of_orders,
                        e.side,
                        e.price_level,
                        e.update_action,
                    )
                )
        except struct.error as exc:
            raise ValueError(f"AggregateOrderBookUpdate: {exc}") from exc
        return b"".join(parts)


def _decode_aobu(buf: Buffer, offset: int, msg_size: int) -> AggregateOrderBookUpdate:
    if msg_size < 12:
        raise MalformedPacket(f"AggregateOrderBookUpdate MsgSize {msg_size} < 12")
    _, _, code, n = _AOBU_HEAD.unpack_from(buf, offset)
    if msg_size < 12 + 24 * n:
        raise MalformedPacket(f"AggregateOrderBookUpdate MsgSize {msg_size} < 12 + 24 x {n}")
    unpack = _AOBU_ENTRY.unpack_from
    pos = offset + 12
    entries = []
    for _ in range(n):
        entries.append(BookEntry(*unpack(buf, pos)))
        pos += 24
    return AggregateOrderBookUpdate(code, tuple(entries))


_DECODERS[53] = _decode_aobu


# --- SecurityDefinition (11): 544 fixed bytes then NoUnderlyingSecurities 8-byte entries. ---

# Offsets in the comments are the spec's (§3.7.2); the struct is checked against 544 below.
_SECDEF = struct.Struct(
    "<HH"
    "I4s12s4sBx2s40s3s60s60s"  # 4 SecurityCode .. 135 SecurityNameGB
    "I4xi"  # 195 LotSize, 199 Filler, 203 PreviousClosingPrice
    "1s1s1s1s1sx1sx"  # 207 VCMFlag .. 213 StampDutyFlag, 214 Filler
    "II38s62x"  # 215 ListingDate, 219 DelistingDate, 223 FreeText, 261 Filler
    "1siiI37x"  # 323 POSFlag, 324/328 POS limits, 332 DomainStmtSecurityCode, 336 Filler
    "1sIIxQB3sI1s44x"  # 373 EFNFlag .. 399 InvestorType, 400 Filler
    "IiiI"  # 444 ConversionRatio, 448/452 StrikePrice1/2, 456 MaturityDate
    "1s1s2x1siBiBI63x"  # 460 CallPutFlag .. 475 NoWarrantsPerEntitlement, 479 Filler
    "H"  # 542 NoUnderlyingSecurities
)
assert _SECDEF.size == 544
_UNDERLYING = struct.Struct("<I4x")
_SECDEF_KINDS = "iaaaiaaauuiiaaaaaaiiaaiiiaiiiiaiaiiiiaaaiiiii"


@dataclass(frozen=True, slots=True)
class SecurityDefinition:
    """§3.7.2 (11): the reference data of one security.

    Bond and warrant fields are meaningful only for those instrument types. Prices and
    ``*_e3`` rates carry 3 implied decimals; ``call_price``, ``entitlement`` and ``face_value``
    carry the number of decimals given in their ``decimals_in_*`` field.
    """

    MSG_TYPE: ClassVar[int] = 11

    security_code: int
    market_code: str
    isin_code: str
    instrument_type: str
    product_type: int
    spread_table_code: str
    security_short_name: str
    currency_code: str
    security_name_gccs: str
    security_name_gb: str
    lot_size: int
    previous_closing_price_e3: int
    vcm_flag: str
    short_sell_flag: str
    cas_flag: str
    ccass_flag: str
    dummy_security_flag: str
    stamp_duty_flag: str
    listing_date: int
    delisting_date: int
    free_text: str
    pos_flag: str
    pos_upper_limit_e3: int
    pos_lower_limit_e3: int
    domain_stmt_security_code: int
    efn_flag: str
    accrued_interest_e3: int
    coupon_rate_e3: int
    face_value: int
    decimals_in_face_value: int
    face_value_currency: str
    bond_maturity_date: int
    investor_type: str
    conversion_ratio_e3: int
    strike_price1_e3: int
    strike_price2_e3: int
    warrant_maturity_date: int
    call_put_flag: str
    style: str
    warrant_type: str
    call_price: int
    decimals_in_call_price: int
    entitlement: int
    decimals_in_entitlement: int
    no_warrants_per_entitlement: int
    underlying_security_codes: tuple[int, ...] = ()

    def encode(self) -> bytes:
        n = len(self.underlying_security_codes)
        values = _field_values(self, _SECDEF_NAMES, _SECDEF_KINDS, _SECDEF_SIZES)
        try:
            head = _SECDEF.pack(544 + 8 * n, 11, *values, n)
            tail = b"".join(_UNDERLYING.pack(c) for c in self.underlying_security_codes)
        except struct.error as exc:
            raise ValueError(f"SecurityDefinition: {exc}") from exc
        return head + tail


_SECDEF_NAMES = tuple(f.name for f in fields(SecurityDefinition))[:-1]
_SECDEF_SIZES = _string_sizes(_SECDEF.format)[:-1]
assert len(_SECDEF_NAMES) == len(_SECDEF_KINDS) == len(_SECDEF_SIZES)


def _decode_secdef(buf: Buffer, offset: int, msg_size: int) -> SecurityDefinition:
    if msg_size < 544:
        raise MalformedPacket(f"SecurityDefinition MsgSize {msg_size} < 544")
    raw = _SECDEF.unpack_from(buf, offset)
    n = raw[-1]
    if msg_size < 544 + 8 * n:
        raise MalformedPacket(f"SecurityDefinition MsgSize {msg_size} < 544 + 8 x {n}")
    codes = tuple(_UNDERLYING.unpack_from(buf, offset + 544 + 8 * i)[0] for i in range(n))
    values = _typed_values(raw[2:-1], _SECDEF_KINDS)
    values.append(codes)
    return SecurityDefinition(*values)


_DECODERS[11] = _decode_secdef


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message type this module does not model, kept raw so it can be counted or logged."""

    msg_type: int
    raw: bytes

    def encode(self) -> bytes:
        return self.raw


Message: TypeAlias = (
    SecurityDefinition
    | MarketDefinition
    | IndicativeEquilibriumPrice
    | OrderImbalance
    | TradingSessionStatus
    | SecurityStatus
    | NominalPrice
    | ReferencePrice
    | Trade
    | TradeCancel
    | AggregateOrderBookUpdate
    | Statistics
    | ClosingPrice
    | SequenceReset
    | Logon
    | LogonResponse
    | RetransmissionRequest
    | RetransmissionResponse
    | RefreshComplete
    | UnknownMessage
)


def decode_message(buf: Buffer, offset: int = 0) -> tuple[Message, int]:
    """Decode the message starting at ``offset``; return it and the offset just past it.

    Raises ``MalformedPacket`` when the message does not fit in ``buf`` or in its layout.
    """
    end_of_buf = len(buf)
    if offset < 0 or offset + 4 > end_of_buf:
        raise MalformedPacket(f"no room for a message header at offset {offset}")
    msg_size, msg_type = MSG_HEADER.unpack_from(buf, offset)
    end = offset + msg_size
    if msg_size < 4 or end > end_of_buf:
        raise MalformedPacket(f"MsgSize {msg_size} at offset {offset} overruns {end_of_buf}")
    decoder = _DECODERS.get(msg_type)
    if decoder is None:
        return UnknownMessage(msg_type, bytes(buf[offset:end])), end
    try:
        message: Message = decoder(buf, offset, msg_size)
    except (struct.error, UnicodeError) as exc:  # defensive: sizes are checked first
        raise MalformedPacket(f"MsgType {msg_type} at offset {offset}: {exc}") from exc
    return message, end
