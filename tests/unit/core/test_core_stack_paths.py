"""Where the local stack keeps PostgreSQL's data: `<state>/pg`, or the folder `up` recorded."""

from __future__ import annotations

from pathlib import Path

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
