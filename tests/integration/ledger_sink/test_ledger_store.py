"""`post_batch` on a real schema: any account name survives binary COPY, a replay posts
nothing, a changed fill is rejected, and verify finds the ledger sound after each batch."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sampan.config import Settings
from sampan.ledger_sink import db
from sampan.ledger_sink.audit import verify
from sampan.ledger_sink.bench import synthetic_fills
from sampan.ledger_sink.intake import make_item
from sampan.ledger_sink.rules import default_schedule
from sampan.ledger_sink.store import Item, Rejected, Source, post_batch
from sampan.schemas import registry

pytestmark = pytest.mark.integration
SOURCE = Source("test", "fills")
AWKWARD = "ACC\t\\N\n\r\\x"  # COPY text's separators, escapes and NULL marker


def _items(records: Sequence[dict[str, object]], first_offset: int = 0) -> list[Item]:
    return [
        make_item(0, first_offset + n, b"k", registry().encode("Fill", r), default_schedule())
        for n, r in enumerate(records)
    ]


def test_post_replay_and_conflict(env_settings: Settings, schema: str) -> None:
    records = list(synthetic_fills(50, seed=11))
    records[0] = records[0] | {"buy_account": AWKWARD, "venue": "INTERNAL"}
    rejected: list[Rejected] = []
    known: set[str] = set()
    with db.connect(env_settings, schema) as conn:
        first = post_batch(conn, SOURCE, _items(records), known, rejected.extend)
        assert (first.posted, first.replayed, rejected) == (50, 0, [])
        assert verify(env_settings, schema, lambda _: None) == []

        changed = records[1] | {"qty": int(str(records[1]["qty"])) + 100}
        again = post_batch(conn, SOURCE, _items(records, first_offset=50), known, rejected.extend)
        assert (again.posted, again.replayed, again.transfers, rejected) == (0, 50, 0, [])
        post_batch(conn, SOURCE, _items([changed], first_offset=100), known, rejected.extend)
        assert [r.offset for r in rejected] == [100]
        assert "already in the ledger" in rejected[0].error

        ref = f"INTERNAL:{records[0]['exec_id']}"
        rows = conn.execute(
            "SELECT id, debit_account FROM journal WHERE fill_ref = %s AND reason = %s",
            (ref, "consideration"),
        ).fetchall()
        assert rows == [(f"{ref}:cash", AWKWARD)]
        offsets = conn.execute("SELECT next_offset FROM consumer_offsets").fetchall()
        assert offsets == [(101,)]
    assert verify(env_settings, schema, lambda _: None) == []
