import json
from pathlib import Path

import fastavro
import pytest
from avro_records import records
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from sampan import topics
from sampan.schemas import (
    MalformedRecord,
    SchemaRegistry,
    UnknownFingerprint,
    UnknownSchema,
    crc64_avro,
    registry,
)
from sampan.schemas.codec import RELEASED_DIR, SCHEMA_DIR, load_schema

NAMES = sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))


def test_every_catalog_value_has_a_schema() -> None:
    for topic in topics.ALL:
        assert topic.value in NAMES, topic


@pytest.mark.parametrize("name", NAMES)
def test_every_field_states_its_purpose(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    for field in schema["fields"]:
        assert field.get("doc"), f"{name}.{field['name']} has no doc"
        if field["name"].endswith("_e3"):
            assert "HK$0.001" in field["doc"]
        if field["name"].endswith("_cents"):
            assert "cents" in field["doc"]
        if field["name"].endswith("_ns"):
            assert "nanoseconds" in field["doc"]


def test_crc64_matches_fastavro_and_the_avro_spec() -> None:
    # The Avro specification's example: the fingerprint of "int" is 0x7275d51a3f395c8f.
    assert crc64_avro(b'"int"') == 0x7275D51A3F395C8F
    for name in NAMES:
        schema = registry().schema(name)
        expected = fingerprint(to_parsing_canonical_form(schema.parsed), "CRC-64-AVRO")
        assert schema.fingerprint.to_bytes(8, "little").hex() == expected


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_round_trip(name: str, data: st.DataObject) -> None:
    schema = registry().schema(name)
    record = data.draw(records(schema.parsed))
    encoded = registry().encode(name, record)
    assert encoded[:2] == b"\xc3\x01"
    assert int.from_bytes(encoded[2:10], "little") == schema.fingerprint
    assert registry().decode(name, encoded) == record


def released_versions() -> list[tuple[str, str]]:
    return [
        (version.name, path.stem)
        for version in sorted(RELEASED_DIR.iterdir())
        for path in sorted(version.glob("*.avsc"))
    ]


@pytest.mark.parametrize(("version", "name"), released_versions())
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_released_writers_stay_decodable(version: str, name: str, data: st.DataObject) -> None:
    """A record written by any released schema decodes with the current reader."""
    writer = load_schema(RELEASED_DIR / version / f"{name}.avsc", version)
    assert name in NAMES, f"released record {name} has no current schema"
    record = data.draw(records(writer.parsed))
    import io

    body = io.BytesIO()
    fastavro.schemaless_writer(body, writer.parsed, record)
    decoded = registry().decode(name, writer.header + body.getvalue())
    current_fields = {f["name"] for f in registry().schema(name).parsed["fields"]}
    for field, value in record.items():
        if field in current_fields:
            assert decoded[field] == value


def test_unknown_fingerprint_is_a_typed_error() -> None:
    encoded = bytearray(registry().encode("TradeTick", sample_tick()))
    encoded[2] ^= 0xFF
    with pytest.raises(UnknownFingerprint):
        registry().decode("TradeTick", bytes(encoded))


@pytest.mark.parametrize("cut", [0, 1, 5, 10, 14])
def test_truncated_record_is_malformed(cut: int) -> None:
    encoded = registry().encode("TradeTick", sample_tick())
    with pytest.raises(MalformedRecord):
        registry().decode("TradeTick", encoded[:cut])


def test_trailing_bytes_and_wrong_record_are_malformed() -> None:
    encoded = registry().encode("TradeTick", sample_tick())
    with pytest.raises(MalformedRecord, match="trailing"):
        registry().decode("TradeTick", encoded + b"\x00")
    with pytest.raises(MalformedRecord, match="TradeTick"):
        registry().decode("Fill", encoded)


def test_invalid_record_cannot_be_encoded_and_unknown_names_are_refused() -> None:
    with pytest.raises(MalformedRecord):
        registry().encode("TradeTick", {**sample_tick(), "qty": "many"})
    with pytest.raises(UnknownSchema):
        registry().encode("Nope", {})


def test_evolved_reader_resolves_an_older_writer(tmp_path: Path) -> None:
    """A reader that added a field with a default reads records of the older writer."""
    old = json.loads((SCHEMA_DIR / "TradeTick.avsc").read_text())
    new = json.loads(json.dumps(old))
    new["fields"].append(
        {"name": "condition", "type": "string", "default": "", "doc": "trade condition"}
    )
    (tmp_path / "current").mkdir()
    (tmp_path / "released" / "v1").mkdir(parents=True)
    (tmp_path / "current" / "TradeTick.avsc").write_text(json.dumps(new))
    (tmp_path / "released" / "v1" / "TradeTick.avsc").write_text(json.dumps(old))
    evolved = SchemaRegistry.from_directories(tmp_path / "current", tmp_path / "released")
    old_bytes = registry().encode("TradeTick", sample_tick())
    assert evolved.decode("TradeTick", old_bytes) == {**sample_tick(), "condition": ""}


def sample_tick() -> dict[str, object]:
    return {
        "venue": "INTERNAL",
        "security": 700,
        "trade_id": "X700-1",
        "price_e3": 380_200,
        "qty": 300,
        "aggressor": "BUY",
        "ts_ns": 1_700_000_000_000_000_000,
    }


def test_an_account_snapshot_written_before_fills_offsets_includes_none() -> None:
    import io

    writer = load_schema(RELEASED_DIR / "v2" / "AccountSnapshot.avsc", "v2")
    record = {
        "account": "A",
        "member": "M1",
        "cash_cents": 1,
        "available_cash_cents": 1,
        "holdings_value_cents": 0,
        "portfolio_value_cents": 1,
        "equity_cents": 1,
        "credit_line_used_cents": 0,
        "cut_loss_equity_cents": 0,
        "cut_loss_breached": False,
        "positions": [],
        "ts_ns": 1,
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(body, writer.parsed, record)
    decoded = registry().decode("AccountSnapshot", writer.header + body.getvalue())
    assert decoded == record | {"fills_offsets": []}
