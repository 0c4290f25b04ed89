"""`sampan ledger rebuild` compares what the ledger means, not how fills fell into batches: an
account that bought and sold the same shares is flat whether or not a zero balance row exists."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink.audit import rebuild
from sampan.ledger_sink.cli import DEFAULT_GROUP
from sampan.ledger_sink.intake import make_item
from sampan.ledger_sink.rules import default_schedule
from sampan.ledger_sink.store import Source, post_batch
from sampan.streams.reader import read_to_end
from sampan.tools.bench.ledger import produce_fills, synthetic_fills

pytestmark = pytest.mark.integration
READ_TIMEOUT_S = 60.0


def _flat_round_trip() -> list[dict[str, Any]]:
    """ACC0001 buys 100 shares from ACC0002, then sells them to ACC0003: flat in the security.
    ACC0001 is the aggressor both times, so both fills have its key and one partition."""
    base = next(synthetic_fills(1, seed=8, hkex_every=0))
    buy = base | {
        "exec_id": "R1",
        "buy_account": "ACC0001",
        "buy_member": "M01",
        "sell_account": "ACC0002",
        "sell_member": "M02",
        "qty": 100,
        "aggressor": "BUY",
    }
    sell = base | {
        "exec_id": "R2",
        "buy_account": "ACC0003",
        "buy_member": "M03",
        "sell_account": "ACC0001",
        "sell_member": "M01",
        "qty": 100,
        "aggressor": "SELL",
        "ts_ns": base["ts_ns"] + 1,
    }
    return [buy, sell]


def test_rebuild_in_other_batches_finds_no_difference_for_a_flat_account(
    env_settings: Settings, schema: str
) -> None:
    produce_fills(env_settings, iter(_flat_round_trip()))
    records = [
        (m.partition(), m.offset(), m.key(), m.value())
        for m in read_to_end(env_settings, "fills", READ_TIMEOUT_S)
    ]
    assert len(records) == 2
    # The live ledger posts both fills in one batch, with the sink's own code and offsets.
    items = [make_item(p, o, k, v, default_schedule()) for p, o, k, v in records]
    source = Source(DEFAULT_GROUP, env_settings.topic("fills"))
    with db.connect(env_settings, schema) as conn:
        result = post_batch(conn, source, items, set(), lambda rejected: None)
    assert result.posted == 2

    with psycopg.connect(env_settings.database_url, options=f"-c search_path={schema}") as conn:
        held = conn.execute(
            "SELECT coalesce(sum(qty), 0) FROM positions WHERE account = 'ACC0001'"
        ).fetchone()
    assert held == (0,)

    # The rebuild posts one fill per batch: the buy leaves a share balance the sell zeroes.
    differences = rebuild(
        env_settings,
        schema,
        f"{schema}_rebuild",
        DEFAULT_GROUP,
        batch_max=1,
        progress=lambda _: None,
    )
    # The synthetic fills are unfunded: an account beyond its credit line is reported, and
    # nothing else may be (a flat account's balance in particular).
    assert [d for d in differences if "beyond its credit line" not in d] == []
