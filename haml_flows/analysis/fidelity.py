"""The fidelity gate: does a HAML trajectory match pure AIMD from the same start?

A trajectory is reduced, over ``[0, window]``, to what the gate compares:
time-averaged bond counts (and their time series), partial RDFs, its
temperatures and the closest contact of each species pair. Against an
ensemble of pure-AIMD runs from the same optimized start with different
velocity seeds, HAML runs with the same seeds are **matched** when

- every time-averaged bond count of every HAML run lies within the AIMD
  seeds' range widened by one seed standard deviation;
- for every RDF pair, the overlap of each HAML run with the AIMD runs
  (averaged over the AIMD seeds) is at least the lowest AIMD-AIMD overlap
  minus 0.05;
- the mean temperature of every HAML run is within 5 % of the target;
- the audited force RMSE of every HAML run is at most the threshold;
- no HAML run brings a species pair closer than the AIMD ensemble ever did,
  less ``CONTACT_TOLERANCE`` (the project's own addition: "no two atoms
  closer than the reference engine lets them").

RDF overlap is ``1 - sum|g1 - g2| / sum(g1 + g2)`` (analysis.agreement).

How strict these are depends on the ensemble's size: a band drawn from three
seeds is narrow by chance often. :func:`reference_self_check` measures it on
the reference engine, judging each AIMD seed against the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from haml_flows.analysis.agreement import rdf_overlap, sampled_frames
from haml_flows.analysis.bonds import counts_from_pairs
from haml_flows.analysis.neighbors import frame_pairs, pair_key
from haml_flows.analysis.rdf import RdfAccumulator
from haml_flows.analysis.timeline import Frame
from haml_flows.spec import CONTACT_RANGE, CONTACT_TOLERANCE

# CONTACT_TOLERANCE: Angstrom below the AIMD ensemble's closest contact that a
# HAML run may reach; CONTACT_RANGE: pairs are searched up to here. The MLP-MD
# contact guard (mlpmd.contact_tolerance) holds a run to the same rule.

RDF_MARGIN = 0.05
TEMPERATURE_TOLERANCE = 0.05


@dataclass
class Measures:
    """What the gate compares, for one trajectory over ``[0, window_fs]``."""

    window_fs: float
    times_ps: list[float] = field(default_factory=list)
    bond_series: dict[str, list[int]] = field(default_factory=dict)
    r: np.ndarray | None = None
    rdf: dict[str, np.ndarray] = field(default_factory=dict)
    temperatures: list[float] = field(default_factory=list)
    contacts: dict[str, float] = field(default_factory=dict)

    @property
    def bonds(self) -> dict[str, float]:
        """Time-averaged bond count of each type."""
        return {k: float(np.mean(v)) for k, v in self.bond_series.items()}

    @property
    def mean_temperature(self) -> float:
        return float(np.mean(self.temperatures)) if self.temperatures else float("nan")


def measure(
    frames: Iterable,
    bond_cutoffs: dict[str, float],
    rdf_pairs: list[tuple[str, str]],
    window_fs: float,
    *,
    every_fs: float = 10.0,
    r_max: float = 6.0,
    n_bins: int = 120,
) -> Measures:
    """Reduce a time-ordered trajectory to the gate's measures, one frame per ``every_fs``."""
    out = Measures(window_fs=window_fs, bond_series={k: [] for k in bond_cutoffs})
    rdfs = RdfAccumulator(rdf_pairs, r_max=r_max, n_bins=n_bins)
    reach = max([CONTACT_RANGE, *bond_cutoffs.values()]) + 1e-6
    for frame in sampled_frames(frames, window_fs, every_fs):
        pairs = frame_pairs(frame, reach)
        for key, count in counts_from_pairs(pairs, bond_cutoffs).items():
            out.bond_series[key].append(count)
        symbols = np.asarray(frame.symbols)
        for i, j, d in zip(pairs.i, pairs.j, pairs.d):
            a, b = sorted((symbols[i], symbols[j]))
            key = pair_key(a, b)
            if d < out.contacts.get(key, np.inf):
                out.contacts[key] = float(d)
        rdfs.add(frame)
        out.times_ps.append(frame.time_ps)
        if frame.temperature is not None:
            out.temperatures.append(float(frame.temperature))
    if not out.times_ps:
        raise ValueError(f"no frame at or before {window_fs} fs")
    out.r, out.rdf = rdfs.r, rdfs.result()
    return out


@dataclass
class Criterion:
    """One line of the gate: what was compared, against what, and the verdict."""

    name: str
    passed: bool
    detail: str
    worst: float | None = None
    """How close to its limit the worst case came (positive: inside)."""
    runs_passed: list[bool] | None = None
    """Per judged run, in order: did it pass this criterion?"""


def _bonds(reference: list[Measures], haml: list[Measures]) -> list[Criterion]:
    out = []
    for key in reference[0].bond_series:
        ref = np.array([m.bonds[key] for m in reference])
        spread = float(np.std(ref, ddof=1)) if len(ref) > 1 else 0.0
        low, high = float(ref.min()) - spread, float(ref.max()) + spread
        values = [m.bonds[key] for m in haml]
        inside = [low - 1e-9 <= v <= high + 1e-9 for v in values]
        margin = min(min(v - low, high - v) for v in values)
        out.append(Criterion(
            name=f"bonds {key}",
            passed=all(inside),
            detail=f"HAML {', '.join(f'{v:.2f}' for v in values)}; AIMD "
            f"{', '.join(f'{v:.2f}' for v in ref)} -> allowed {low:.2f}-{high:.2f}",
            worst=margin,
            runs_passed=inside,
        ))
    return out


def _rdfs(reference: list[Measures], haml: list[Measures]) -> list[Criterion]:
    out = []
    for key in reference[0].rdf:
        among = [rdf_overlap(a.rdf[key], b.rdf[key]) for a, b in combinations(reference, 2)]
        floor = (min(among) if among else 1.0) - RDF_MARGIN
        values = [
            float(np.mean([rdf_overlap(h.rdf[key], a.rdf[key]) for a in reference]))
            for h in haml
        ]
        inside = [v >= floor - 1e-12 for v in values]
        out.append(Criterion(
            name=f"RDF {key}",
            passed=all(inside),
            detail=f"HAML-AIMD {', '.join(f'{v:.3f}' for v in values)}; AIMD-AIMD "
            f"min {floor + RDF_MARGIN:.3f} -> at least {floor:.3f}",
            worst=min(values) - floor,
            runs_passed=inside,
        ))
    return out


def _temperature(haml: list[Measures], target: float) -> Criterion:
    means = [m.mean_temperature for m in haml]
    deviation = [abs(t - target) / target for t in means]
    inside = [d <= TEMPERATURE_TOLERANCE for d in deviation]
    return Criterion(
        name="mean temperature",
        passed=all(inside),
        detail=f"HAML {', '.join(f'{t:.0f}' for t in means)} K; target {target:.0f} K "
        f"+- {100 * TEMPERATURE_TOLERANCE:.0f} %",
        worst=TEMPERATURE_TOLERANCE - max(deviation),
        runs_passed=inside,
    )


def _audit(audited: list[float | None], threshold: float) -> Criterion:
    known = [a for a in audited if a is not None]
    inside = [a is not None and a <= threshold for a in audited]
    return Criterion(
        name="audited force RMSE",
        passed=all(inside),
        detail=f"HAML {', '.join('n/a' if a is None else f'{a:.3f}' for a in audited)} "
        f"eV/A; at most {threshold:g}",
        worst=(threshold - max(known)) if known else None,
        runs_passed=inside,
    )


def _contacts(reference: list[Measures], haml: list[Measures]) -> Criterion:
    closest = {}
    for m in reference:
        for key, d in m.contacts.items():
            closest[key] = min(closest.get(key, np.inf), d)
    breaches, worst, inside = [], np.inf, []
    for m in haml:
        clear = True
        for key, d in m.contacts.items():
            limit = closest.get(key, CONTACT_RANGE) - CONTACT_TOLERANCE
            worst = min(worst, d - limit)
            if d < limit:
                clear = False
                breaches.append(f"{key} {d:.2f} A (AIMD {closest.get(key, np.inf):.2f})")
        inside.append(clear)
    return Criterion(
        name="closest contacts",
        passed=not breaches,
        detail="; ".join(sorted(set(breaches))) or "every pair at least the AIMD "
        f"ensemble's closest less {CONTACT_TOLERANCE} A",
        worst=float(worst) if np.isfinite(worst) else None,
        runs_passed=inside,
    )


def gate(
    reference: list[Measures],
    haml: list[Measures],
    audited: list[float | None],
    *,
    target_temperature: float,
    max_force_rmse: float,
) -> list[Criterion]:
    """Every criterion of the gate; the runs are matched when all pass."""
    if len(reference) < 2:
        raise ValueError("the reference ensemble needs at least 2 AIMD seeds")
    if not haml:
        raise ValueError("no HAML run to judge")
    return [
        *_bonds(reference, haml),
        *_rdfs(reference, haml),
        _temperature(haml, target_temperature),
        _audit(audited, max_force_rmse),
        _contacts(reference, haml),
    ]


@dataclass
class SelfCheck:
    """One structural criterion of the gate applied to the reference itself."""

    name: str
    passed: list[bool]
    """Per AIMD seed: did it pass, judged against the other seeds?"""

    @property
    def rate(self) -> float:
        return sum(self.passed) / len(self.passed)


def reference_self_check(reference: list[Measures], *,
                         target_temperature: float) -> list[SelfCheck]:
    """The gate's false-failure rate, measured on the reference engine.

    Each pure-AIMD seed is judged like a HAML run against the ensemble of the
    other seeds, on every criterion that compares trajectories (bond counts,
    RDFs, mean temperature, closest contacts). A criterion that pure AIMD
    fails on a new seed cannot tell a HAML run apart from AIMD; the last row,
    ``all``, is each seed passing every one of them at once.
    """
    if len(reference) < 3:
        raise ValueError("the self-check needs at least 3 AIMD seeds: each is judged "
                         "against an ensemble of at least 2 others")
    rows: dict[str, list[bool]] = {}
    for k, held_out in enumerate(reference):
        others = reference[:k] + reference[k + 1:]
        criteria = [*_bonds(others, [held_out]), *_rdfs(others, [held_out]),
                    _temperature([held_out], target_temperature),
                    _contacts(others, [held_out])]
        for criterion in criteria:
            rows.setdefault(criterion.name, []).append(criterion.passed)
        rows.setdefault("all", []).extend(runs_passing(criteria))
    return [SelfCheck(name, passed) for name, passed in rows.items()]


def runs_passing(criteria: list[Criterion]) -> list[bool]:
    """Per judged run: did it pass every criterion? (Compare with the self-check's
    ``all`` row: how often a held-out pure-AIMD seed does.)"""
    per_run = [c.runs_passed for c in criteria if c.runs_passed is not None]
    return [all(column) for column in zip(*per_run, strict=True)] if per_run else []


def audited_force_rmse(docs) -> float | None:
    """RMS over a run's cycles of their audited force RMSE (each audit's sampled frames)."""
    values = [d.audit_force_rmse for d in docs if d.audit_force_rmse is not None]
    return float(np.sqrt(np.mean(np.square(values)))) if values else None


__all__ = [
    "Criterion", "Frame", "Measures", "SelfCheck", "audited_force_rmse", "gate", "measure",
    "reference_self_check", "runs_passing",
]
