"""litestream: reading what Litestream reports."""

from __future__ import annotations

from conftest import spans
from litestream_guard.litestream import restorable_to


def test_restorable_to_reads_every_level_like_litestreams_plan():
    assert restorable_to([]) == 0
    assert restorable_to(spans(3, 7)) == 7
    assert restorable_to(spans(9, level=9) + spans(12, start=10)) == 12, "snapshot, then L0"
    assert restorable_to(spans(20, level=1) + spans(5, 25)) == 25, "overlapping levels chain"
    assert restorable_to(spans(30, start=21)) == 0, "no snapshot, no start at TXID 1"
    assert restorable_to(spans(5) + spans(30, start=21)) == 0, "a gap: no plan for the newest"
