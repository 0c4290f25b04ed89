"""Wire format: round trips for every message type, byte-exact layouts, malformed input."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampan.omd import wire
from sampan.omd.packets import decode_packet, encode_packet, pack_messages
from sampan.omd.wire import (
    AggregateOrderBookUpdate,
    BookEntry,
    MalformedPacket,
    SecurityDefinition,
    Trade,
    UnknownMessage,
    decode_message,
)

FIXED_TYPES = [
    wire.MarketDefinition,
    wire.IndicativeEquilibriumPrice,
    wire.OrderImbalance,
    wire.TradingSessionStatus,
    wire.SecurityStatus,
    wire.NominalPrice,
    wire.ReferencePrice,
    wire.TradeCancel,
    wire.Statistics,
    wire.ClosingPrice,
    wire.SequenceReset,
    wire.Logon,
    wire.LogonResponse,
    wire.RetransmissionRequest,
    wire.RetransmissionResponse,
    wire.RefreshComplete,
]

INT_RANGES = {
    "B": (0, 2**8 - 1),
    "H": (0, 2**16 - 1),
    "h": (-(2**15), 2**15 - 1),
    "I": (0, 2**32 - 1),
    "i": (-(2**31), 2**31 - 1),
    "Q": (0, 2**64 - 1),
    "q": (-(2**63), 2**63 - 1),
}


def value_codes(fmt: str) -> list[tuple[str, int]]:
    """(code, size) per unpacked value of a struct format, MsgSize/MsgType excluded."""
    out: list[tuple[str, int]] = []
    for count, code in re.findall(r"(\d*)([a-zA-Z])", fmt):
        n = int(count or "1")
        if code == "s":
            out.append(("s", n))
        elif code != "x":
            out.extend([(code, 0)] * n)
    return out[2:]


def ascii_text(size: int) -> st.SearchStrategy[str]:
    # Trailing spaces are padding on the wire, so content never ends in one.
    alphabet = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    return st.text(alphabet, max_size=size).filter(lambda s: s == s.rstrip(" "))


def utf16_text(size: int) -> st.SearchStrategy[str]:
    alphabet = st.characters(min_codepoint=0x21, max_codepoint=0xFFFF, exclude_categories=["Cs"])
    return st.text(alphabet, max_size=size // 2)


def field_strategies(fmt: str, kinds: str, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, (code, size) in zip(names, kinds, value_codes(fmt), strict=True):
        if kind == "i":
            lo, hi = INT_RANGES[code]
            out[name] = st.integers(lo, hi)
        elif kind == "u":
            out[name] = utf16_text(size)
        else:
            out[name] = ascii_text(size)
    return out


def fixed_strategy(cls: type[wire._Fixed]) -> st.SearchStrategy[Any]:
    return st.builds(cls, **field_strategies(cls._STRUCT.format, cls._KINDS, cls._NAMES))


entry_strategy = st.builds(
    BookEntry,
    st.integers(0, 2**64 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**16 - 1),
    st.integers(0, 255),
    st.integers(0, 255),
)
aobu_strategy = st.builds(
    AggregateOrderBookUpdate,
    st.integers(0, 2**32 - 1),
    st.lists(entry_strategy, max_size=20).map(tuple),
)
trade_strategy = st.builds(
    Trade,
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(-(2**15), 2**15 - 1),
    st.integers(0, 2**64 - 1),
)
secdef_fields = field_strategies(
    wire._SECDEF.format, wire._SECDEF_KINDS + "i", (*wire._SECDEF_NAMES, "n_underlying")
)
del secdef_fields["n_underlying"]
secdef_strategy = st.builds(
    SecurityDefinition,
    **secdef_fields,
    underlying_security_codes=st.lists(st.integers(0, 2**32 - 1), max_size=5).map(tuple),
)
any_message = st.one_of(
    *[fixed_strategy(c) for c in FIXED_TYPES], aobu_strategy, trade_strategy, secdef_strategy
)


@pytest.mark.parametrize("cls", FIXED_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fixed_messages_round_trip(cls: type[wire._Fixed], data: st.DataObject) -> None:
    message = data.draw(fixed_strategy(cls))
    raw = message.encode()
    assert struct.unpack_from("<HH", raw) == (len(raw), cls.MSG_TYPE)
    assert decode_message(raw, 0) == (message, len(raw))


@settings(max_examples=200, deadline=None)
@given(any_message)
def test_every_message_round_trips_through_packets(message: wire.Message) -> None:
    raw = message.encode()
    assert decode_message(raw) == (message, len(raw))
    packet = decode_packet(encode_packet(42, 7, [message, message]))
    assert packet.messages == (message, message) and packet.seq_num == 42


@settings(max_examples=100, deadline=None)
@given(st.lists(any_message, max_size=40), st.integers(1, 2**31))
def test_pack_messages_preserves_order_and_numbering(
    messages: list[wire.Message], first: int
) -> None:
    packets = pack_messages(first, 9, messages)
    out: list[tuple[int, wire.Message]] = []
    for raw in packets:
        assert len(raw) + 28 <= 1500
        p = decode_packet(raw)
        out.extend((p.seq_num + i, m) for i, m in enumerate(p.messages))
    assert out == [(first + i, m) for i, m in enumerate(messages)]


def test_packet_header_and_message_53_bytes_match_the_spec_by_hand() -> None:
    # Example 1 of §5, numbered 5, with SendTime 0x0102030405060708 to make byte order plain.
    message = AggregateOrderBookUpdate(
        1234, (BookEntry(200, 9770, 1, 1, 2, 1), BookEntry(300, 9850, 1, 1, 5, 0))
    )
    expected = bytes.fromhex(
        "4c00 01 00 05000000 0807060504030201"  # PktSize 76, MsgCount 1, Filler, SeqNum, SendTime
        "3c00 3500 d2040000 000000 02"  # MsgSize 60, MsgType 53, SecurityCode 1234, NoEntries 2
        "c800000000000000 2a260000 01000000 0100 02 01 00000000"  # 200 @ 9770, offer, lvl 2, chg
        "2c01000000000000 7a260000 01000000 0100 05 00 00000000"  # 300 @ 9850, offer, lvl 5, new
    )
    assert encode_packet(5, 0x0102030405060708, [message]) == expected
    assert decode_packet(expected).messages == (message,)


def test_other_layouts_match_the_spec_by_hand() -> None:
    trade = Trade(700, 3, 388_200, 400, 0, 0x1122334455667788)
    assert trade.encode() == bytes.fromhex(
        "2000 3200 bc020000 03000000 68ec0500 90010000 0000 0000 8877665544332211"
    )
    assert wire.SequenceReset(1).encode() == bytes.fromhex("0800 6400 01000000")
    assert wire.Logon("omd1").encode() == bytes.fromhex("1000 6500") + b"omd1" + bytes(8)
    assert wire.RetransmissionRequest(7, 100, 200).encode() == bytes.fromhex(
        "1000 c900 0700 0000 64000000 c8000000"
    )
    assert wire.RetransmissionResponse(7, 2, 100, 200).encode() == bytes.fromhex(
        "1000 ca00 0700 02 00 64000000 c8000000"
    )


def test_security_definition_offsets_follow_the_spec() -> None:
    fields = {f.name: "" for f in dataclasses.fields(SecurityDefinition) if f.type == "str"}
    base: dict[str, Any] = {f.name: 0 for f in dataclasses.fields(SecurityDefinition)}
    base.update(fields)
    secdef = SecurityDefinition(
        **{
            **base,
            "security_code": 700,
            "market_code": "MAIN",
            "spread_table_code": "01",
            "security_name_gccs": "騰訊",
            "lot_size": 100,
            "previous_closing_price_e3": 388_200,
            "vcm_flag": "Y",
            "stamp_duty_flag": "Y",
            "pos_flag": "N",
            "no_warrants_per_entitlement": 5,
            "underlying_security_codes": (5, 700),
        }
    )
    raw = secdef.encode()
    assert len(raw) == 544 + 16
    assert struct.unpack_from("<HHI", raw) == (560, 11, 700)
    assert raw[8:12] == b"MAIN" and raw[12:24] == b" " * 12
    assert raw[30:32] == b"01"
    assert raw[75:79] == "騰訊".encode("utf-16-le") and raw[79:135] == bytes(56)
    assert struct.unpack_from("<I", raw, 195) == (100,)
    assert struct.unpack_from("<i", raw, 203) == (388_200,)
    assert raw[207:208] == b"Y" and raw[213:214] == b"Y" and raw[323:324] == b"N"
    assert struct.unpack_from("<I", raw, 475) == (5,)
    assert struct.unpack_from("<HIxxxxIxxxx", raw, 542) == (2, 5, 700)
    assert decode_message(raw) == (secdef, len(raw))


def test_unknown_type_is_kept_raw_and_skipped() -> None:
    raw = struct.pack("<HH", 8, 54) + b"\x01\x02\x03\x04"
    after = wire.NominalPrice(5, 1000).encode()
    packet = decode_packet(encode_packet(1, 0, [raw, after]))
    assert packet.messages == (UnknownMessage(54, raw), wire.NominalPrice(5, 1000))


@settings(max_examples=100, deadline=None)
@given(any_message)
def test_truncated_messages_raise_malformed(message: wire.Message) -> None:
    raw = message.encode()
    for cut in range(len(raw)):
        with pytest.raises(MalformedPacket):
            decode_message(raw[:cut])
    # A MsgSize smaller than the layout, with the bytes there, is malformed too.
    if len(raw) > 4:
        shrunk = struct.pack("<H", len(raw) - 1) + raw[2:]
        with pytest.raises(MalformedPacket):
            decode_message(shrunk)


@settings(max_examples=100, deadline=None)
@given(st.lists(any_message, min_size=1, max_size=5))
def test_truncated_or_padded_packets_raise_malformed(messages: list[wire.Message]) -> None:
    raw = encode_packet(1, 0, messages)
    for cut in range(len(raw)):
        with pytest.raises(MalformedPacket):
            decode_packet(raw[:cut])
    with pytest.raises(MalformedPacket):
        decode_packet(raw + b"\x00")
    wrong_count = raw[:2] + bytes([len(messages) + 1]) + raw[3:]
    with pytest.raises(MalformedPacket):
        decode_packet(wrong_count)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 3))
def test_random_bytes_decode_or_raise_malformed(body: bytes, count: int) -> None:
    raw = struct.pack("<HBxIQ", 16 + len(body), count, 1, 0) + body
    with contextlib.suppress(MalformedPacket):
        decode_packet(raw)


def test_encoding_an_out_of_range_value_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        wire.NominalPrice(2**32, 0).encode()
    with pytest.raises(ValueError):
        wire.Logon("x" * 13).encode()
    with pytest.raises(ValueError):
        AggregateOrderBookUpdate(1, (BookEntry(0, 0, 0, 0, 0, 0),) * 256).encode()


def test_auction_messages_have_the_specs_sizes() -> None:
    # §3.7.1 Market Definition 40 bytes, §3.10.6 IEP 20, §3.9.8 Order Imbalance 20.
    assert len(wire.MarketDefinition("MAIN", "Main Board", "HKD", 3).encode()) == 40
    assert len(wire.IndicativeEquilibriumPrice(700, 514_000, 300).encode()) == 20
    raw = wire.OrderImbalance(700, "B", 100).encode()
    assert len(raw) == 20 and raw[8:9] == b"B"
