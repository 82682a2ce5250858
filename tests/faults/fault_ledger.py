"""Rows of the fault-injection table and their Markdown rendering."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FaultRow:
    """One injected fault and its outcome."""

    fault: str
    injected: str
    recovered: bool
    documents_lost: int
    outcome: str


@dataclass
class FaultLedger:
    """Rows recorded by the fault tests of this session."""

    rows: list[FaultRow] = field(default_factory=list)

    def record(
        self,
        fault: str,
        *,
        injected: str,
        recovered: bool,
        documents_lost: int,
        outcome: str,
    ) -> None:
        """Add a row; call it after the test's assertions have passed."""
        self.rows.append(FaultRow(fault, injected, recovered, documents_lost, outcome))

    def markdown(self) -> str:
        """The table, then its totals, as Markdown."""
        lines = [
            "| fault | injected by | recovered | documents lost | outcome |",
            "|---|---|---|---|---|",
        ]
        for row in self.rows:
            lines.append(
                f"| {row.fault} | {row.injected} | {'yes' if row.recovered else 'no'} "
                f"| {row.documents_lost} | {row.outcome} |"
            )
        recovered = sum(row.recovered for row in self.rows)
        lost = sum(row.documents_lost for row in self.rows)
        lines.append("")
        lines.append(
            f"Faults injected: {len(self.rows)}; runs that recovered: {recovered}; "
            f"documents lost: {lost}."
        )
        return "\n".join(lines) + "\n"
