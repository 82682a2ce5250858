"""A screen's candidates side by side: the paper's Figures 5e, 5f and 4a, bond series, products.

For each candidate with at least one stored cycle, one streamed pass over its
frames (``timeline.run_timeline``) counts bonds and products on frames spread
evenly in time (``report.CountSampler``), and its start and end structures
are compared:

- start: the optimized structure (RunDoc);
- end: the final structure (RunSummaryDoc) of a finished run, the last
  stored frame (end of the last recorded cycle) of an unfinished one, which
  the figures mark as unfinished.

Similarity (``similarity``), bond counts (``bonds``) and products
(``products``) of start and end are what the ranking table computes for a
finished run, so the bars equal its columns. Written into one directory:

- ``similarity.png`` (Fig. 5e), ``bond_change.png`` (Fig. 5f),
  ``simulated_time.png`` (Fig. 4a), ``bond_series.png``, ``products.png``;
- ``products.csv`` and ``products.md``: the reaction products table;
- ``series.json``: every plotted number.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from haml_flows.analysis.bonds import DEFAULT_CUTOFFS, bond_counts
from haml_flows.analysis.neighbors import parse_pair
from haml_flows.analysis.plotting import integer_ticks, jsonable, pyplot, save
from haml_flows.analysis.products import COVALENT_SCALE, DEFAULT_PRODUCTS, find_products
from haml_flows.analysis.report import CountSampler, CycleTiming, cycle_timing
from haml_flows.analysis.similarity import similarity_method, structure_similarity
from haml_flows.analysis.timeline import run_timeline, segments
from haml_flows.files import write_atomic
from haml_flows.queries import cycle_docs, run_doc, run_summary

PAPER_BONDS = ["P-S", "Li-P", "Li-S", "Li-Cl", "Li-F"]
"""The bond pairs of the paper's Figure 5f, always drawn; other pairs when present."""

PAPER_PRODUCTS = ["Li2S", "LiCl", "Li3P", "LiF", "Li2O", "Li2Se"]
"""The products of the paper's comparison, always listed; others when present."""

FIGURES = {
    "similarity": "similarity.png",
    "bond_change": "bond_change.png",
    "simulated_time": "simulated_time.png",
    "bond_series": "bond_series.png",
    "products": "products.png",
}

CAPTIONS = {
    "similarity": "Fig. 5e: structure similarity between the optimized interface and the "
    "interface after the run, per candidate (1 = unchanged; lower = stronger reaction).",
    "bond_change": "Fig. 5f: change in the number of bonds per pair over the run (end minus "
    "start), grouped by candidate; bond cutoffs in the legend.",
    "simulated_time": "Fig. 4a: simulated time against cycle, per candidate: the run's total "
    "after each cycle, and each cycle's MLP-MD and AIMD time.",
    "bond_series": "Bonds per pair over simulated time, one panel per pair, one colour per "
    "candidate.",
    "products": "Reaction products (anions coordinated only by Li) at the end of the run, and "
    "the formula units formed over it (end minus start), per candidate.",
}


class CandidateSeries(BaseModel):
    """One candidate's numbers behind the figures."""

    candidate: str = Field(description="Candidate name.")
    run_id: str = Field(description="Run id.")
    label: str = Field(description="Short label in the figures, e.g. 'Se' or 'undoped'.")
    state: str = Field(description="FireWorks workflow state.")
    finished: bool = Field(description="The run's summary is stored.")
    end: str = Field(
        description="'final structure' (finished) or 'last stored frame' (unfinished)."
    )
    end_time_ps: float = Field(description="Simulated time of the end structure, ps.")
    similarity: float = Field(description="End vs optimized structure, [0, 1].")
    bonds_start: dict[str, int] = Field(description="Bonds per pair, optimized structure.")
    bonds_end: dict[str, int] = Field(description="Bonds per pair, end structure.")
    bond_change: dict[str, int] = Field(description="End minus start bonds per pair.")
    products_start: dict[str, int] = Field(description="Formula units, optimized structure.")
    products_end: dict[str, int] = Field(description="Formula units, end structure.")
    products_formed: dict[str, int] = Field(description="End minus start formula units.")
    cycles: CycleTiming = Field(description="Per-cycle simulated times (CycleDocs).")
    samples_time_ps: list[float] = Field(description="Times of the counted frames, ps.")
    bond_series: dict[str, list[int]] = Field(description="Bonds per pair per counted frame.")
    product_series: dict[str, list[int]] = Field(
        description="Formula units per product per counted frame."
    )


class ScreenAnalysis(BaseModel):
    """A screen's candidates side by side."""

    screen: str = Field(description="Screen name.")
    cutoffs: dict[str, float] = Field(description="Bond cutoff per pair, Angstrom.")
    bond_pairs: list[str] = Field(description="Pairs drawn: the paper's and any present.")
    products: list[str] = Field(description="Products listed: the paper's and any present.")
    product_rules: list[dict] = Field(description="The product rules applied.")
    similarity_method: str = Field(description="How the similarity is computed.")
    candidates: list[CandidateSeries] = Field(description="Candidates with cycles.")
    left_out: list[dict] = Field(
        default_factory=list, description="Candidates not drawn, with the reason."
    )


def candidate_labels(candidates: Sequence) -> dict[str, str]:
    """run id -> short label: the dopant, with concentration and seed when they vary."""
    concentrations = {c.concentration for c in candidates if c.dopant is not None}
    seeds = {c.seed for c in candidates}
    labels = {}
    for c in candidates:
        label = "undoped" if c.dopant is None else c.dopant
        if c.dopant is not None and len(concentrations) > 1:
            label += f" {c.concentration:g}"
        if len(seeds) > 1:
            label += f" s{c.seed}"
        labels[c.run_id] = label
    if len(set(labels.values())) < len(labels):
        return {c.run_id: c.candidate for c in candidates}
    return labels


def analyze_candidate(
    store, candidate, label: str, cutoffs: dict[str, float],
    max_samples: int = 400,
) -> CandidateSeries | None:
    """Stream one candidate's frames and compare its start and end; None without cycles."""
    docs = cycle_docs(store, candidate.run_id)
    run = run_doc(store, candidate.run_id)
    if not docs or run is None:
        return None
    sampler = CountSampler(cutoffs, DEFAULT_PRODUCTS, docs[-1].cumulative_fs, max_samples)
    last = None
    for frame in run_timeline(store, candidate.run_id,
                              segment_list=segments(store, candidate.run_id, docs)):
        sampler.offer(frame)
        last = frame
    sampler.finish(last)
    summary = run_summary(store, candidate.run_id) if candidate.finished else None
    end = summary.structure if summary is not None else last
    start = run.structure
    bonds_start, bonds_end = bond_counts(start, cutoffs), bond_counts(end, cutoffs)
    products_start, products_end = find_products(start), find_products(end)
    products = sampler.product_analysis()
    return CandidateSeries(
        candidate=candidate.candidate,
        run_id=candidate.run_id,
        label=label,
        state=candidate.state,
        finished=summary is not None,
        end="final structure" if summary is not None else "last stored frame",
        end_time_ps=(summary.simulated_fs if summary is not None else last.time_fs) / 1000,
        similarity=structure_similarity(start, end),
        bonds_start=bonds_start,
        bonds_end=bonds_end,
        bond_change={k: bonds_end[k] - bonds_start[k] for k in cutoffs},
        products_start=products_start,
        products_end=products_end,
        products_formed={k: products_end[k] - products_start[k] for k in products_start},
        cycles=cycle_timing(docs),
        samples_time_ps=sampler.times_ps,
        bond_series=sampler.bond_analysis().series,
        product_series=products.series,
    )


def analyze_screen(
    store,
    screen: str,
    candidates: Sequence,
    cutoffs: dict[str, float] | None = None,
    max_samples: int = 400,
    progress: Callable[[str], None] | None = None,
) -> ScreenAnalysis:
    """Every candidate with a stored cycle, streamed once; the others listed as left out.

    ``candidates``: the screen's rows in the order to draw them, each with the
    attributes ``candidate``, ``run_id``, ``dopant``, ``concentration``,
    ``seed``, ``state`` and ``finished`` (a ``screening.schemas.CandidateRow``).
    """
    cutoffs = dict(DEFAULT_CUTOFFS if cutoffs is None else cutoffs)
    labels = candidate_labels(candidates)
    series, left_out = [], []
    for c in candidates:
        result = analyze_candidate(store, c, labels[c.run_id], cutoffs, max_samples)
        if result is None:
            left_out.append({"candidate": c.candidate, "run_id": c.run_id, "state": c.state,
                             "reason": "no cycle stored yet"})
        else:
            series.append(result)
        if progress is not None:
            progress(c.candidate)
    present = [k for k in cutoffs
               if any(s.bonds_start.get(k) or s.bonds_end.get(k) or any(s.bond_series[k])
                      for s in series)]
    names = [r.name for r in DEFAULT_PRODUCTS]
    found = [k for k in names
             if any(s.products_start.get(k) or s.products_end.get(k) for s in series)]
    return ScreenAnalysis(
        screen=screen,
        cutoffs=cutoffs,
        bond_pairs=[k for k in cutoffs if k in PAPER_BONDS or k in present],
        products=[k for k in names if k in PAPER_PRODUCTS or k in found],
        product_rules=[rule.__dict__ for rule in DEFAULT_PRODUCTS],
        similarity_method=similarity_method(),
        candidates=series,
        left_out=left_out,
    )


# ---------------------------------------------------------------- figures


def _pair_label(key: str) -> str:
    """'P-S' -> 'P–S'."""
    return "–".join(parse_pair(key))


def _formula(name: str) -> str:
    """'Li2S' -> 'Li$_2$S' (subscripts in matplotlib's mathtext)."""
    return re.sub(r"(\d+)", r"$_{\1}$", name)


def _colours(n: int) -> list:
    """One distinct colour per candidate (tab10, tab20 beyond ten)."""
    cmap = pyplot().get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*"]
_LINESTYLES = ["-", "--", ":", "-."]


def _line_styles(n: int) -> list[dict]:
    """Per candidate a colour, a marker and a dash pattern, so that lines lying on top
    of each other (equal counts) stay distinguishable, in grey print too."""
    return [{"color": c, "marker": _MARKERS[i % len(_MARKERS)],
             "ls": _LINESTYLES[i % len(_LINESTYLES)]} for i, c in enumerate(_colours(n))]


def _count_axis(ax, values, signed: bool = False) -> None:
    """Integer ticks; room of a count or more around nearly constant data (never far
    below 0); symmetric about 0 when ``signed`` (changes)."""
    values = [v for v in values if v is not None] or [0]
    lo, hi = min(values), max(values)
    if signed:
        top = max(abs(lo), abs(hi), 1) * 1.25
        ax.set_ylim(-top, top)
    elif hi - lo < 2:
        ax.set_ylim(max(lo - 1.5, -0.5), hi + 1.5)
    ax.yaxis.set_major_locator(integer_ticks())


def _legend_label(s: CandidateSeries) -> str:
    return s.label if s.finished else f"{s.label} (unfinished, {s.end_time_ps:.3g} ps)"


def _tick_label(s: CandidateSeries) -> str:
    return s.label if s.finished else f"{s.label}\n(unfinished)"


_UNFINISHED_HATCH = "///"
_NOTE = "hatched: unfinished run, compared at its last stored frame"


def _similarity_figure(a: ScreenAnalysis, path: Path) -> None:
    """Fig. 5e: one bar per candidate, axis from 0, the value on each bar."""
    n = len(a.candidates)
    fig, ax = pyplot().subplots(figsize=(max(4.5, 1.1 * n + 2), 4.2))
    colours = _colours(n)
    x = np.arange(n)
    for i, s in enumerate(a.candidates):
        ax.bar(x[i], s.similarity, 0.6, color=colours[i], edgecolor="k", lw=0.6,
               hatch="" if s.finished else _UNFINISHED_HATCH)
        ax.text(x[i], s.similarity + 0.01, f"{s.similarity:.4f}", ha="center", va="bottom",
                fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x)
    ax.set_xticklabels([_tick_label(s) for s in a.candidates], fontsize=9)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("structure similarity, optimized vs after the run\n(1 = unchanged)")
    ax.set_title("Structure similarity of the interface (Fig. 5e)", fontsize=10)
    note = "dashed: identical structures"
    if not all(s.finished for s in a.candidates):
        note += f"; {_NOTE}"
    fig.text(0.01, 0.005, f"{note}. Method: {a.similarity_method}.", fontsize=6.5,
             va="bottom", wrap=True)
    save(fig, path, (0, 0.06, 1, 1))


def _bond_change_figure(a: ScreenAnalysis, path: Path) -> None:
    """Fig. 5f: per candidate a group of bars, one per bond pair, signed, zero line."""
    pairs, n = a.bond_pairs, len(a.candidates)
    fig, ax = pyplot().subplots(figsize=(max(6, 0.35 * n * len(pairs) + 3), 4.4))
    cmap = pyplot().get_cmap("Set2")
    width = 0.8 / max(len(pairs), 1)
    x = np.arange(n)
    for j, key in enumerate(pairs):
        values = [s.bond_change[key] for s in a.candidates]
        offsets = x - 0.4 + width * (j + 0.5)
        for i, s in enumerate(a.candidates):
            ax.bar(offsets[i], values[i], width, color=cmap(j % cmap.N), edgecolor="k", lw=0.5,
                   hatch="" if s.finished else _UNFINISHED_HATCH,
                   label=f"{_pair_label(key)} (< {a.cutoffs[key]:g} Å)" if i == 0 else None)
            # a zero change has no bar: its label "0" says it was counted
            ax.text(offsets[i], values[i], f"{values[i]:+d}" if values[i] else "0",
                    ha="center", fontsize=6.5, va="bottom" if values[i] >= 0 else "top")
    ax.axhline(0, color="k", lw=0.8)
    _count_axis(ax, [s.bond_change[k] for s in a.candidates for k in pairs], signed=True)
    ax.set_xticks(x)
    ax.set_xticklabels([_tick_label(s) for s in a.candidates], fontsize=9)
    ax.set_ylabel("change in bond count over the run\n(end − start)")
    ax.set_title("Bond-count change per candidate (Fig. 5f)", fontsize=10)
    ax.legend(title="bond (cutoff)", fontsize=7.5, title_fontsize=8, ncol=2)
    rect = None
    if not all(s.finished for s in a.candidates):
        fig.text(0.01, 0.005, f"{_NOTE}.", fontsize=6.5, va="bottom")
        rect = (0, 0.04, 1, 1)
    save(fig, path, rect)


def _simulated_time_figure(a: ScreenAnalysis, path: Path) -> None:
    """Fig. 4a: cumulative time per cycle; each cycle's MLP-MD (solid) and AIMD (dashed)."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    fig, (total, per) = plt.subplots(1, 2, figsize=(11, 4.2))
    for s, style in zip(a.candidates, _line_styles(len(a.candidates)), strict=True):
        cyc, colour, marker = s.cycles, style["color"], style["marker"]
        total.plot(cyc.cycle, cyc.cumulative_ps, "-", marker=marker, color=colour, ms=4,
                   label=_legend_label(s))
        per.plot(cyc.cycle, np.asarray(cyc.mlpmd_fs) / 1000, "-", marker=marker,
                 color=colour, ms=4)
        per.plot(cyc.cycle, np.asarray(cyc.aimd_fs) / 1000, "--", marker=marker,
                 color=colour, ms=3.5, lw=1, mfc="none")
    total.set_ylabel("total simulated time (ps)")
    total.set_title("Simulated time after each cycle (Fig. 4a)", fontsize=10)
    total.legend(fontsize=8)
    per.set_ylabel("simulated time of the cycle (ps)")
    per.set_title("Time per cycle by stage", fontsize=10)
    per.legend(handles=[Line2D([], [], color="k", label="MLP-MD (filled markers)"),
                        Line2D([], [], color="k", ls="--", lw=1,
                               label="AIMD (open markers)")], fontsize=8)
    for ax in (total, per):
        ax.set_xlabel("cycle")
        ax.xaxis.set_major_locator(integer_ticks())
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    save(fig, path)


def _bond_series_figure(a: ScreenAnalysis, path: Path) -> None:
    """One panel per bond pair, bonds over simulated time, one colour per candidate."""
    plt = pyplot()
    n = max(len(a.bond_pairs), 1)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows + 0.8),
                             squeeze=False)
    styles = _line_styles(len(a.candidates))
    for k, key in enumerate(a.bond_pairs):
        ax = axes[k // cols][k % cols]
        for s, style in zip(a.candidates, styles, strict=True):
            ax.plot(s.samples_time_ps, s.bond_series[key], color=style["color"],
                    ls=style["ls"], lw=1.2, label=_legend_label(s))
        ax.set_title(f"{_pair_label(key)} bonds (< {a.cutoffs[key]:g} Å)", fontsize=9)
        ax.set_xlabel("simulated time (ps)", fontsize=8)
        ax.set_ylabel("bonds", fontsize=8)
        ax.set_xlim(left=0)
        _count_axis(ax, [v for s in a.candidates for v in s.bond_series[key]])
        ax.tick_params(labelsize=8)
    for k in range(len(a.bond_pairs), rows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    height = 3.0 * rows + 0.8
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8,
               frameon=False)
    fig.suptitle("Bond counts over the run, per candidate", fontsize=10)
    save(fig, path, (0, 0.45 / height * np.ceil(len(labels) / 4), 1, 1))


def _products_figure(a: ScreenAnalysis, path: Path) -> None:
    """Products at the end (start marked) and formed over the run, per candidate."""
    plt = pyplot()
    names, n = a.products, len(a.candidates)
    fig, (end_ax, formed_ax) = plt.subplots(
        1, 2, figsize=(max(10, 0.15 * n * len(names) * 2 + 3), 4.4))
    colours = _colours(n)
    width = 0.8 / max(n, 1)
    x = np.arange(len(names))
    for i, s in enumerate(a.candidates):
        offsets = x - 0.4 + width * (i + 0.5)
        hatch = "" if s.finished else _UNFINISHED_HATCH
        end_ax.bar(offsets, [s.products_end[k] for k in names], width, color=colours[i],
                   edgecolor="k", lw=0.5, hatch=hatch, label=_legend_label(s))
        end_ax.plot(offsets, [s.products_start[k] for k in names], "_", color="k", ms=9,
                    mew=1.5, label="at the start" if i == 0 else None)
        formed_ax.bar(offsets, [s.products_formed[k] for k in names], width,
                      color=colours[i], edgecolor="k", lw=0.5, hatch=hatch)
    end_ax.set_ylim(0, max([1, *(s.products_end[k] for s in a.candidates for k in names),
                            *(s.products_start[k] for s in a.candidates for k in names)]) * 1.15)
    end_ax.yaxis.set_major_locator(integer_ticks())
    end_ax.set_ylabel("formula units at the end of the run")
    end_ax.set_title("Reaction products at the end", fontsize=10)
    end_ax.legend(fontsize=7.5)
    formed_ax.axhline(0, color="k", lw=0.8)
    _count_axis(formed_ax, [s.products_formed[k] for s in a.candidates for k in names],
                signed=True)
    formed_ax.set_ylabel("formula units formed (end − start)")
    formed_ax.set_title("Products formed over the run", fontsize=10)
    for ax in (end_ax, formed_ax):
        ax.set_xticks(x)
        ax.set_xticklabels([_formula(k) for k in names])
    rule = "; ".join(f"{_formula(r['name'])}: ≥ {r['min_li']} Li within {r['li_cutoff']:g} Å"
                     for r in a.product_rules if r["name"] in names)
    fig.text(0.01, 0.005, f"An anion counts as a formula unit with {rule}, and no non-Li "
             f"neighbour within {COVALENT_SCALE:g} × the covalent radii.", fontsize=6.5,
             va="bottom", wrap=True)
    save(fig, path, (0, 0.07, 1, 1))


# ---------------------------------------------------------------- tables, JSON


def products_table(a: ScreenAnalysis) -> list[dict]:
    """One row per candidate: start, end and formed formula units of each product."""
    rows = []
    for s in a.candidates:
        row = {"candidate": s.candidate, "label": s.label, "run_id": s.run_id,
               "state": s.state, "finished": s.finished, "end": s.end,
               "time_ps": round(s.end_time_ps, 6)}
        for k in a.products:
            row.update({f"{k}_start": s.products_start[k], f"{k}_end": s.products_end[k],
                        f"{k}_formed": s.products_formed[k]})
        rows.append(row)
    return rows


def products_csv(a: ScreenAnalysis) -> str:
    rows = products_table(a)
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else ["candidate"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def products_markdown(a: ScreenAnalysis) -> str:
    """The products table as markdown: 'start → end (formed)' per product."""
    head = ["candidate", "state", "ps", *a.products]
    lines = [f"Reaction products of screen {a.screen} (formula units: start → end, "
             "formed in brackets)", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s in a.candidates:
        state = s.state if s.finished else f"{s.state}, unfinished"
        cells = [f"{s.products_start[k]} → {s.products_end[k]} ({s.products_formed[k]:+d})"
                 for k in a.products]
        lines.append(f"| {s.label} | {state} | {s.end_time_ps:.3g} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines) + "\n"


def write_screen_figures(a: ScreenAnalysis, out_dir: Path) -> dict[str, str]:
    """Figures, products.csv/.md and series.json into ``out_dir``; returns {key: file}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawers = {
        "similarity": _similarity_figure,
        "bond_change": _bond_change_figure,
        "simulated_time": _simulated_time_figure,
        "bond_series": _bond_series_figure,
        "products": _products_figure,
    }
    written = {}
    for key, draw in drawers.items():
        draw(a, out_dir / FIGURES[key])
        written[key] = FIGURES[key]
    write_atomic(out_dir / "products.csv", products_csv(a))
    write_atomic(out_dir / "products.md", products_markdown(a))
    written.update(products_csv="products.csv", products_md="products.md")
    series = {**a.model_dump(mode="json"), "figures": written, "captions": CAPTIONS}
    write_atomic(out_dir / "series.json", json.dumps(jsonable(series), indent=1))
    written["series"] = "series.json"
    return written
