"""The ledger's table lists every row and totals them."""

from __future__ import annotations

from fault_ledger import FaultLedger  # type: ignore[import-not-found]


def test_markdown_totals_rows() -> None:
    ledger = FaultLedger()
    ledger.record("a", injected="x", recovered=True, documents_lost=0, outcome="ok")
    ledger.record("b", injected="y", recovered=False, documents_lost=2, outcome="stop")
    table = ledger.markdown()
    assert "| a | x | yes | 0 | ok |" in table
    assert "| b | y | no | 2 | stop |" in table
    assert "Faults injected: 2; runs that recovered: 1; documents lost: 2." in table
