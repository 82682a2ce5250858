"""Cost per simulated ps of HAML and of AIMD, from a run's CycleDocs.

- HAML: CPU seconds of every stage of every cycle (AIMD + MTP training +
  MLP-MD + the audit's reference single points) divided by the run's total
  simulated ps.
- AIMD: CPU seconds of the AIMD segments divided by the AIMD ps of the same
  run: what pure AIMD would cost per ps on the same machine.
- speed-up = AIMD cost per ps / HAML cost per ps.

The one-off geometry optimisation is reported separately (``optimization_cpu_s``)
and not included: pure AIMD needs it as well. Costs are given in CPU seconds
and CPU hours per ps (the paper's unit).
"""

from __future__ import annotations

from haml_flows.schemas import CycleDoc, RunDoc


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def cost_summary(docs: list[CycleDoc], run: RunDoc | None = None) -> dict:
    aimd = sum(d.aimd_cost.cpu_seconds for d in docs)
    train = sum(d.training_cost.cpu_seconds for d in docs)
    mlpmd = sum(d.mlpmd_cost.cpu_seconds for d in docs)
    audit = sum(d.audit_cost.cpu_seconds for d in docs if d.audit_cost is not None)
    total_ps = docs[-1].cumulative_fs / 1000.0 if docs else 0.0
    aimd_ps = sum(d.aimd_fs for d in docs) / 1000.0
    mlpmd_ps = sum(d.mlpmd_fs for d in docs) / 1000.0
    haml_cpu = aimd + train + mlpmd + audit
    haml_per_ps = _ratio(haml_cpu, total_ps)
    aimd_per_ps = _ratio(aimd, aimd_ps)
    return {
        "cycles": len(docs),
        "total_ps": total_ps,
        "aimd_ps": aimd_ps,
        "mlpmd_ps": mlpmd_ps,
        "cpu_s": {"aimd": aimd, "training": train, "mlpmd": mlpmd, "audit": audit,
                  "haml": haml_cpu},
        "wall_s": {
            "aimd": sum(d.aimd_cost.wall_seconds for d in docs),
            "training": sum(d.training_cost.wall_seconds for d in docs),
            "mlpmd": sum(d.mlpmd_cost.wall_seconds for d in docs),
            "audit": sum(d.audit_cost.wall_seconds for d in docs if d.audit_cost is not None),
        },
        "optimization_cpu_s": run.optimization_cost.cpu_seconds if run else None,
        "haml_cpu_s_per_ps": haml_per_ps,
        "aimd_cpu_s_per_ps": aimd_per_ps,
        "haml_cpu_h_per_ps": haml_per_ps / 3600 if haml_per_ps is not None else None,
        "aimd_cpu_h_per_ps": aimd_per_ps / 3600 if aimd_per_ps is not None else None,
        "speedup": (
            aimd_per_ps / haml_per_ps if aimd_per_ps and haml_per_ps else None
        ),
    }
