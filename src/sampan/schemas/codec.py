"""Single-object encoding of Avro records with fastavro, and writer-to-reader resolution.

Guarantees: `encode` writes exactly `C3 01 | fingerprint (u64 little-endian) | body` with the
current schema; `decode` accepts any current or released writer schema of the same record name
and returns the record in the current reader's shape. Anything else raises a `SchemaError`
subclass: an unknown fingerprint, a fingerprint of another record, a short or corrupt body, or
trailing bytes. Schemas are parsed once, when the registry is built.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from sampan.errors import SampanError

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10
SCHEMA_DIR = Path(__file__).parent / "avsc"
RELEASED_DIR = Path(__file__).parent / "released"

_FINGERPRINT = struct.Struct("<Q")
_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro specification's 64-bit Rabin fingerprint of a schema's canonical form."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


class SchemaError(SampanError):
    """A record could not be encoded or decoded."""


class UnknownSchema(SchemaError):
    """No schema of that record name is known."""


class UnknownFingerprint(SchemaError):
    """The record's writer schema is neither current nor released."""


class MalformedRecord(SchemaError):
    """The bytes are not a single-object-encoded record of the expected schema."""


@dataclass(frozen=True, slots=True)
class Schema:
    name: str
    version: str
    parsed: Any
    fingerprint: int

    @property
    def header(self) -> bytes:
        return MAGIC + _FINGERPRINT.pack(self.fingerprint)


def load_schema(path: Path, version: str) -> Schema:
    parsed = fastavro.parse_schema(json.loads(path.read_text()))
    canonical = to_parsing_canonical_form(parsed)
    return Schema(
        name=path.stem,
        version=version,
        parsed=parsed,
        fingerprint=crc64_avro(canonical.encode()),
    )


class SchemaRegistry:
    """Every known schema, indexed by record name (current) and by fingerprint (all)."""

    def __init__(self, current: Mapping[str, Schema], released: list[Schema]) -> None:
        self.current = dict(current)
        self.by_fingerprint: dict[int, Schema] = {s.fingerprint: s for s in released}
        for schema in self.current.values():
            self.by_fingerprint[schema.fingerprint] = schema
        self._headers = {name: s.header for name, s in self.current.items()}

    @classmethod
    def from_directories(
        cls, schema_dir: Path = SCHEMA_DIR, released_dir: Path = RELEASED_DIR
    ) -> SchemaRegistry:
        current = {p.stem: load_schema(p, "current") for p in sorted(schema_dir.glob("*.avsc"))}
        released = [
            load_schema(p, version_dir.name)
            for version_dir in sorted(released_dir.iterdir())
            if version_dir.is_dir()
            for p in sorted(version_dir.glob("*.avsc"))
        ]
        return cls(current, released)

    def schema(self, name: str) -> Schema:
        try:
            return self.current[name]
        except KeyError:
            raise UnknownSchema(f"no schema named {name!r}") from None

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        schema = self.schema(name)
        out = io.BytesIO()
        out.write(self._headers[name])
        try:
            fastavro.schemaless_writer(out, schema.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise MalformedRecord(f"{name}: cannot encode {error}") from error
        return out.getvalue()

    def decode(self, name: str, data: bytes) -> dict[str, Any]:
        reader = self.schema(name)
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise MalformedRecord(f"{name}: not an Avro single-object record ({data[:10].hex()})")
        (fingerprint,) = _FINGERPRINT.unpack_from(data, 2)
        writer = self.by_fingerprint.get(fingerprint)
        if writer is None:
            raise UnknownFingerprint(f"{name}: unknown writer fingerprint {fingerprint:016x}")
        if writer.name != name:
            raise MalformedRecord(f"expected a {name} record, got a {writer.name} record")
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            if writer is reader:
                record = fastavro.schemaless_reader(body, writer.parsed, None)
            else:
                record = fastavro.schemaless_reader(body, writer.parsed, reader.parsed)
        except Exception as error:  # fastavro raises many types on corrupt input
            raise MalformedRecord(f"{name}: corrupt body: {error!r}") from error
        if body.tell() != len(data):
            raise MalformedRecord(f"{name}: {len(data) - body.tell()} trailing bytes")
        assert isinstance(record, dict)
        return record


@lru_cache(maxsize=1)
def registry() -> SchemaRegistry:
    """The process-wide registry, parsed once on first use."""
    return SchemaRegistry.from_directories()
