"""The analytics app (Faust, on aiokafka) can read every compression the venue's writers use:
omd-ingest writes md.* lz4-compressed, and without aiokafka's lz4 codec the app crashed on
every md.trades fetch (the whole-venue fault test saw it restarted again and again)."""

from __future__ import annotations

from aiokafka.codec import has_lz4, lz4_decode, lz4_encode

from sampan.config import settings
from sampan.omd_ingest.kafka_out import producer_config


def test_faust_decodes_what_omd_ingest_writes() -> None:
    config = producer_config(settings(), 2, "omd-ingest.1")
    assert config["compression.type"] == "lz4"
    assert has_lz4(), "aiokafka has no lz4 codec (cramjam is missing)"
    assert lz4_decode(lz4_encode(b"md.trades " * 100)) == b"md.trades " * 100
