"""`sampan recon run|report --day`: a bad day is a usage error, not a traceback."""

from __future__ import annotations

import pytest

from sampan.dropcopy.cli import main, trading_day_arg


@pytest.mark.parametrize("action", ["run", "report"])
def test_a_bad_day_is_a_usage_error(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["recon", action, "--day", "notaday"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --day: 'notaday' is not a day: give YYYY-MM-DD" in err
    assert "Traceback" not in err


def test_a_good_day_is_kept() -> None:
    assert trading_day_arg("2025-06-16") == "2025-06-16"
