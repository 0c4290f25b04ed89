"""The ingest shell against the simulator over loopback UDP/TCP, with an in-memory sink."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "integration" / "omd_ingest"))

from omd_harness import MemorySink, assert_books_equal, run_scenario

from sampan.hkex_sim.omd_lines import LineFaults
from sampan.omd_ingest.feed import TradeOut


def test_loss_on_both_lines_is_recovered() -> None:
    sink = MemorySink()
    run = asyncio.run(
        run_scenario(
            sink,
            seed=4,
            faults_a=LineFaults(drop=0.1, duplicate=0.05, reorder=0.05, seed=1),
            faults_b=LineFaults(drop=0.1, duplicate=0.05, reorder=0.05, seed=2),
            active_s=1.5,
        )
    )
    assert_books_equal(run)
    got = [(t.security, t.trade_id) for t in sink.outputs if isinstance(t, TradeOut)]
    assert got and sorted(got) == sorted((t.security, t.trade_id) for t in run.trades)
    assert run.ingest.gaps_requested > 0
