"""What the cycle benches share: a cycle's stage time and the time outside its stages.

bench/cycle_breakdown.py measures orchestration against one run's wall time,
bench/screen_scale.py against the launches FireWorks recorded for a cycle;
both subtract the same stage costs.
"""

from __future__ import annotations


def stage_wall_seconds(doc, audit_wall_s: float = 0.0) -> float:
    """Wall seconds of one cycle's AIMD, training and MLP-MD (and its audit, if given)."""
    return (
        doc.aimd_cost.wall_seconds
        + doc.training_cost.wall_seconds
        + doc.mlpmd_cost.wall_seconds
        + audit_wall_s
    )


def outside_stages(
    elapsed_s: float,
    docs,
    audit_wall_s: dict[int, float] | None = None,
    optimization_wall_s: float = 0.0,
) -> float:
    """Wall seconds of ``elapsed_s`` outside the stages of ``docs`` and the optimization.

    ``audit_wall_s``: cycle -> wall seconds of its audit job (the audit is a
    stage of its own; its cost is in the audit job's output, not the CycleDoc).
    """
    audits = audit_wall_s or {}
    stages = sum(stage_wall_seconds(d, audits.get(d.cycle, 0.0)) for d in docs)
    return elapsed_s - optimization_wall_s - stages
