"""Avro schemas of every record on sampan's topics, and their single-object encoding.

The `.avsc` files in `avsc/` are the current schemas; `released/vN/` keeps every released
version, so that a record written by any released writer stays decodable by the current reader.
Records travel in Avro single-object encoding: `C3 01`, the writer schema's CRC-64-AVRO
fingerprint (8 bytes, little-endian), then the Avro binary body. Decoding looks the fingerprint
up among all known schemas and resolves the writer's schema to the current reader's.
"""

from sampan.schemas.codec import (
    MalformedRecord,
    SchemaError,
    SchemaRegistry,
    UnknownFingerprint,
    UnknownSchema,
    crc64_avro,
    registry,
)

__all__ = [
    "MalformedRecord",
    "SchemaError",
    "SchemaRegistry",
    "UnknownFingerprint",
    "UnknownSchema",
    "crc64_avro",
    "registry",
]
