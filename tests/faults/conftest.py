"""The fault-injection suite's ledger: one row per injected fault.

Every fault test records what it injected, whether the run recovered (or
stopped with a clear reason, when stopping is the correct outcome) and how
many already-stored documents were lost. The table is printed at the end of
the session; with ``HAML_FAULT_TABLE=PATH`` it is also written to PATH as
Markdown (``bench/fault_suite.py`` uses that to refresh docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fault_ledger import FaultLedger  # type: ignore[import-not-found]


_LEDGER = FaultLedger()


@pytest.fixture(scope="session")
def fault_ledger() -> FaultLedger:
    """The session's ledger of injected faults."""
    return _LEDGER


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the ledger after the run and write it where HAML_FAULT_TABLE says."""
    if not _LEDGER.rows:
        return
    table = _LEDGER.markdown()
    terminalreporter.section("fault injection")
    terminalreporter.write(table)
    target = os.environ.get("HAML_FAULT_TABLE")
    if target:
        Path(target).write_text(table)
