"""One streamed pass over a run, then PNG figures, an HTML page and a JSON summary.

``analyze_frames`` reduces any time-ordered stream of frames on the fly:
temperature and MSD every frame, bond counts and products on at most
``max_samples`` frames spread evenly in time, RDFs averaged over time windows around
the chosen times, similarity between the first and the last frame. Only a
handful of frames are kept (first, last, one per RDF time), so memory stays
bounded by the largest segment ``run_timeline`` holds.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from haml_flows.analysis.bonds import DEFAULT_CUTOFFS, counts_from_pairs
from haml_flows.analysis.cost import cost_summary
from haml_flows.analysis.neighbors import frame_pairs, parse_pair
from haml_flows.analysis.plotting import integer_ticks, jsonable, pyplot, save
from haml_flows.analysis.products import (
    DEFAULT_PRODUCTS,
    ProductRule,
    needed_cutoff,
    products_from_pairs,
)
from haml_flows.analysis.rdf import RdfAccumulator, first_peak
from haml_flows.analysis.similarity import similarity_details
from haml_flows.analysis.timeline import Frame, run_timeline, segments
from haml_flows.analysis.transport import (
    MsdAccumulator,
    diffusion_coefficient,
    diffusive_regime,
    nernst_einstein_conductivity,
)

FIGURES = {
    "temperature": "temperature.png",
    "simulated_time": "simulated_time.png",
    "cost": "cost.png",
    "bonds": "bonds.png",
    "products": "products.png",
    "rdf": "rdf.png",
    "msd": "msd.png",
    "similarity": "similarity.png",
    "audit": "audit.png",
    "gamma": "gamma.png",
    "learning_curve": "learning_curve.png",
}

#: what each figure shows, for the HTML page's captions
CAPTIONS = {
    "temperature": "Temperature of every stored frame over simulated time (AIMD orange, "
    "MLP-MD blue), the thermostat target as a line; AIMD segments shaded.",
    "simulated_time": "Simulated time per cycle, AIMD and MLP-MD stacked, and the run's "
    "total after each cycle.",
    "cost": "CPU hours per simulated ps of this run (HAML, measured) and of pure AIMD "
    "(estimated from this run's own AIMD segments), and CPU seconds per stage.",
    "bonds": "Bonds per element pair over simulated time (cutoffs in the title).",
    "products": "Reaction products (anions coordinated only by Li) over simulated time.",
    "rdf": "Partial radial distribution functions, each averaged over the frames of a "
    "time window (the run's first and last by default; the legend gives the window "
    "and the number of frames).",
    "msd": "Mean-square displacement of the electrolyte's Li and its linear fit.",
    "similarity": "Structure similarity between the optimized start and the last frame, "
    "overall and per species (1: unchanged).",
    "audit": "Audited force error of the MLP on its own MLP-MD frames against the "
    "reference engine: against the grade γ, and over time.",
    "gamma": "Extrapolation grade γ of each cycle's MLP-MD segment (largest and at the "
    "stop) against γ_break.",
    "learning_curve": "Held-out force and energy RMSE of each cycle's MTP against its "
    "training-set size.",
}


@dataclass
class AnalysisOptions:
    """What to compute; None means the defaults described per field."""

    #: RDF pairs, e.g. [('Li', 'S')]; default: the bond pairs present, plus Li-Li
    rdf_pairs: list[tuple[str, str]] | None = None
    #: times (ps) for the RDFs, nearest frame each; default: first and last frame
    rdf_times_ps: list[float] | None = None
    rdf_r_max: float = 6.0
    rdf_bins: int = 120
    #: each RDF averages the frames within this window (ps) around its time
    #: (the first and the last window of the run by default); a window with
    #: no frame falls back to the nearest frame
    rdf_window_ps: float = 0.05
    #: bond cutoffs {'P-S': 2.5, ...}; default DEFAULT_CUTOFFS
    cutoffs: dict[str, float] | None = None
    products: list[ProductRule] = field(default_factory=lambda: list(DEFAULT_PRODUCTS))
    #: frames on which bonds and products are evaluated, spread evenly in time
    max_samples: int = 400
    msd_species: str = "Li"
    msd_fit_start: float = 0.1
    #: follow only the electrolyte's ions (leave out the metal slab's)
    msd_electrolyte_only: bool = True


class _Result(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)


class TemperatureSeries(_Result):
    """The temperature of every frame that has one."""

    time_ps: list[float] = Field(description="Simulated time of each value, ps.")
    T: list[float] = Field(description="Temperature, K.")
    cycle: list[int] = Field(description="Cycle of each value.")
    stage: list[str] = Field(description="'aimd', 'mlpmd' or 'static'.")
    mean: float = Field(description="Mean temperature, K (NaN without values).")


class BondAnalysis(_Result):
    """Bond counts per element pair over the sampled frames."""

    cutoffs: dict[str, float] = Field(description="Bond cutoff per pair, Angstrom.")
    series: dict[str, list[int]] = Field(description="Count per pair at each sample.")
    initial: dict[str, int] = Field(description="Counts in the first frame.")
    final: dict[str, int] = Field(description="Counts in the last frame.")
    change: dict[str, int] = Field(description="Final minus initial count per pair.")


class ProductAnalysis(_Result):
    """Reaction products (anions coordinated only by Li) over the sampled frames."""

    rules: list[dict] = Field(description="The product rules applied.")
    series: dict[str, list[int]] = Field(description="Formula units per product per sample.")
    clusters_final: dict[str, int] = Field(description="Clusters per product, last frame.")
    initial: dict[str, int] = Field(description="Formula units in the first frame.")
    final: dict[str, int] = Field(description="Formula units in the last frame.")
    formed: dict[str, int] = Field(description="Final minus initial formula units.")


class RdfFrame(_Result):
    """The RDFs of one frame."""

    time_ps: float = Field(description="Simulated time the RDFs stand for, ps.")
    g: dict[str, np.ndarray] = Field(description="g(r) per pair on RdfAnalysis.r.")
    n_frames: int = Field(1, description="Frames averaged.")
    window_ps: tuple[float, float] | None = Field(
        None, description="Time window of the averaged frames, ps (None: one frame).")
    first_peak: dict[str, float] = Field(description="First peak position per pair, A.")


class RdfAnalysis(_Result):
    """Radial distribution functions at the chosen times."""

    r: np.ndarray = Field(description="Bin centres, Angstrom.")
    pairs: list[str] = Field(description="Element pairs, e.g. 'Li-S'.")
    frames: list[RdfFrame] = Field(description="One entry per chosen time.")


class MsdAnalysis(_Result):
    """Mean-square displacement of one species, its diffusion and conductivity."""

    species: str = Field(description="Element whose MSD is followed.")
    time_ps: np.ndarray = Field(description="Time of each MSD value, ps.")
    msd_A2: np.ndarray = Field(description="MSD, Angstrom^2.")
    fit_slope_A2_per_fs: float = Field(description="Slope of the linear fit.")
    fit_intercept_A2: float = Field(description="Intercept of the linear fit.")
    fit_start_fraction: float = Field(description="Fraction of the run before the fit.")
    n_ions: int = Field(description="Ions of the species followed (the electrolyte's).")
    n_excluded: int = Field(
        0, description="Ions of the species left out: the metal's (no other element "
        "within transport.CONTACT_CUTOFF at the start).")
    diffusive: bool = Field(
        False, description="The MSD shows a diffusive regime (transport.diffusive_regime); "
        "D and the conductivity are NaN otherwise.")
    regime: str = Field("", description="Why the run is or is not diffusive, in numbers.")
    volume_A3: float | None = Field(description="Cell volume, Angstrom^3.")
    diffusion_cm2_s: float = Field(description="Diffusion coefficient, cm^2/s.")
    conductivity_S_cm: float = Field(description="Nernst-Einstein conductivity, S/cm.")
    conductivity_temperature_K: float = Field(description="Temperature it assumes, K.")


class CycleTiming(_Result):
    """Per-cycle simulated times, from the CycleDocs."""

    cycle: list[int] = Field(description="Cycle index.")
    cumulative_ps: list[float] = Field(description="Simulated time after the cycle, ps.")
    aimd_fs: list[float] = Field(description="AIMD time of the cycle, fs.")
    mlpmd_fs: list[float] = Field(description="MLP-MD time of the cycle, fs.")
    stop_reason: list[str] = Field(description="Why the cycle's MLP-MD ended.")
    gamma_max: list[float] = Field(
        default_factory=list, description="Largest grade of the cycle's MLP-MD segment.")
    gamma_at_stop: list[float] = Field(
        default_factory=list, description="Grade at the segment's last step.")
    training_set_size: list[int] = Field(
        default_factory=list, description="Frames the cycle's MTP was trained on.")
    force_rmse: list[float] = Field(
        default_factory=list, description="Held-out force RMSE of the cycle's MTP, eV/Å.")
    energy_rmse: list[float] = Field(
        default_factory=list, description="Held-out energy RMSE of the cycle's MTP, eV/atom.")
    continued: list[bool] = Field(
        default_factory=list, description="Cycle continued a trusted segment (no training).")


class AuditAnalysis(_Result):
    """The MLP's error along its own MLP-MD (the audits) and what the guards did."""

    time_ps: list[float] = Field(description="Simulated time of each audited frame, ps.")
    cycle: list[int] = Field(description="Cycle of each audited frame.")
    kind: list[str] = Field(
        description="'sample' (the audit's numbers), 'selected', or 'check' (an "
        "in-segment reference check)."
    )
    gamma: list[float | None] = Field(description="Grade of each audited frame.")
    force_rmse: list[float] = Field(description="Force RMSE of each frame, eV/Angstrom.")
    force_max_error: list[float] = Field(description="Largest force error, eV/Angstrom.")
    cycle_force_rmse: dict[int, float] = Field(
        description="Cycle -> the audit's force RMSE (sampled frames), eV/Angstrom."
    )
    failed: list[int] = Field(description="Cycles whose audit failed.")
    max_force_rmse: float = Field(description="The audit's threshold, eV/Angstrom.")
    gamma_break: float = Field(description="The run's gamma_break.")
    guards: dict[str, int] = Field(
        description="Guard handler -> cycles whose MLP-MD it stopped."
    )


class RunAnalysis(_Result):
    """One streamed pass over a run's frames, and (for a stored run) its cost."""

    n_frames: int = Field(description="Frames streamed.")
    n_samples: int = Field(description="Frames on which bonds and products were counted.")
    first_time_ps: float = Field(description="Time of the first frame, ps.")
    last_time_ps: float = Field(description="Time of the last frame, ps.")
    formula: str = Field(description="Reduced formula of the last frame.")
    n_atoms: int = Field(description="Atoms per frame.")
    temperature: TemperatureSeries = Field(description="Temperatures over time.")
    samples_time_ps: list[float] = Field(description="Times of the sampled frames, ps.")
    bonds: BondAnalysis = Field(description="Bond counts.")
    products: ProductAnalysis = Field(description="Reaction products.")
    rdf: RdfAnalysis = Field(description="Radial distribution functions.")
    similarity: dict = Field(description="First vs last frame (analysis.similarity).")
    msd: MsdAnalysis = Field(description="Diffusion and conductivity.")
    run_id: str | None = Field(None, description="Run analysed; None for a bare stream.")
    name: str | None = Field(None, description="Spec name of the run.")
    cost: dict | None = Field(None, description="analysis.cost.cost_summary of the run.")
    cycles: CycleTiming | None = Field(None, description="Per-cycle times.")
    audit: AuditAnalysis | None = Field(
        None, description="Audited errors and guard firings (a stored run with audits)."
    )
    parameters: dict = Field(
        default_factory=dict,
        description="The run's spec parameters a reader needs: engines, temperature, "
        "gamma_break, MTP level, steps.",
    )
    segments: list[dict] = Field(
        default_factory=list, description="Where each segment sits in time."
    )


def _copy(frame: Frame) -> Frame:
    return replace(frame, frac_coords=np.array(frame.frac_coords), _atoms=None)


def _rdf_pairs(options: AnalysisOptions, cutoffs: dict, symbols: set) -> list[tuple]:
    if options.rdf_pairs:
        return [tuple(p) for p in options.rdf_pairs]
    pairs = [parse_pair(k) for k in cutoffs if set(parse_pair(k)) <= symbols]
    if "Li" in symbols:
        pairs.append(("Li", "Li"))
    return pairs


class _RdfWindow:
    """The frames of one RDF time: those within its window, else the nearest one."""

    def __init__(self, time_fs: float, lo: float, hi: float) -> None:
        self.time_fs, self.lo, self.hi = time_fs, lo, hi
        self.acc: RdfAccumulator | None = None
        self.nearest: tuple[float, Frame] | None = None

    def offer(self, frame: Frame, pairs: list[tuple], options: AnalysisOptions) -> None:
        if self.lo <= frame.time_fs <= self.hi:
            if self.acc is None:
                self.acc = RdfAccumulator(pairs, options.rdf_r_max, options.rdf_bins)
            self.acc.add(frame)
        dist = abs(frame.time_fs - self.time_fs)
        if self.acc is None and (self.nearest is None or dist < self.nearest[0]):
            self.nearest = (dist, _copy(frame))

    def result(self, pairs: list[tuple], options: AnalysisOptions) -> tuple[RdfFrame, np.ndarray]:
        acc, window = self.acc, (self.lo / 1000, self.hi / 1000)
        if acc is None:
            acc = RdfAccumulator(pairs, options.rdf_r_max, options.rdf_bins)
            acc.add(self.nearest[1])
            window = None
        g = acc.result()
        return RdfFrame(
            time_ps=self.time_fs / 1000 if window else self.nearest[1].time_ps, g=g,
            first_peak={k: first_peak(acc.r, v) for k, v in g.items()},
            n_frames=acc.n_frames, window_ps=window,
        ), acc.r


class CountSampler:
    """Bond counts and reaction products on frames spread evenly in time.

    ``offer`` counts a frame when ``total_fs / max_samples`` has passed since
    the last counted one (every frame when ``total_fs`` is unknown); ``finish``
    counts the stream's last frame if it was not. One neighbour list per
    counted frame serves both.
    """

    def __init__(
        self,
        cutoffs: dict[str, float],
        products: list[ProductRule],
        total_fs: float | None = None,
        max_samples: int = 400,
    ) -> None:
        self.cutoffs, self.rules = cutoffs, products
        self.spacing = (total_fs / max_samples) if total_fs else 0.0
        self.next_fs = -np.inf
        self.times_fs: list[float] = []
        self.bonds: list[dict[str, int]] = []
        self.products: list[dict[str, dict[str, int]]] = []
        self._pair_cutoff: float | None = None

    def count(self, frame: Frame) -> None:
        """Count bonds and products of ``frame`` now."""
        if self._pair_cutoff is None:
            self._pair_cutoff = max(
                max(self.cutoffs.values(), default=0.0),
                needed_cutoff(self.rules, frame.symbols),
            )
        pairs = frame_pairs(frame, self._pair_cutoff)
        self.times_fs.append(frame.time_fs)
        self.bonds.append(counts_from_pairs(pairs, self.cutoffs))
        self.products.append(products_from_pairs(pairs, self.rules))

    def offer(self, frame: Frame) -> None:
        """Count ``frame`` if a sample is due at its time."""
        if frame.time_fs >= self.next_fs:
            self.count(frame)
            self.next_fs = frame.time_fs + self.spacing

    def finish(self, last: Frame) -> None:
        """Count the last frame of the stream unless it was counted."""
        if not self.times_fs or self.times_fs[-1] != last.time_fs:
            self.count(last)

    @property
    def times_ps(self) -> list[float]:
        return [t / 1000 for t in self.times_fs]

    def bond_analysis(self) -> BondAnalysis:
        initial, final = self.bonds[0], self.bonds[-1]
        return BondAnalysis(
            cutoffs=self.cutoffs,
            series={k: [b[k] for b in self.bonds] for k in self.cutoffs},
            initial=initial,
            final=final,
            change={k: final[k] - initial[k] for k in self.cutoffs},
        )

    def product_analysis(self) -> ProductAnalysis:
        series = self.products
        initial = {k: v["units"] for k, v in series[0].items()}
        final = {k: v["units"] for k, v in series[-1].items()}
        return ProductAnalysis(
            rules=[rule.__dict__ for rule in self.rules],
            series={k: [p[k]["units"] for p in series] for k in initial},
            clusters_final={k: v["clusters"] for k, v in series[-1].items()},
            initial=initial,
            final=final,
            formed={k: final[k] - initial[k] for k in initial},
        )


def _msd(msd: MsdAccumulator, options: AnalysisOptions, mean_t: float) -> MsdAnalysis:
    t_msd, y_msd = msd.result()
    d_cm2, slope, intercept = diffusion_coefficient(t_msd, y_msd, options.msd_fit_start)
    diffusive, regime = diffusive_regime(t_msd, y_msd, options.msd_fit_start)
    if not diffusive:
        d_cm2 = float("nan")
    return MsdAnalysis(
        n_excluded=msd.n_excluded,
        diffusive=diffusive,
        regime=regime,
        species=options.msd_species,
        time_ps=t_msd / 1000,
        msd_A2=y_msd,
        fit_slope_A2_per_fs=slope,
        fit_intercept_A2=intercept,
        fit_start_fraction=options.msd_fit_start,
        n_ions=msd.n_ions,
        volume_A3=msd.volume,
        diffusion_cm2_s=d_cm2,
        conductivity_S_cm=nernst_einstein_conductivity(
            d_cm2, msd.n_ions, msd.volume or 0.0, mean_t
        ),
        conductivity_temperature_K=mean_t,
    )


def analyze_frames(
    frames: Iterable[Frame],
    options: AnalysisOptions | None = None,
    total_fs: float | None = None,
) -> RunAnalysis:
    """Reduce a time-ordered stream of frames in one pass."""
    options = options or AnalysisOptions()
    cutoffs = dict(DEFAULT_CUTOFFS if options.cutoffs is None else options.cutoffs)
    counts = CountSampler(cutoffs, options.products, total_fs, options.max_samples)
    first: Frame | None = None
    last: Frame | None = None
    temps: list[tuple[float, float, int, str]] = []
    msd = MsdAccumulator(options.msd_species, electrolyte_only=options.msd_electrolyte_only)
    rdf_targets = [t * 1000.0 for t in (options.rdf_times_ps or [])]
    half = options.rdf_window_ps * 500.0  # fs
    windows: list[_RdfWindow] = []
    rdf_pairs: list[tuple] | None = None
    n_frames = 0

    for frame in frames:
        n_frames += 1
        if first is None:
            first = _copy(frame)
        if frame.temperature is not None:
            temps.append((frame.time_fs, frame.temperature, frame.cycle, frame.stage))
        msd.add(frame)
        counts.offer(frame)
        if rdf_pairs is None:
            rdf_pairs = _rdf_pairs(options, cutoffs, set(frame.symbols))
            t0, end = frame.time_fs, total_fs
            if rdf_targets:
                windows = [_RdfWindow(t, t - half, t + half) for t in rdf_targets]
            else:  # the run's first and last windows (the last one needs the end)
                windows = [_RdfWindow(t0, t0, t0 + 2 * half)]
                if end is not None and end > t0:
                    windows.append(_RdfWindow(end, max(t0, end - 2 * half), end))
        for window in windows:
            window.offer(frame, rdf_pairs, options)
        last = frame
    if first is None:
        raise ValueError("no frames to analyse")
    last = _copy(last)
    counts.finish(last)

    if not rdf_targets and len(windows) == 1 and n_frames > 1:  # no end given: last frame
        windows.append(_RdfWindow(last.time_fs, np.inf, np.inf))
        windows[-1].offer(last, rdf_pairs, options)
    rdf_results = [w.result(rdf_pairs, options) for w in windows]
    mean_t = float(np.mean([t[1] for t in temps])) if temps else float("nan")
    return RunAnalysis(
        n_frames=n_frames,
        n_samples=len(counts.times_fs),
        first_time_ps=first.time_ps,
        last_time_ps=last.time_ps,
        formula=last.to_structure().composition.reduced_formula,
        n_atoms=len(last.symbols),
        temperature=TemperatureSeries(
            time_ps=[t[0] / 1000 for t in temps],
            T=[t[1] for t in temps],
            cycle=[t[2] for t in temps],
            stage=[t[3] for t in temps],
            mean=mean_t,
        ),
        samples_time_ps=counts.times_ps,
        bonds=counts.bond_analysis(),
        products=counts.product_analysis(),
        rdf=RdfAnalysis(r=rdf_results[0][1], pairs=[f"{a}-{b}" for a, b in rdf_pairs],
                        frames=[f for f, _ in rdf_results]),
        similarity=similarity_details(first, last),
        msd=_msd(msd, options, mean_t),
    )


def run_parameters(spec: dict) -> dict:
    """What a figure or a page must state about the run, from its resolved spec."""
    from importlib.metadata import PackageNotFoundError, version

    ref, mtp, md = (spec.get(k) or {} for k in ("reference", "mtp", "mlpmd"))
    try:
        package = version("haml-flows")
    except PackageNotFoundError:  # a source tree that is not installed
        package = "unknown"
    return {
        "reference engine": ref.get("engine"),
        "temperature (K)": ref.get("temperature"),
        "AIMD steps per cycle": ref.get("steps"),
        "AIMD time step (fs)": ref.get("time_step"),
        "MTP level": mtp.get("level"),
        "MTP cutoff (Å)": mtp.get("cutoff"),
        "MLP-MD time step (fs)": md.get("time_step"),
        "MLP-MD max steps": md.get("max_steps"),
        "γ_break": md.get("gamma_break"),
        "haml-flows version": package,
    }


def check_options(options: AnalysisOptions | None, run, total_ps: float) -> None:
    """Refuse RDF pairs of elements the run does not hold and times outside it.

    An RDF of an absent pair would be drawn empty, and a time past the end
    silently moved to the last frame; both are refused with what the run has.
    """
    if options is None:
        return
    if options.rdf_pairs and run is not None:
        species = {el.symbol for el in run.structure.composition.elements}
        absent = [f"{a}-{b}" for a, b in options.rdf_pairs if not {a, b} <= species]
        if absent:
            raise ValueError(
                f"RDF pair {', '.join(absent)}: not in run {run.run_id} "
                f"({run.formula}; elements {', '.join(sorted(species))})"
            )
    outside = [t for t in options.rdf_times_ps or [] if not 0.0 <= t <= total_ps + 1e-9]
    if outside:
        raise ValueError(
            f"RDF time {', '.join(f'{t:g}' for t in outside)} ps: outside the run "
            f"(0 to {total_ps:.3f} ps)"
        )


def analyze_run(store, run_id: str, options: AnalysisOptions | None = None) -> RunAnalysis:
    """Stream a stored run once and add its cost and cycle timing."""
    from haml_flows.queries import cycle_docs, run_doc

    docs = cycle_docs(store, run_id)
    if not docs:
        raise KeyError(f"no cycles stored for run {run_id!r}")
    run = run_doc(store, run_id)
    check_options(options, run, docs[-1].cumulative_ps)
    segs = segments(store, run_id, docs)
    result = analyze_frames(
        run_timeline(store, run_id, segment_list=segs), options, docs[-1].cumulative_fs
    )
    return result.model_copy(
        update={
            "run_id": run_id,
            "name": run.name if run else run_id,
            "cost": cost_summary(docs, run),
            "cycles": cycle_timing(docs),
            "parameters": run_parameters(run.spec if run else {}),
            "segments": [s.__dict__ for s in segs],
            "audit": audit_analysis(store, docs, run.spec if run else {}),
        }
    )


def cycle_timing(docs) -> CycleTiming:
    """The per-cycle series of a run's CycleDocs (in cycle order)."""
    return CycleTiming(
        cycle=[d.cycle for d in docs],
        cumulative_ps=[d.cumulative_ps for d in docs],
        aimd_fs=[d.aimd_fs for d in docs],
        mlpmd_fs=[d.mlpmd_fs for d in docs],
        stop_reason=[d.stop_reason for d in docs],
        gamma_max=[d.gamma_max for d in docs],
        gamma_at_stop=[d.gamma_at_stop for d in docs],
        training_set_size=[d.training_set_size for d in docs],
        force_rmse=[d.force_rmse for d in docs],
        energy_rmse=[d.energy_rmse for d in docs],
        continued=[bool(d.continued) for d in docs],
    )


def audit_analysis(store, docs, spec: dict) -> AuditAnalysis:
    """Every audited frame of a run's cycles, at its simulated time, and the guards' tally."""
    from haml_flows.spec import AuditSpec, MlpMdSpec

    rows: dict[str, list] = {k: [] for k in (
        "time_ps", "cycle", "kind", "gamma", "force_rmse", "force_max_error"
    )}
    mlpmd = spec.get("mlpmd") or {}
    time_step = mlpmd.get("time_step", MlpMdSpec().time_step)
    for doc in docs:
        if doc.audit_job is None:
            continue
        output = store.get_output(doc.audit_job)
        # a segment rolled back to its start kept no step: the spec's time step then
        dt = doc.mlpmd_fs / doc.mlpmd_steps if doc.mlpmd_steps else time_step
        start_fs = doc.cumulative_fs - doc.mlpmd_fs
        for frame in output.get("frames") or []:
            rows["time_ps"].append((start_fs + frame["step"] * dt) / 1000.0)
            rows["cycle"].append(doc.cycle)
            for key in ("kind", "gamma", "force_rmse", "force_max_error"):
                rows[key].append(frame[key])
        for check in doc.reference_checks:
            if check.force_rmse is None:
                continue
            rows["time_ps"].append((start_fs + check.step * dt) / 1000.0)
            rows["cycle"].append(doc.cycle)
            rows["kind"].append("check")
            rows["gamma"].append(check.gamma)
            rows["force_rmse"].append(check.force_rmse)
            rows["force_max_error"].append(check.force_max_error)
    guards: dict[str, int] = {}
    for doc in docs:
        for name in {c.handler for c in doc.mlpmd_collapse}:
            guards[name] = guards.get(name, 0) + 1
        if doc.stop_reason == "reference_check":
            guards["ReferenceCheck"] = guards.get("ReferenceCheck", 0) + 1
    audit = AuditSpec(**(spec.get("audit") or {}))
    return AuditAnalysis(
        **rows,
        cycle_force_rmse={
            d.cycle: d.audit_force_rmse for d in docs if d.audit_force_rmse is not None
        },
        failed=[d.cycle for d in docs if d.audit_passed is False],
        max_force_rmse=audit.max_force_rmse,
        gamma_break=mlpmd.get("gamma_break", MlpMdSpec().gamma_break),
        guards=guards,
    )


# ---------------------------------------------------------------- figures


def _series_figure(ts, series_by_key: dict, segs, ylabel: str, title: str, path) -> None:
    """Counts over simulated time, one line per non-zero series, cycles marked."""
    fig, ax = pyplot().subplots(figsize=(8, 3.6))
    for key, series in series_by_key.items():
        if any(series):
            ax.plot(ts, series, "-", label=key)
    _mark_cycles(ax, segs)
    ax.set_xlabel("simulated time (ps)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(integer_ticks())
    ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, ncol=2)
    save(fig, path)


def _mark_cycles(ax, segs: list[dict]) -> None:
    """Cycle starts as dashed lines, AIMD segments shaded."""
    for s in segs:
        if s["stage"] == "aimd":
            ax.axvspan(s["start_fs"] / 1000, s["end_fs"] / 1000, color="tab:orange",
                       alpha=0.12, lw=0)
            ax.axvline(s["start_fs"] / 1000, color="grey", ls="--", lw=0.7)


def write_figures(result: RunAnalysis, out_dir: Path) -> dict[str, str]:
    """All figures of one run; returns {key: file name}."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    segs = result.segments
    written = {}

    # temperature
    fig, ax = plt.subplots(figsize=(8, 3.6))
    temp = result.temperature
    t = np.asarray(temp.time_ps)
    T = np.asarray(temp.T)
    stage = np.asarray(temp.stage)
    for name, colour, label in (("aimd", "tab:orange", "AIMD"), ("mlpmd", "tab:blue", "MLP-MD"),
                                ("static", "k", "frames")):
        m = stage == name
        if m.any():
            ax.plot(t[m], T[m], ".", ms=3, color=colour, label=label)
    if len(t):
        ax.plot(t, T, "-", lw=0.5, color="grey", alpha=0.6)
    target = result.parameters.get("temperature (K)")
    if target:
        ax.axhline(target, color="k", lw=1, label=f"target {target:g} K")
    _mark_cycles(ax, segs)
    ax.set_xlabel("simulated time (ps)")
    ax.set_ylabel("temperature (K)")
    ax.set_ylim(bottom=0)
    ax.set_title("Temperature; dashed lines: cycle starts, shaded: AIMD")
    ax.legend(loc="best", fontsize=8)
    save(fig, out_dir / FIGURES["temperature"])
    written["temperature"] = FIGURES["temperature"]

    # simulated time vs cycle
    cyc = result.cycles
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if cyc:
        aimd = np.asarray(cyc.aimd_fs) / 1000.0
        mlpmd = np.asarray(cyc.mlpmd_fs) / 1000.0
        ax.bar(cyc.cycle, aimd, color="tab:orange", label="AIMD")
        ax.bar(cyc.cycle, mlpmd, bottom=aimd, color="tab:blue", label="MLP-MD")
        total = ax.twinx()
        total.plot(cyc.cycle, cyc.cumulative_ps, "k.-", lw=1, label="total")
        total.set_ylabel("total simulated time (ps)")
        total.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8)
    ax.xaxis.set_major_locator(integer_ticks())
    ax.set_xlabel("cycle")
    ax.set_ylabel("simulated time per cycle (ps)")
    ax.set_title("Simulated time per cycle")
    save(fig, out_dir / FIGURES["simulated_time"])
    written["simulated_time"] = FIGURES["simulated_time"]

    # cost
    cost = result.cost
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.6))
    if cost:
        vals = [cost["haml_cpu_h_per_ps"] or 0.0, cost["aimd_cpu_h_per_ps"] or 0.0]
        ax1.bar(["HAML\n(measured)", "pure AIMD\n(estimated)"], vals,
                color=["tab:blue", "tab:orange"], hatch=["", "//"])
        ax1.set_ylabel("CPU hours per simulated ps")
        sp = cost["speedup"]
        ax1.set_title(f"Cost; speed-up {sp:.1f}x" if sp else "Cost")
        stages = ["aimd", "training", "mlpmd", "audit"]
        ax2.bar(stages, [cost["cpu_s"].get(s, 0.0) for s in stages],
                color=["tab:orange", "tab:green", "tab:blue", "tab:purple"])
        ax2.set_ylabel("CPU seconds")
        ax2.set_title("CPU time per stage")
    save(fig, out_dir / FIGURES["cost"])
    written["cost"] = FIGURES["cost"]

    ts = result.samples_time_ps
    cutoffs = ", ".join(f"{k} {v:g}" for k, v in result.bonds.cutoffs.items())
    for key, ylabel, title in (
        ("bonds", "bond count", f"Bond counts (cutoffs in Å: {cutoffs})"),
        ("products", "formula units", "Reaction products (anions coordinated only by Li)"),
    ):
        _series_figure(ts, getattr(result, key).series, segs, ylabel, title, out_dir / FIGURES[key])
        written[key] = FIGURES[key]

    # RDF
    rdf = result.rdf
    n = max(len(rdf.pairs), 1)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.7 * rows), squeeze=False)
    for k, key in enumerate(rdf.pairs):
        ax = axes[k // cols][k % cols]
        for fr in rdf.frames:
            label = (f"{fr.window_ps[0]:.3g}–{fr.window_ps[1]:.3g} ps, {fr.n_frames} frames"
                     if fr.window_ps else f"{fr.time_ps:.3g} ps, 1 frame")
            ax.plot(rdf.r, fr.g[key], lw=1, label=label)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("r (Å)", fontsize=8)
        ax.set_ylabel("g(r)", fontsize=8)
        ax.legend(fontsize=7)
    for k in range(len(rdf.pairs), rows * cols):
        axes[k // cols][k % cols].axis("off")
    save(fig, out_dir / FIGURES["rdf"])
    written["rdf"] = FIGURES["rdf"]

    # MSD
    msd = result.msd
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    tm = np.asarray(msd.time_ps)
    ax.plot(tm, msd.msd_A2, "-", label=f"{msd.species} MSD ({msd.n_ions} ions of the "
            "electrolyte)")
    if msd.diffusive and np.isfinite(msd.fit_slope_A2_per_fs):
        ax.plot(tm, msd.fit_slope_A2_per_fs * tm * 1000 + msd.fit_intercept_A2,
                "--", label=f"fit: D = {msd.diffusion_cm2_s:.2g} cm²/s")
    elif msd.regime:
        ax.text(0.02, 0.95, msd.regime, transform=ax.transAxes, fontsize=7, va="top",
                wrap=True)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.set_title("Mean-square displacement")
    ax.legend(fontsize=8)
    save(fig, out_dir / FIGURES["msd"])
    written["msd"] = FIGURES["msd"]

    # similarity
    sim = result.similarity
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    labels = ["all"] + list(sim["per_species"])
    values = [sim["similarity"]] + list(sim["per_species"].values())
    ax.bar(labels, values, color=["k"] + ["tab:blue"] * (len(labels) - 1))
    ax.set_ylim(0, 1.05)
    ax.axhline(1.0, color="grey", lw=0.7, ls="--")
    ax.set_ylabel("similarity (initial vs final)")
    ax.set_title(f"Structure similarity {sim['similarity']:.4f}")
    save(fig, out_dir / FIGURES["similarity"])
    written["similarity"] = FIGURES["similarity"]

    if result.audit is not None and result.audit.force_rmse:
        _audit_figure(result.audit, out_dir / FIGURES["audit"])
        written["audit"] = FIGURES["audit"]
    if cyc:
        _gamma_figure(cyc, result.parameters.get("γ_break"), out_dir / FIGURES["gamma"])
        written["gamma"] = FIGURES["gamma"]
        _learning_figure(cyc, out_dir / FIGURES["learning_curve"])
        written["learning_curve"] = FIGURES["learning_curve"]
    return written


def _gamma_figure(cyc: CycleTiming, gamma_break: float | None, path: Path) -> None:
    """γ per cycle's segment (largest, at the stop) with γ_break; log axis."""
    fig, ax = pyplot().subplots(figsize=(6, 3.6))
    ran = [i for i, c in enumerate(cyc.cycle) if cyc.gamma_max]
    if ran:
        x = np.asarray(cyc.cycle)
        ax.plot(x, cyc.gamma_max, "o", color="tab:red", label="largest γ")
        ax.plot(x, cyc.gamma_at_stop, "x", color="k", label="γ at the stop")
    if gamma_break:
        ax.axhline(gamma_break, color="tab:red", ls="--", lw=1,
                   label=f"γ_break {gamma_break:g}")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(integer_ticks())
    ax.set_xlabel("cycle")
    ax.set_ylabel("extrapolation grade γ")
    ax.set_title("Grade of each MLP-MD segment")
    ax.legend(fontsize=8)
    save(fig, path)


def _learning_figure(cyc: CycleTiming, path: Path) -> None:
    """Held-out force and energy RMSE against training-set size (trained cycles only)."""
    fig, ax = pyplot().subplots(figsize=(6, 3.6))
    trained = [i for i, c in enumerate(cyc.continued or [False] * len(cyc.cycle)) if not c]
    if trained and cyc.training_set_size:
        n = np.asarray(cyc.training_set_size)[trained]
        ax.plot(n, np.asarray(cyc.force_rmse)[trained], "o-", color="tab:blue",
                label="force RMSE (eV/Å)")
        energy = ax.twinx()
        energy.plot(n, 1000 * np.asarray(cyc.energy_rmse)[trained], "s--",
                    color="tab:green", label="energy RMSE (meV/atom)")
        energy.set_ylabel("held-out energy RMSE (meV/atom)", color="tab:green")
        energy.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()
        more = energy.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8)
    ax.set_xlabel("training-set size (frames)")
    ax.set_ylabel("held-out force RMSE (eV/Å)", color="tab:blue")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title("Learning curve: error of each cycle's MTP")
    save(fig, path)


def _audit_figure(audit: AuditAnalysis, path: Path) -> None:
    """Audited force error against the grade (the switching rule's calibration) and in time."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    kinds = np.asarray(audit.kind)
    gamma = np.asarray([g if g is not None else np.nan for g in audit.gamma], dtype=float)
    error = np.asarray(audit.force_rmse)
    times = np.asarray(audit.time_ps)
    for kind, marker, label in (("sample", "o", "sampled frames"),
                                ("selected", "^", "selected (γ > γ_select)"),
                                ("check", "x", "in-segment reference checks")):
        m = kinds == kind
        if m.any():
            ax1.plot(gamma[m], error[m], marker, ls="none", ms=5, label=label)
            ax2.plot(times[m], error[m], marker, ls="none", ms=5, label=label)
    for ax in (ax1, ax2):
        ax.axhline(audit.max_force_rmse, color="tab:red", ls="--", lw=1,
                   label=f"audit threshold {audit.max_force_rmse:g} eV/Å")
        ax.set_ylim(0, max([audit.max_force_rmse * 1.2, *error.tolist()]) * 1.05)
        ax.set_ylabel("force RMSE vs reference (eV/Å)")
    finite = gamma[np.isfinite(gamma) & (gamma > 0)]
    if finite.size:
        ax1.set_xscale("log")
    ax1.axvline(audit.gamma_break, color="k", ls=":", lw=1, label=f"γ_break {audit.gamma_break:g}")
    ax1.set_xlabel("extrapolation grade γ of the frame")
    ax1.set_title("MLP error against γ (audited frames)")
    ax2.set_xlabel("simulated time (ps)")
    ax2.set_xlim(left=0)
    ax2.set_title("MLP error along the run")
    ax1.legend(fontsize=7)
    save(fig, path)


# ---------------------------------------------------------------- summary, HTML


def summary_of(result: RunAnalysis, figures: dict[str, str] | None = None) -> dict:
    """The small, script-readable summary (no per-frame series): summary.json."""
    cost = result.cost or {}
    return jsonable(
        {
            "run_id": result.run_id,
            "name": result.name,
            "formula": result.formula,
            "n_atoms": result.n_atoms,
            "parameters": result.parameters,
            "cycles": cost.get("cycles"),
            "n_frames": result.n_frames,
            "n_samples": result.n_samples,
            "simulated_ps": cost.get("total_ps", result.last_time_ps),
            "cost": cost,
            "similarity": result.similarity,
            "bonds": {
                k: getattr(result.bonds, k) for k in ("cutoffs", "initial", "final", "change")
            },
            "products": {
                k: getattr(result.products, k)
                for k in ("initial", "final", "formed", "clusters_final")
            },
            "rdf_first_peaks": {
                f"{fr.time_ps:.6g} ps": fr.first_peak for fr in result.rdf.frames
            },
            "temperature_mean_K": result.temperature.mean,
            "audit": None if result.audit is None else {
                "cycle_force_rmse": result.audit.cycle_force_rmse,
                "failed_cycles": result.audit.failed,
                "max_force_rmse": result.audit.max_force_rmse,
                "guards": result.audit.guards,
            },
            "msd": result.msd.model_dump(exclude={"time_ps", "msd_A2"}),
            "figures": figures or {},
        }
    )


def _fmt(value, spec=".4g") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def summary_rows(summary: dict) -> list[tuple[str, str]]:
    cost = summary.get("cost") or {}
    msd = summary["msd"]
    rows = [
        ("run", _fmt(summary.get("run_id"))),
        ("system", f"{summary['formula']} ({summary['n_atoms']} atoms)"),
        ("cycles", _fmt(summary.get("cycles"))),
        ("simulated time (ps)", _fmt(summary.get("simulated_ps"))),
        ("frames streamed / sampled", f"{summary['n_frames']} / {summary['n_samples']}"),
        ("HAML cost (CPU h / ps)", _fmt(cost.get("haml_cpu_h_per_ps"))),
        ("AIMD cost (CPU h / ps)", _fmt(cost.get("aimd_cpu_h_per_ps"))),
        ("speed-up", _fmt(cost.get("speedup"), ".3g")),
        ("similarity initial vs final", _fmt(summary["similarity"]["similarity"], ".4f")),
        ("mean temperature (K)", _fmt(summary.get("temperature_mean_K"), ".1f")),
        *_audit_rows(summary.get("audit")),
        (f"{msd['species']} followed in the MSD",
         f"{msd.get('n_ions')} of the electrolyte ({msd.get('n_excluded', 0)} metal left out)"),
        *([(f"{msd['species']} diffusion (cm²/s)", _fmt(msd.get("diffusion_cm2_s"), ".2g")),
           ("Nernst–Einstein σ (S/cm)", _fmt(msd.get("conductivity_S_cm"), ".2g"))]
          if msd.get("diffusive") else
          [(f"{msd['species']} diffusion", f"not reported: {msd.get('regime', '')}")]),
    ]
    for key, change in summary["bonds"]["change"].items():
        if summary["bonds"]["initial"][key] or summary["bonds"]["final"][key]:
            rows.append(
                (f"{key} bonds (initial → final)",
                 f"{summary['bonds']['initial'][key]} → {summary['bonds']['final'][key]}"
                 f" ({change:+d})")
            )
    for key, formed in summary["products"]["formed"].items():
        if summary["products"]["initial"][key] or summary["products"]["final"][key]:
            rows.append(
                (f"{key} units (initial → final)",
                 f"{summary['products']['initial'][key]} → {summary['products']['final'][key]}"
                 f" ({formed:+d})")
            )
    return rows


def _audit_rows(audit: dict | None) -> list[tuple[str, str]]:
    if not audit:
        return []
    values = list(audit["cycle_force_rmse"].values())
    rows = []
    if values:
        rows.append((
            "audited force RMSE (eV/Å), cycle mean / worst",
            f"{np.mean(values):.3f} / {max(values):.3f} (threshold {audit['max_force_rmse']:g};"
            f" failed in {len(audit['failed_cycles'])} of {len(values)} cycles)",
        ))
    guards = audit["guards"]
    rows.append((
        "guards that stopped MLP-MD (cycles)",
        ", ".join(f"{k} {v}" for k, v in sorted(guards.items())) or "none",
    ))
    return rows


def write_html(summary: dict, figures: dict[str, str], path: Path) -> None:
    title = f"HAML report {summary.get('run_id') or ''}"
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in summary_rows(summary)
    )
    imgs = "\n".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(key)}">'
        f"<figcaption><b>{html.escape(key.replace('_', ' '))}.</b> "
        f"{html.escape(CAPTIONS.get(key, ''))}</figcaption></figure>"
        for key, name in figures.items()
    )
    params = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in (summary.get("parameters") or {}).items() if v is not None
    )
    path.write_text(
        f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
figure{{display:inline-block;margin:1em;max-width:760px;vertical-align:top}}
img{{max-width:760px}}figcaption{{font-size:0.9em}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Similarity: {html.escape(summary['similarity']['method'])}.
Machine-readable numbers: <a href="summary.json">summary.json</a>.</p>
<h2>Run parameters</h2>
<table>{params}</table>
<h2>Results</h2>
<table>{rows}</table>
{imgs}
</body></html>
""",
        encoding="utf-8",
    )


def write_report(result: RunAnalysis, out_dir: Path) -> dict:
    """Figures, index.html, summary.json and series.json; returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = write_figures(result, out_dir)
    summary = summary_of(result, figures)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    series = {
        "samples_time_ps": result.samples_time_ps,
        "bonds": result.bonds.series,
        "products": result.products.series,
        "rdf": result.rdf.model_dump(),
        "temperature": result.temperature.model_dump(),
        "msd": {"species": result.msd.species, "time_ps": result.msd.time_ps,
                "msd_A2": result.msd.msd_A2},
        "cycles": result.cycles.model_dump() if result.cycles else None,
    }
    (out_dir / "series.json").write_text(json.dumps(jsonable(series)))
    write_html(summary, figures, out_dir / "index.html")
    return summary


def build_report(
    store, run_id: str, out_dir: Path, options: AnalysisOptions | None = None
) -> dict:
    """Analyse a stored run and write its report; returns the summary."""
    return write_report(analyze_run(store, run_id, options), Path(out_dir))


# ---------------------------------------------------------------- compare


def compare_summaries(summaries: list[dict], out_dir: Path | None = None) -> dict:
    """Side by side: similarity, bond-count changes, cost (PNG + JSON)."""
    labels = [s.get("run_id") or s.get("name") or str(i) for i, s in enumerate(summaries)]
    keys = sorted({k for s in summaries for k, v in s["bonds"]["change"].items()
                   if v or s["bonds"]["initial"][k]})
    table = {
        "runs": labels,
        "similarity": [s["similarity"]["similarity"] for s in summaries],
        "bond_change": {k: [s["bonds"]["change"].get(k, 0) for s in summaries] for k in keys},
        "products_formed": {
            k: [s["products"]["formed"].get(k, 0) for s in summaries]
            for k in sorted({k for s in summaries for k in s["products"]["formed"]})
        },
        "haml_cpu_h_per_ps": [s["cost"].get("haml_cpu_h_per_ps") for s in summaries],
        "aimd_cpu_h_per_ps": [s["cost"].get("aimd_cpu_h_per_ps") for s in summaries],
        "speedup": [s["cost"].get("speedup") for s in summaries],
        "simulated_ps": [s.get("simulated_ps") for s in summaries],
        "reaction_rank": [labels[i] for i in np.argsort(
            [s["similarity"]["similarity"] for s in summaries], kind="stable")],
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        plt = pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(14, 4))
        x = np.arange(len(labels))
        colours = [f"C{i % 10}" for i in range(len(labels))]
        axes[0].bar(x, table["similarity"], color=colours)
        axes[0].set_ylim(0.0, 1.05)
        axes[0].axhline(1.0, color="grey", lw=0.7, ls="--")
        axes[0].set_ylabel("similarity (1 = unchanged)")
        axes[0].set_title("similarity initial vs final\n(lower = stronger reaction)")
        width = 0.8 / max(len(labels), 1)
        for i, lab in enumerate(labels):
            axes[1].bar(np.arange(len(keys)) + i * width,
                        [table["bond_change"][k][i] for k in keys], width, label=lab,
                        color=colours[i])
        axes[1].set_xticks(np.arange(len(keys)) + width * (len(labels) - 1) / 2)
        axes[1].set_xticklabels(keys, rotation=30)
        axes[1].axhline(0, color="k", lw=0.6)
        axes[1].set_ylabel("bond-count change (bonds)")
        axes[1].yaxis.set_major_locator(integer_ticks())
        axes[1].set_title("bond-count change (final - initial)")
        axes[1].legend(fontsize=7)
        haml = [v or 0.0 for v in table["haml_cpu_h_per_ps"]]
        aimd = [v or 0.0 for v in table["aimd_cpu_h_per_ps"]]
        axes[2].bar(x - 0.2, haml, 0.4, label="HAML (measured)", color="tab:blue")
        axes[2].bar(x + 0.2, aimd, 0.4, label="pure AIMD (estimated)", color="tab:orange",
                    hatch="//")
        axes[2].set_ylabel("CPU h per simulated ps")
        axes[2].set_ylim(bottom=0)
        axes[2].set_title("cost per simulated ps")
        axes[2].legend(fontsize=7)
        for ax in (axes[0], axes[2]):
            ax.set_xticks(x)
            ax.set_xticklabels(labels, rotation=20, fontsize=7)
        save(fig, out_dir / "compare.png")
        table["figure"] = "compare.png"
        (out_dir / "compare.json").write_text(json.dumps(jsonable(table), indent=2))
    return jsonable(table)


def compare_runs(
    store, run_ids: list[str], out_dir: Path | None = None,
    options: AnalysisOptions | None = None,
) -> dict:
    summaries = [summary_of(analyze_run(store, r, options)) for r in run_ids]
    return compare_summaries(summaries, out_dir)
