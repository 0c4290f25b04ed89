"""Where the local stack keeps PostgreSQL's data: `<state>/pg`, or the folder `up` recorded."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sampan import stack
from sampan.stack import PG_LOCATION_FILE, Paths


def test_pg_data_defaults_to_the_state_folder(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "state")
    assert paths.pg_data == tmp_path / "state" / "pg" / "data"
    assert paths.pg_log == tmp_path / "state" / "pg" / "postgres.log"


def test_pg_data_follows_the_recorded_location(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    outside = tmp_path / "elsewhere" / "pg-0123456789ab"
    (state / PG_LOCATION_FILE).write_text(f"{outside}\n")
    paths = Paths(state)
    assert paths.pg_dir == outside
    assert paths.pg_data == outside / "data"


def test_a_cluster_id_never_reads_as_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    # A UUID whose base64 form starts with "-" (0xf8 as its first byte) is drawn first.
    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(int=1)])
    monkeypatch.setattr(stack.uuid, "uuid4", lambda: next(draws))
    cluster_id = stack._kafka_cluster_id()
    assert not cluster_id.startswith("-")
    assert len(cluster_id) == 22
