"""The frontier: speed-up against each criterion of the fidelity gate, per settings tried.

Reads the verdicts bench/fidelity.py recorded in bench/gate_verdicts.json (one
record per system, settings, window and seeds) and draws, per system, the
speed-up of each tried setting against the margin of each group of criteria
(bond counts, RDF overlaps, mean temperature, audited force RMSE, closest
contacts; margin > 0: inside the limit). The table names the settings, their
AIMD share of the simulated time, the speed-up and the criteria that fail;
"binds" is the criterion that fails by the most at the fastest setting.

    python bench/frontier.py [--no-write]

Figures: docs/figures/frontier_<system>.png; the table goes into the
"Frontier" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SECTION = "## Frontier: speed-up against the gate's criteria"
FIGURES = ROOT / "docs/figures"

GROUPS = {
    "bond counts": ("bonds ", "time-averaged count inside the widened AIMD range (bonds)"),
    "RDF overlaps": ("RDF ", "overlap above the floor"),
    "mean temperature": ("mean temperature", "fraction of the target inside 5 %"),
    "audited force RMSE": ("audited force RMSE", "eV/A below the threshold"),
    "closest contacts": ("closest contacts", "A above the AIMD closest less 0.1 A"),
}


def margins(record: dict) -> dict[str, float | None]:
    """The worst margin of each group of criteria (None: not measured)."""
    out = {}
    for group, (prefix, _) in GROUPS.items():
        worst = [c["worst"] for c in record["criteria"]
                 if c["name"].startswith(prefix) and c.get("worst") is not None]
        out[group] = min(worst) if worst else None
    return out


def settings_label(record: dict) -> str:
    shown = {k: v for k, v in record["overrides"].items() if not k.startswith("stop.")}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "spec defaults"


def seeds_label(record: dict) -> str:
    """HAML seeds, and the AIMD ensemble's size when it is larger."""
    reference = len(record.get("reference_seeds") or record["seeds"])
    haml = len(record["seeds"])
    return str(haml) if reference == haml else f"{haml} (AIMD {reference})"


def binding(records: list[dict]) -> str:
    """The criterion that fails by the most at the fastest setting of a system."""
    fastest = max(records, key=lambda r: r["speedup"] or 0.0)
    failed = [c for c in fastest["criteria"] if not c["passed"] and c.get("worst") is not None]
    if not failed:
        return "none: the fastest setting tried is matched"
    worst = min(failed, key=lambda c: c["worst"])
    return f"{worst['name']} ({worst['detail']})"


def plot(system: str, records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(GROUPS), figsize=(3.2 * len(GROUPS), 3.4), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (group, (_, unit)) in zip(axes, GROUPS.items()):
        for i, record in enumerate(records):
            value = margins(record)[group]
            if value is None or record["speedup"] is None:
                continue
            ax.scatter(record["speedup"], value, color=colours[i % len(colours)],
                       marker="o" if record["matched"] else "x", s=40,
                       label=settings_label(record) if group == "bond counts" else None)
        ax.axhline(0.0, color="k", lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("speed-up over pure AIMD (x)")
        ax.set_ylabel(f"margin: {unit}", fontsize=8)
        ax.set_title(group, fontsize=9)
    axes[0].legend(fontsize=6, title="settings (o matched, x not)", title_fontsize=6)
    fig.suptitle(f"{records[0]['label']}: speed-up against the gate's criteria "
                 "(below the dashed line: fails)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(by_system: dict[str, list[dict]]) -> str:
    lines = [
        SECTION,
        "",
        "Command: `python bench/frontier.py`, from the verdicts bench/fidelity.py "
        "recorded (bench/gate_verdicts.json). Margin > 0: inside the limit; the "
        "columns give the worst case of each group of criteria over the seeds.",
        "",
    ]
    for system, records in by_system.items():
        lines += [
            f"**{records[0]['label']}** (binds: {binding(records)})",
            "",
            "| settings | window, seeds | AIMD share | speed-up | bonds | RDF | T | "
            "audited F-RMSE (eV/A) | contacts | verdict | date, commit, package tree |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in sorted(records, key=lambda r: r["speedup"] or 0.0):
            m = margins(r)
            cell = (lambda v, f=".2f": "n/a" if v is None else format(v, f))
            audited = ", ".join("n/a" if a is None else f"{a:.3f}" for a in r["audited"])
            failed = [c["name"] for c in r["criteria"] if not c["passed"]]
            share = r.get("aimd_share")
            lines.append(
                f"| {settings_label(r)} | {r['window_ps']:g} ps, {seeds_label(r)} "
                f"| {'n/a' if share is None else f'{100 * share:.0f} %'} "
                f"| {cell(r['speedup'], '.1f')}x | {cell(m['bond counts'])} "
                f"| {cell(m['RDF overlaps'], '.3f')} | {cell(m['mean temperature'], '.3f')} "
                f"| {audited} ({cell(m['audited force RMSE'], '+.3f')}) "
                f"| {cell(m['closest contacts'])} "
                f"| {'matched' if r['matched'] else 'fails: ' + ', '.join(failed)} "
                f"| {r['date']}, {r['commit']}, tree {str(r.get('code', 'n/a'))[:7]} |"
            )
        lines += ["", f"![frontier {system}](figures/frontier_{system}.png)", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from harness import gate_verdicts

    by_system: dict[str, list[dict]] = {}
    for record in gate_verdicts():
        by_system.setdefault(record["system"], []).append(record)
    if not by_system:
        raise SystemExit("no verdicts recorded: run bench/fidelity.py first")
    if not args.no_write:
        FIGURES.mkdir(parents=True, exist_ok=True)
        for system, records in by_system.items():
            plot(system, records, FIGURES / f"frontier_{system}.png")
    from perfdoc import publish

    publish(table(by_system), SECTION, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
