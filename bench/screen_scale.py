"""Scale figures of a screen as workers left it in the database.

Reads a screen that ``haml worker`` processes ran (each under ``/usr/bin/time
-v``) from the configured database (HAML_* environment or config file, as
``haml results`` does; it starts no server) and writes the section "Screen at
the paper's size" of docs/performance.md, with two figures in docs/figures/.
Per candidate:

- CPU and wall time of every stage as stored: AIMD, training and MLP-MD from
  the CycleDocs, the audit from each audit job's own output (the CycleDoc
  keeps its verdict, not its cost), the geometry optimization from the
  RunDoc; orchestration from FireWorks' launch records: the wall seconds
  inside the run's launches that no stage accounts for (jobflow and FireWorks
  bookkeeping, database round trips, building the next cycle's flow), counted
  as CPU of the one worker process that ran the launch;
- simulated ps, HAML and AIMD CPU-h per ps (``analysis.cost.cost_summary``,
  the AIMD figure from the run's own AIMD segments) and the speed-up;
- training CPU per cycle against the training-set size, its slope and
  whether the frame caps of the spec (``mtp.linear_frames``,
  ``radial_frames``, ``active_set_frames``) hold it flat;
- MLP-MD microseconds per atom-step (segments with steps);
- the run's documents (count, BSON bytes), GridFS files (bytes) and
  FireWorks records, per simulated ps;
- orchestration and waiting seconds per cycle;

and each worker's peak memory from its ``/usr/bin/time -v`` output.

    OMP_NUM_THREADS=1 python bench/screen_scale.py [--screen lpsc_dopant_screen] \\
        [--time-logs worker_a.log worker_b.log] [--quiet-machine] [--no-write] \\
        [--figures DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

HEADING = "## Screen at the paper's size"
FIGURES = {"training": "screen_scale_training.png", "shares": "screen_scale_cost_shares.png"}
#: the parts of a candidate's CPU, in the order the shares are drawn
SHARES = {
    "aimd": "AIMD", "training": "training", "mlpmd": "MLP-MD", "audit": "audit",
    "optimization": "optimization", "orchestration": "orchestration",
}
#: the spec's caps on the frames a training sees
CAPS = ("linear_frames", "radial_frames", "active_set_frames")
#: jobflow's job that stores a replaced job's output; it runs when the whole
#: run ends, so it is left out of its cycle's span
STORE_INPUTS = "store_inputs"


# ---------------------------------------------------------------- stored costs


def audit_costs(db, docs_collection: str, docs) -> dict:
    """cycle -> StageCost of its audit job, read from the audit job's output."""
    from haml_flows.schemas import StageCost

    cycle_of = {d.audit_job: d.cycle for d in docs if d.audit_job}
    if not cycle_of:
        return {}
    found = db[docs_collection].find(
        {"uuid": {"$in": list(cycle_of)}}, {"uuid": 1, "output.cost": 1}
    )
    return {cycle_of[d["uuid"]]: StageCost.model_validate(d["output"]["cost"]) for d in found}


def _moment(value) -> datetime:
    """A launch time (FireWorks stores ISO strings; a datetime is taken as UTC)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Launch:
    """One launch of one of the run's Fireworks."""

    fw_id: int
    name: str
    cycle: int | None
    state: str
    start: datetime | None
    end: datetime | None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def run_launches(launchpad, run_id: str) -> list[Launch]:
    """Every launch of the run's Fireworks (``spec.haml_run_id``)."""
    fireworks = {
        fw["fw_id"]: fw
        for fw in launchpad.fireworks.find(
            {"spec.haml_run_id": run_id}, {"fw_id": 1, "name": 1, "spec.cycle": 1}
        )
    }
    launches = []
    for doc in launchpad.launches.find(
        {"fw_id": {"$in": list(fireworks)}},
        {"fw_id": 1, "state": 1, "time_start": 1, "time_end": 1},
    ):
        fw = fireworks[doc["fw_id"]]
        launches.append(Launch(
            fw_id=doc["fw_id"], name=fw.get("name", ""),
            cycle=fw.get("spec", {}).get("cycle"), state=doc.get("state", ""),
            start=_moment(doc["time_start"]) if doc.get("time_start") else None,
            end=_moment(doc["time_end"]) if doc.get("time_end") else None,
        ))
    return launches


@dataclass
class CycleLaunches:
    """Where a cycle's wall time went, from its Fireworks' launches.

    ``busy_s``: its launches summed; ``orchestration_s``: that less the cycle's
    stages; ``waiting_s``: first start to last end less the launches in it
    (between Fireworks, and queued behind other candidates).
    """

    cycle: int
    busy_s: float
    orchestration_s: float
    waiting_s: float


def cycle_launches(launches: list[Launch], docs, audit_wall_s: dict[int, float]
                   ) -> list[CycleLaunches]:
    """Busy, orchestration and waiting seconds of every cycle that has a CycleDoc."""
    from cycle_costs import outside_stages

    done = [l for l in launches if l.state == "COMPLETED" and l.start and l.end]
    out = []
    for doc in docs:
        own = [l for l in done if l.cycle == doc.cycle]
        in_span = [l for l in own if l.name != STORE_INPUTS]
        if not in_span:
            continue
        busy = sum(l.seconds for l in own)
        span = (max(l.end for l in in_span) - min(l.start for l in in_span)).total_seconds()
        out.append(CycleLaunches(
            cycle=doc.cycle,
            busy_s=busy,
            orchestration_s=outside_stages(busy, [doc], audit_wall_s),
            waiting_s=span - sum(l.seconds for l in in_span),
        ))
    return out


# ---------------------------------------------------------------- database size


@dataclass
class Storage:
    """What one run keeps in the database."""

    documents: int
    document_bytes: int
    files: int
    file_bytes: int
    fireworks_bytes: int


def _raw(collection):
    """The collection returning undecoded BSON (its size is ``len(doc.raw)``)."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    return collection.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))


def run_storage(db, launchpad, settings, run_id: str) -> Storage:
    """The run's job documents (``metadata.run_id``), the GridFS files of those jobs
    (``metadata.job_uuid``) and its Fireworks and their launches."""
    n_docs, doc_bytes, uuids = 0, 0, set()
    for doc in _raw(db[settings.DOCS_COLLECTION]).find({"metadata.run_id": run_id}):
        n_docs += 1
        doc_bytes += len(doc.raw)
        uuids.add(doc["uuid"])
    files = list(db[f"{settings.DATA_BUCKET}.files"].find(
        {"metadata.job_uuid": {"$in": sorted(uuids)}}, {"length": 1}
    ))
    fireworks = list(_raw(launchpad.fireworks).find({"spec.haml_run_id": run_id}))
    launches = _raw(launchpad.launches).find({"fw_id": {"$in": [f["fw_id"] for f in fireworks]}})
    return Storage(
        documents=n_docs,
        document_bytes=doc_bytes,
        files=len(files),
        file_bytes=sum(f["length"] for f in files),
        fireworks_bytes=sum(len(d.raw) for d in fireworks) + sum(len(d.raw) for d in launches),
    )


# ---------------------------------------------------------------- training growth


@dataclass
class Slope:
    """A least-squares line through (training-set size, training CPU s)."""

    per_100_frames: float
    stderr: float | None
    points: int

    @property
    def grows(self) -> bool:
        """The slope is more than twice its standard error above zero."""
        return self.stderr is not None and self.per_100_frames > 2 * self.stderr

    def text(self) -> str:
        spread = f" ± {self.stderr:.2f}" if self.stderr is not None else ""
        return f"{self.per_100_frames:.2f}{spread}"


def fit_slope(points: list[tuple[float, float]]) -> Slope | None:
    """Slope in CPU s per 100 frames (None below 2 points) with its standard error
    (None below 3)."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - x_mean) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
    stderr = None
    if len(points) > 2:
        residual = sum((y - y_mean - slope * (x - x_mean)) ** 2 for x, y in zip(xs, ys, strict=True))
        stderr = 100 * math.sqrt(residual / (len(points) - 2) / sxx)
    return Slope(100 * slope, stderr, len(points))


def training_points(docs) -> list[tuple[int, float]]:
    """(training-set size, training CPU s) of the cycles that trained (continued ones did not)."""
    return [(d.training_set_size, d.training_cost.cpu_seconds)
            for d in docs if not d.continued and d.training_cost.cpu_seconds > 0]


def growth_verdict(points: list[tuple[int, float]], caps: dict[str, int | None]) -> str:
    """Whether the caps hold the training CPU flat as the training set grows, as measured."""
    uncapped = [k for k in CAPS if caps.get(k) is None]
    if uncapped:
        return ("not bounded: " + ", ".join(f"`mtp.{k}`" for k in uncapped)
                + " null, so that stage sees every frame")
    largest = max(caps[k] for k in CAPS)
    past = fit_slope([p for p in points if p[0] >= largest])
    if past is None or past.stderr is None:
        return (f"too few trained cycles past the largest cap ({largest} frames) to tell "
                "whether the caps bound it")
    if past.grows:
        return (f"**not bounded by the caps**: past {largest} frames (the largest cap) the "
                f"training CPU still grows by {past.text()} s per 100 frames "
                f"({past.points} cycles): work on every frame remains")
    return (f"**bounded by the caps**: past {largest} frames (the largest cap) the slope is "
            f"{past.text()} s per 100 frames ({past.points} cycles), not above zero by "
            "twice its standard error")


# ---------------------------------------------------------------- worker memory


@dataclass
class WorkerUsage:
    """What ``/usr/bin/time -v`` said of one worker."""

    path: str
    command: str
    max_rss_kb: int
    user_s: float
    system_s: float
    elapsed_s: float
    exit_status: int | None
    signal: int | None

    @property
    def ended(self) -> str:
        """How the worker ended: its exit status, or the signal that stopped it."""
        if self.signal is not None:
            return f"signal {self.signal}"
        return "—" if self.exit_status is None else str(self.exit_status)


_TIME_FIELDS = {
    "command": r"Command being timed: \"(.*)\"",
    "max_rss_kb": r"Maximum resident set size \(kbytes\): (\d+)",
    "user_s": r"User time \(seconds\): ([\d.]+)",
    "system_s": r"System time \(seconds\): ([\d.]+)",
    "elapsed": r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)",
    "exit_status": r"Exit status: (-?\d+)",
    "signal": r"Command terminated by signal (\d+)",
}


def _clock_seconds(text: str) -> float:
    """'1:02:03' or '2:03.45' -> seconds."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = 60 * seconds + float(part)
    return seconds


def worker_usage(path: Path) -> WorkerUsage:
    """The last ``/usr/bin/time -v`` report in ``path`` (a worker's log may hold its
    own output before it)."""
    text = Path(path).read_text(errors="replace")
    found = {}
    for key, pattern in _TIME_FIELDS.items():
        matches = re.findall(pattern, text)
        found[key] = matches[-1] if matches else None
    missing = [k for k in ("max_rss_kb", "user_s", "system_s", "elapsed") if found[k] is None]
    if missing:
        raise ValueError(f"{path}: no /usr/bin/time -v report in it (no {', '.join(missing)})")
    return WorkerUsage(
        path=str(path),
        command=found["command"] or "",
        max_rss_kb=int(found["max_rss_kb"]),
        user_s=float(found["user_s"]),
        system_s=float(found["system_s"]),
        elapsed_s=_clock_seconds(found["elapsed"]),
        exit_status=int(found["exit_status"]) if found["exit_status"] is not None else None,
        signal=int(found["signal"]) if found["signal"] is not None else None,
    )


# ---------------------------------------------------------------- per candidate


@dataclass
class CandidateScale:
    """One candidate's scale figures.

    ``cost``: ``cost_summary`` of the run; ``cpu_s``, ``wall_s``: seconds per
    part (``SHARES``); ``mlpmd_cpu_s``: CPU of the MLP-MD segments with steps;
    ``elapsed_s``: first launch start to last launch end; ``unfinished_launches``:
    launches not COMPLETED (lost, fizzled), whose time is not counted.
    """

    candidate: str
    label: str
    run_id: str
    state: str
    finished: bool
    n_atoms: int
    engines: str
    cost: dict
    cpu_s: dict[str, float]
    wall_s: dict[str, float]
    training: list[tuple[int, float]]
    caps: dict[str, int | None]
    mlpmd_steps: int
    mlpmd_cpu_s: float
    storage: Storage
    cycles_launches: list[CycleLaunches]
    elapsed_s: float
    unfinished_launches: int

    @property
    def cycles(self) -> int:
        return self.cost["cycles"]

    @property
    def total_ps(self) -> float:
        return self.cost["total_ps"]

    @property
    def cpu_total_s(self) -> float:
        return sum(self.cpu_s.values())

    @property
    def measured_cpu_s(self) -> float:
        """The stages' own CPU: every part but orchestration."""
        return self.cpu_total_s - self.cpu_s["orchestration"]

    @property
    def measured_wall_s(self) -> float:
        return sum(v for k, v in self.wall_s.items() if k != "orchestration")

    @property
    def us_per_atom_step(self) -> float | None:
        if not self.mlpmd_steps:
            return None
        return 1e6 * self.mlpmd_cpu_s / (self.mlpmd_steps * self.n_atoms)

    @property
    def haml_all_cpu_h_per_ps(self) -> float | None:
        return self.cpu_total_s / 3600 / self.total_ps if self.total_ps > 0 else None

    @property
    def speedup_all(self) -> float | None:
        aimd, haml = self.cost["aimd_cpu_h_per_ps"], self.haml_all_cpu_h_per_ps
        return aimd / haml if aimd and haml else None

    @property
    def largest_share(self) -> str:
        return max(self.cpu_s, key=self.cpu_s.get)

    @property
    def stored_bytes(self) -> int:
        return self.storage.document_bytes + self.storage.file_bytes


def _caps(spec: dict) -> dict[str, int | None]:
    from haml_flows.spec import MtpSpec

    mtp = {**MtpSpec().model_dump(), **(spec.get("mtp") or {})}
    return {k: mtp.get(k) for k in CAPS}


def _engines(spec: dict) -> str:
    reference = (spec.get("reference") or {}).get("engine", "?")
    mtp = spec.get("mtp") or {}
    return f"{reference} reference, {mtp.get('engine') or 'motep'} MTP lev_max {mtp.get('level', '?')}"


def candidate_scale(on, candidate, label: str) -> CandidateScale | None:
    """The scale figures of one candidate of ``haml status`` (None before its first cycle)."""
    from cycle_costs import outside_stages

    from haml_flows.analysis.cost import cost_summary
    from haml_flows.queries import cycle_docs, run_doc

    docs = cycle_docs(on.store, candidate.run_id)
    run = run_doc(on.store, candidate.run_id)
    if not docs or run is None:
        return None
    cost = cost_summary(docs, run)
    audits = audit_costs(on.db, on.settings.DOCS_COLLECTION, docs)
    audit_wall = {cycle: c.wall_seconds for cycle, c in audits.items()}
    launches = run_launches(on.launchpad, candidate.run_id)
    done = [l for l in launches if l.state == "COMPLETED" and l.start and l.end]
    # a running cycle's finished stages have no CycleDoc yet to subtract
    counted = [l for l in done if candidate.finished or (l.cycle or 0) <= docs[-1].cycle]
    optimization = run.optimization_cost
    orchestration = outside_stages(
        sum(l.seconds for l in counted), docs, audit_wall, optimization.wall_seconds
    )
    cpu = {
        "aimd": cost["cpu_s"]["aimd"], "training": cost["cpu_s"]["training"],
        "mlpmd": cost["cpu_s"]["mlpmd"],
        "audit": sum(c.cpu_seconds for c in audits.values()),
        "optimization": optimization.cpu_seconds, "orchestration": orchestration,
    }
    wall = {
        **{k: cost["wall_s"][k] for k in ("aimd", "training", "mlpmd")},
        "audit": sum(audit_wall.values()), "optimization": optimization.wall_seconds,
        "orchestration": orchestration,
    }
    stepped = [d for d in docs if d.mlpmd_steps > 0]
    return CandidateScale(
        candidate=candidate.candidate,
        label=label,
        run_id=candidate.run_id,
        state=candidate.state,
        finished=candidate.finished,
        n_atoms=run.n_atoms,
        engines=_engines(run.spec),
        cost=cost,
        cpu_s=cpu,
        wall_s=wall,
        training=training_points(docs),
        caps=_caps(run.spec),
        mlpmd_steps=sum(d.mlpmd_steps for d in stepped),
        mlpmd_cpu_s=sum(d.mlpmd_cost.cpu_seconds for d in stepped),
        storage=run_storage(on.db, on.launchpad, on.settings, candidate.run_id),
        cycles_launches=cycle_launches(launches, docs, audit_wall),
        elapsed_s=(max(l.end for l in done) - min(l.start for l in done)).total_seconds()
        if done else 0.0,
        unfinished_launches=sum(l.state != "COMPLETED" for l in launches),
    )


def measure(on, screen: str) -> tuple[list[CandidateScale], list[str]]:
    """Every candidate of ``screen`` with a stored cycle, in the screen's order; and the
    names of those without one."""
    from haml_flows.analysis.screen_figures import candidate_labels
    from haml_flows.screening.status import screen_status

    status = screen_status(on.db, on.launchpad, screen, on.settings.DOCS_COLLECTION)
    labels = candidate_labels(status.candidates)
    scales, left = [], []
    for c in status.candidates:
        scale = candidate_scale(on, c, labels[c.run_id])
        if scale is None:
            left.append(f"{c.candidate} ({c.state}, no cycle stored)")
        else:
            scales.append(scale)
    return scales, left


# ---------------------------------------------------------------- figures


def training_figure(scales: list[CandidateScale], path: Path) -> None:
    """Training CPU s against training-set size, one colour per candidate, with each
    candidate's least-squares line and the spec's frame caps."""
    from haml_flows.analysis.plotting import pyplot, save
    from haml_flows.analysis.screen_figures import _line_styles

    fig, ax = pyplot().subplots(figsize=(7.5, 4.2))
    for scale, style in zip(scales, _line_styles(len(scales)), strict=True):
        if not scale.training:
            continue
        xs, ys = zip(*scale.training, strict=True)
        ax.plot(xs, ys, ls="none", marker=style["marker"], color=style["color"], ms=5,
                label=f"{scale.label} ({len(xs)} trainings)")
        slope = fit_slope(scale.training)
        if slope is not None:
            x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
            line_x = [min(xs), max(xs)]
            ax.plot(line_x, [y_mean + slope.per_100_frames / 100 * (x - x_mean) for x in line_x],
                    ls=style["ls"], color=style["color"], lw=1)
    largest = max((p[0] for s in scales for p in s.training), default=0)
    for key, value in (scales[0].caps if scales else {}).items():
        if value is not None and value <= 1.05 * largest:
            ax.axvline(value, color="grey", lw=0.8, ls=":")
            ax.annotate(f"mtp.{key} {value}", (value, 0.98), xycoords=("data", "axes fraction"),
                        fontsize=7, color="dimgrey", rotation=90, ha="right", va="top")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("training-set size (frames)")
    ax.set_ylabel("training CPU per cycle (s)")
    ax.set_title("MTP training cost against training-set size (lines: least squares)", fontsize=9)
    ax.legend(fontsize=8)
    save(fig, path)


def shares_figure(scales: list[CandidateScale], path: Path) -> None:
    """Each candidate's CPU hours stacked by part, with each part's share written on it."""
    from haml_flows.analysis.plotting import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(scales) + 3.5, 4.2))
    cmap = plt.get_cmap("tab10")
    x = range(len(scales))
    bottom = [0.0] * len(scales)
    for j, (key, name) in enumerate(SHARES.items()):
        hours = [s.cpu_s[key] / 3600 for s in scales]
        ax.bar(x, hours, 0.6, bottom=bottom, color=cmap(j), edgecolor="k", lw=0.5, label=name)
        for i, scale in enumerate(scales):
            share = scale.cpu_s[key] / scale.cpu_total_s if scale.cpu_total_s else 0.0
            if share >= 0.05:
                ax.text(i, bottom[i] + hours[i] / 2, f"{100 * share:.0f} %", ha="center",
                        va="center", fontsize=7)
        bottom = [b + h for b, h in zip(bottom, hours, strict=True)]
    ax.set_xticks(list(x), [s.label + ("" if s.finished else "\n(unfinished)") for s in scales])
    ax.set_ylim(bottom=0)
    ax.set_ylabel("CPU hours")
    ax.set_title("Where each candidate's CPU went (shares of its total on the bars)",
                 fontsize=9)
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], names[::-1], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))  # top to bottom, as stacked
    save(fig, path)


def write_figures(scales: list[CandidateScale], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {key: directory / name for key, name in FIGURES.items()}
    training_figure(scales, paths["training"])
    shares_figure(scales, paths["shares"])
    return paths


# ---------------------------------------------------------------- the section


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f}"


def _sig(value: float) -> str:
    """Three significant digits (more left of the point), never in exponent notation."""
    if value == 0:
        return "0"
    return f"{value:.{max(0, 2 - math.floor(math.log10(abs(value))))}f}"


def _h(seconds: float) -> str:
    """Hours, three significant digits."""
    return _sig(seconds / 3600)


def _or_dash(value: float | None, spec: str | None = None) -> str:
    """``value`` formatted (``spec``; three significant digits when none), or a dash."""
    if value is None:
        return "—"
    return _sig(value) if spec is None else format(value, spec)


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "—"


def _table(columns: list[str], rows: list[list]) -> list[str]:
    """A markdown table's lines."""
    return [
        "| " + " | ".join(columns) + " |",
        "|" + " --- |" * len(columns),
        *("| " + " | ".join(map(str, row)) + " |" for row in rows),
    ]


def _mean_largest(values: list[float]) -> str:
    return f"{sum(values) / len(values):.2f} / {max(values):.2f}" if values else "—"


def cost_table(scales: list[CandidateScale]) -> list[str]:
    columns = ["candidate", "atoms", "state", "cycles", "ps (AIMD + MLP-MD)", "wall h", "CPU h",
               "orchestration CPU h", "HAML CPU-h/ps, stages / all", "AIMD CPU-h/ps",
               "speed-up, stages / all", "elapsed h"]
    rows = []
    for s in scales:
        c = s.cost
        rows.append([
            s.label, s.n_atoms, s.state + ("" if s.finished else " (unfinished)"), s.cycles,
            f"{c['total_ps']:.3f} ({c['aimd_ps']:.3f} + {c['mlpmd_ps']:.3f})",
            _h(s.measured_wall_s), _h(s.measured_cpu_s), _h(s.cpu_s["orchestration"]),
            f"{_or_dash(c['haml_cpu_h_per_ps'])} / "
            f"{_or_dash(s.haml_all_cpu_h_per_ps)}",
            _or_dash(c["aimd_cpu_h_per_ps"]),
            f"{_or_dash(c['speedup'])}x / {_or_dash(s.speedup_all)}x",
            _h(s.elapsed_s),
        ])
    return _table(columns, rows)


def screen_cpu(scales: list[CandidateScale]) -> dict[str, float]:
    """CPU seconds per part, summed over the candidates."""
    return {k: sum(s.cpu_s[k] for s in scales) for k in SHARES}


def shares_table(scales: list[CandidateScale]) -> list[str]:
    rows = []
    for label, cpu in [(s.label, s.cpu_s) for s in scales] + [("**screen**", screen_cpu(scales))]:
        total = sum(cpu.values())
        rows.append([label, *(f"{_h(cpu[k])} ({_pct(cpu[k], total)})" for k in SHARES),
                     _h(total), SHARES[max(cpu, key=cpu.get)]])
    return _table(["candidate", *SHARES.values(), "total CPU h", "largest"], rows)


def training_table(scales: list[CandidateScale]) -> list[str]:
    rows = []
    for s in scales:
        points, slope = s.training, fit_slope(s.training)
        rows.append([
            s.label, len(points),
            f"{points[0][0]} - {points[-1][0]}" if points else "—",
            f"{points[0][1]:.1f} - {points[-1][1]:.1f}" if points else "—",
            slope.text() if slope else "—",
        ])
    return _table(["candidate", "trainings", "frames, first - last",
                   "training CPU s, first - last", "slope, CPU s per 100 frames"], rows)


def rates_table(scales: list[CandidateScale]) -> list[str]:
    rows = []
    for s in scales:
        st, per = s.storage, s.cycles_launches
        rows.append([
            s.label, f"{_or_dash(s.us_per_atom_step, '.1f')} ({s.mlpmd_steps})",
            f"{st.documents}, {_mb(st.document_bytes)}", f"{st.files}, {_mb(st.file_bytes)}",
            _mb(st.fireworks_bytes),
            _or_dash(s.stored_bytes / 1e6 / s.total_ps if s.total_ps else None, ".1f"),
            _mean_largest([c.orchestration_s for c in per]),
            _mean_largest([c.waiting_s for c in per]),
        ])
    return _table(["candidate", "MLP-MD us per atom-step (steps)", "documents: count, MB",
                   "GridFS: files, MB", "FireWorks records, MB",
                   "MB per simulated ps (documents + GridFS)",
                   "orchestration s per cycle, mean / largest",
                   "waiting s per cycle, mean / largest"], rows)


def workers_table(usage: list[WorkerUsage]) -> list[str]:
    rows = [[Path(u.path).name, f"`{u.command}`", f"{u.max_rss_kb / 1024:.0f}", _h(u.elapsed_s),
             _h(u.user_s + u.system_s), u.ended]
            for u in usage]
    return _table(["log", "command", "peak RSS, MiB", "elapsed h", "CPU h (user + system)",
                   "ended"], rows)


def section(scales: list[CandidateScale], left: list[str], usage: list[WorkerUsage],
            screen: str, command: str, quiet: bool) -> str:
    from perfdoc import machine_note

    cpu = screen_cpu(scales)
    total = sum(cpu.values())
    largest = max(cpu, key=cpu.get)
    atoms = sorted({s.n_atoms for s in scales})
    engines = sorted({s.engines for s in scales})
    caps = scales[0].caps
    pooled = [p for s in scales for p in s.training]
    slope = fit_slope(pooled)
    text = [
        HEADING, "",
        f"Command: `{command}` ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
        f"{machine_note(quiet)}), on screen `{screen}` as stored in the database: "
        f"{len(scales)} candidates of {', '.join(map(str, atoms))} atoms, "
        f"{'; '.join(engines)}."
        + (f" Not counted (no cycle stored): {', '.join(left)}." if left else ""),
        "",
        "CPU and wall of the stages as stored: AIMD, training and MLP-MD in the CycleDocs, "
        "each audit in its audit job's output, the optimization in the RunDoc. "
        "Orchestration: the wall seconds inside the run's Fireworks' launches "
        "(`launches.time_start`/`time_end`) outside those stages, counted as CPU of the "
        "worker process that ran them. HAML CPU-h/ps: *stages* as `haml results` "
        "counts it (AIMD + training + MLP-MD + audit; runs stored before CycleDocs "
        "carried the audit's cost leave it out), *all* with the audit, the optimization "
        "and orchestration added; AIMD CPU-h/ps from the run's own AIMD segments (AIMD CPU / "
        "AIMD ps). Elapsed: first launch start to last launch end of the candidate "
        "(workers share the cores, so candidates overlap).",
        "",
        *cost_table(scales), "",
        "Shares of each candidate's CPU (CPU h and share of its total):", "",
        *shares_table(scales), "",
        f"Largest share at this size: **{SHARES[largest]}**, {_pct(cpu[largest], total)} of "
        f"the screen's {_h(total)} CPU h.", "",
        f"![CPU shares per candidate](figures/{FIGURES['shares']})", "",
        "Training CPU per cycle against the training-set size (cycles that trained; "
        "continued cycles train nothing). Caps of the spec: "
        + ", ".join(f"`mtp.{k}` {caps[k]}" for k in CAPS) + ".", "",
        *training_table(scales), "",
        (f"All candidates together: {slope.text()} CPU s per 100 frames "
         f"({slope.points} trainings); " if slope else "")
        + growth_verdict(pooled, caps) + ".", "",
        f"![training CPU against training-set size](figures/{FIGURES['training']})", "",
        "Rates and sizes. MLP-MD: CPU of the segments with steps over steps x atoms "
        "(the grade, the guards and the active-set build included). Documents: the "
        "run's job documents (`metadata.run_id`), BSON bytes; GridFS: the "
        "`outputs_data.files` of those jobs (`metadata.job_uuid`), their `length`; "
        "FireWorks: the run's Fireworks and launches. Orchestration per cycle: the "
        "cycle's launches less its stages (AIMD, training, MLP-MD, audit); waiting: "
        "the cycle's first-start-to-last-end less its launches (picking up the next "
        "Firework, and queueing behind other candidates).", "",
        *rates_table(scales), "",
    ]
    if usage:
        worker_cpu = sum(u.user_s + u.system_s for u in usage)
        text += [
            "Workers (`/usr/bin/time -v`):", "",
            *workers_table(usage), "",
            f"Peak memory of a worker: **{max(u.max_rss_kb for u in usage) / 1024:.0f} MiB**. "
            f"The workers' CPU, {_h(worker_cpu)} h, against {_h(total)} h counted above "
            "for the candidates (stages and orchestration).", "",
        ]
    else:
        text += ["Peak memory of a worker: not measured (no `--time-logs`).", ""]
    lost = sum(s.unfinished_launches for s in scales)
    if lost:
        text += [f"{lost} launches did not complete (lost or fizzled); their time is "
                 "not counted.", ""]
    return "\n".join(text)


def command_line(args) -> str:
    parts = [f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')}",
             "python bench/screen_scale.py", f"--screen {args.screen}"]
    if args.time_logs:
        parts += ["--time-logs", *map(str, args.time_logs)]
    if args.quiet_machine:
        parts.append("--quiet-machine")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screen", default="lpsc_dopant_screen")
    parser.add_argument("--time-logs", nargs="*", type=Path, default=[], metavar="FILE",
                        help="output of each worker's /usr/bin/time -v (its log)")
    parser.add_argument("--quiet-machine", action="store_true",
                        help="say in the doc that nothing else ran")
    parser.add_argument("--no-write", action="store_true",
                        help="only print; leave docs/ alone")
    parser.add_argument("--figures", type=Path, default=None, metavar="DIR",
                        help="draw the figures here (default: docs/figures, unless --no-write)")
    args = parser.parse_args(argv)

    try:
        usage = [worker_usage(path) for path in args.time_logs]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import typer
    from harness import quiet_warnings
    from perfdoc import publish

    from haml_flows.cli._common import clients

    quiet_warnings()
    try:
        on = clients(start=False)
    except typer.Exit as exc:
        return exc.exit_code
    scales, left = measure(on, args.screen)
    if not scales:
        print(f"error: no candidate of screen {args.screen!r} has a stored cycle"
              + (f" ({'; '.join(left)})" if left else " (no such screen?)"), file=sys.stderr)
        return 1
    figures = args.figures or (None if args.no_write else ROOT / "docs/figures")
    if figures is not None:
        for path in write_figures(scales, figures).values():
            print(f"wrote {path}")
    text = section(scales, left, usage, args.screen, command_line(args), args.quiet_machine)
    publish(text, HEADING, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
