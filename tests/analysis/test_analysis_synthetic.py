"""Known answers on synthetic structures and trajectories."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from pymatgen.core import Lattice, Structure
from pymatgen.core.trajectory import Trajectory

from haml_flows.analysis.bonds import bond_counts
from haml_flows.analysis.products import find_products
from haml_flows.analysis.rdf import first_peak, partial_rdf
from haml_flows.analysis.report import AnalysisOptions, analyze_frames
from haml_flows.analysis.similarity import similarity_details, structure_similarity
from haml_flows.analysis.timeline import Frame, frames_from_structures, trajectory_frames
from haml_flows.analysis.transport import (
    MsdAccumulator,
    diffusion_coefficient,
    nernst_einstein_conductivity,
)

A_LI2S = 5.71  # antifluorite
A_LICL = 5.13  # rock salt


def li2s(reps=(2, 2, 2)) -> Atoms:
    """Antifluorite Li2S: S on the fcc sites, Li in all tetrahedral holes."""
    from pymatgen.io.ase import AseAtomsAdaptor

    s = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(A_LI2S), ["S", "Li"], [[0, 0, 0], [0.25, 0.25, 0.25]]
    )
    return AseAtomsAdaptor.get_atoms(s).repeat(reps)


def licl(reps=(2, 2, 2)) -> Atoms:
    return bulk("LiCl", "rocksalt", a=A_LICL, cubic=True).repeat(reps)


def ps4_in_box(with_li: bool = False) -> Atoms:
    d = 2.05 / np.sqrt(3)
    pos = [[0, 0, 0], [d, d, d], [-d, -d, d], [-d, d, -d], [d, -d, -d]]
    symbols = ["P", "S", "S", "S", "S"]
    if with_li:  # Li3PS4-like: three Li capping faces, 2.72 A from three S each
        for v in pos[1:4]:
            pos.append(list(-2.6 * np.array(v) / np.linalg.norm(v)))
            symbols.append("Li")
    atoms = Atoms(symbols, positions=np.array(pos) + 7.5, cell=[15, 15, 15], pbc=True)
    return atoms


# ------------------------------------------------------------------ RDF


def test_first_rdf_peak_of_bcc_li_is_the_nearest_neighbour_distance():
    a = 3.51
    atoms = bulk("Li", "bcc", a=a, cubic=True).repeat(3)
    r, g = partial_rdf(atoms, "Li", "Li", r_max=6.0, n_bins=300)
    assert first_peak(r, g) == pytest.approx(a * np.sqrt(3) / 2, abs=0.02)
    # nothing closer than the nearest neighbours
    assert np.all(g[r < a * np.sqrt(3) / 2 - 0.05] == 0)


def test_partial_rdf_li_s_peak_in_li2s_and_beyond_half_the_cell():
    atoms = li2s((1, 1, 1))  # 5.71 A cell, r_max beyond half of it
    r, g = partial_rdf(atoms, "Li", "S", r_max=7.0, n_bins=350)
    assert first_peak(r, g) == pytest.approx(A_LI2S * np.sqrt(3) / 4, abs=0.02)
    r2, g2 = partial_rdf(li2s((2, 2, 2)), "Li", "S", r_max=7.0, n_bins=350)
    assert np.allclose(g, g2)  # supercell invariant
    # coordination number from the integral: 4 S around each Li
    rho_s = 4 / A_LI2S**3
    shell = (r > 2.0) & (r < 3.0)
    dr = r[1] - r[0]
    cn = np.sum(4 * np.pi * r[shell] ** 2 * g[shell] * rho_s * dr)
    assert cn == pytest.approx(4, rel=0.05)


# ------------------------------------------------------------------ bonds


def test_bond_counts_of_crystals_and_a_ps4_molecule():
    s = li2s()
    n_s = s.get_chemical_symbols().count("S")
    counts = bond_counts(s)
    assert counts["Li-S"] == 8 * n_s  # each S has 8 Li
    assert counts["P-S"] == 0
    c = licl()
    assert bond_counts(c)["Li-Cl"] == 6 * c.get_chemical_symbols().count("Cl")
    mol = bond_counts(ps4_in_box())
    assert mol["P-S"] == 4 and mol["Li-S"] == 0
    li3ps4 = bond_counts(ps4_in_box(with_li=True))
    assert li3ps4["P-S"] == 4 and li3ps4["Li-S"] == 9
    custom = bond_counts(s, {"Li-S": 2.0})
    assert custom == {"Li-S": 0}
    assert bond_counts(s, {"Li–Li": 3.0})["Li-Li"] == 6 * s.get_chemical_symbols().count("Li") // 2


# ------------------------------------------------------------------ similarity


def test_similarity_is_one_for_identical_and_lower_after_perturbation():
    s = li2s()
    assert structure_similarity(s, s.copy()) == 1.0
    shifted = s.copy()
    shifted.translate([0.3, 0.1, 0.2])
    assert structure_similarity(s, shifted) == pytest.approx(1.0, abs=1e-9)
    values = []
    for amplitude in (0.05, 0.15, 0.4):
        rattled = s.copy()
        rattled.rattle(stdev=amplitude, seed=3)
        values.append(structure_similarity(s, rattled))
    assert all(0.0 <= v < 1.0 for v in values)
    assert values[0] > values[1] > values[2]
    # a different compound is much less similar than a rattled copy
    other = structure_similarity(s, licl())
    assert other < values[0]
    details = similarity_details(s, licl())
    assert set(details["per_species"]) == {"Li", "S", "Cl"}
    assert details["per_species"]["S"] == 0.0  # no S in LiCl


# ------------------------------------------------------------------ products


def _li2s_licl_mixture() -> Atoms:
    """A Li2S block and a LiCl block (strained to the same lateral cell) along z."""
    a = li2s((2, 2, 2))
    b = licl((2, 2, 2))
    lateral = a.cell[0, 0]
    b.set_cell([lateral, lateral, b.cell[2, 2]], scale_atoms=True)
    gap = 2.6
    b.translate([0, 0, a.cell[2, 2] + gap])
    mix = a + b
    mix.set_cell([lateral, lateral, a.cell[2, 2] + b.cell[2, 2] + 2 * gap])
    return mix


def test_products_in_a_hand_built_li2s_licl_mixture():
    mix = _li2s_licl_mixture()
    symbols = mix.get_chemical_symbols()
    found = find_products(mix)
    assert found["Li2S"] == symbols.count("S") == 32
    assert found["LiCl"] == symbols.count("Cl") == 32
    assert found["Li3P"] == 0 and found["LiF"] == 0
    # S bound to P is not Li2S, P bound to S is not Li3P
    li3ps4 = find_products(ps4_in_box(with_li=True))
    assert li3ps4["Li2S"] == 0 and li3ps4["Li3P"] == 0
    # a pymatgen Structure gives the same answer
    from pymatgen.io.ase import AseAtomsAdaptor

    assert find_products(AseAtomsAdaptor.get_structure(mix)) == found


# ------------------------------------------------------------------ transport


def test_msd_of_a_straight_line_trajectory_across_the_boundary():
    lattice = np.diag([5.0, 6.0, 7.0])
    start = np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5], [0.9, 0.1, 0.4]])
    velocity = np.array([0.9, -0.4, 0.3])  # A/fs: wraps several times
    acc = MsdAccumulator("Li")
    for step in range(60):
        cart = start @ lattice
        cart[[0, 2]] += velocity * step  # only the two Li move
        frac = (cart @ np.linalg.inv(lattice)) % 1.0
        acc.add(Frame(float(step), ["Li", "S", "Li"], frac, lattice))
    t, msd = acc.result()
    assert np.allclose(msd, np.dot(velocity, velocity) * t**2)
    assert acc.n_ions == 2


def test_msd_leaves_out_the_metal_and_follows_the_electrolyte():
    from haml_flows.analysis.transport import touches_other_elements

    # a Li chain (the metal) far from an S with two Li beside it (the electrolyte)
    lattice = np.diag([20.0, 20.0, 20.0])
    cart = np.array([[1.0, 1, 1], [3.5, 1, 1], [6.0, 1, 1],      # metal Li, Li-Li 2.5 Å
                     [10.0, 10, 10], [12.4, 10, 10], [10, 12.4, 10]])  # S, Li, Li
    symbols = ["Li", "Li", "Li", "S", "Li", "Li"]
    frame = Frame(0.0, symbols, cart / 20.0, lattice)
    mask = np.asarray(symbols) == "Li"
    assert touches_other_elements(frame, mask, 3.0).tolist() == [
        False, False, False, False, True, True]
    acc = MsdAccumulator("Li", electrolyte_only=True)
    for step in range(5):
        moved = cart.copy()
        moved[:3, 0] += 1.0 * step   # only the metal moves: no electrolyte MSD
        acc.add(Frame(float(step), symbols, moved / 20.0, lattice))
    assert (acc.n_ions, acc.n_excluded) == (2, 3)
    assert np.allclose(acc.result()[1], 0.0)


def test_a_run_too_short_for_diffusion_gets_no_coefficient():
    from haml_flows.analysis.transport import diffusive_regime

    t = np.linspace(0, 2000, 201)  # 2 ps
    ballistic = 1e-5 * t**2        # slope 2: not yet diffusive
    ok, why = diffusive_regime(t, ballistic)
    assert not ok and "too short for a diffusive regime" in why and "slope 2.00" in why
    small = 1e-4 * t               # linear but 0.2 Å²: less than a hop
    ok, why = diffusive_regime(t, small)
    assert not ok and "MSD reaches 0.2 Å²" in why
    ok, why = diffusive_regime(t, 6e-3 * t)  # 12 Å², slope 1
    assert ok and why.startswith("diffusive")


def test_diffusion_coefficient_and_nernst_einstein():
    t = np.linspace(0, 10000, 101)  # fs
    d_cm2 = 2.5e-5
    msd = 6 * d_cm2 / 0.1 * t + 0.3  # 1 A^2/fs = 0.1 cm^2/s
    d, slope, intercept = diffusion_coefficient(t, msd)
    assert d == pytest.approx(d_cm2) and intercept == pytest.approx(0.3)
    sigma = nernst_einstein_conductivity(1e-5, 10, 10000.0, 300.0)
    expected = (10 / 1e-26) * (1.602176634e-19) ** 2 * 1e-9 / (1.380649e-23 * 300) / 100
    assert sigma == pytest.approx(expected)
    assert sigma == pytest.approx(0.06197, rel=1e-3)


# ------------------------------------------------------------------ timeline, streaming


def test_trajectory_frames_use_the_stored_step():
    lattice = Lattice.cubic(5.0)
    coords = [np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])] * 3
    traj = Trajectory(
        ["Li", "S"], coords, lattice=lattice,
        frame_properties=[{"step": s, "temperature": 300.0 + s} for s in (0, 5, 9)],
    )
    frames = list(trajectory_frames(traj, t0_fs=100.0, dt_fs=0.5, cycle=2, stage="mlpmd"))
    assert [f.time_fs for f in frames] == [100.0, 102.5, 104.5]
    assert [f.temperature for f in frames] == [300.0, 305.0, 309.0]
    assert frames[0].symbols == ["Li", "S"] and frames[0].cycle == 2


def test_long_stream_is_reduced_with_bounded_samples():
    base = li2s((1, 1, 1))
    rng = np.random.default_rng(0)
    n = 20000

    def stream():
        frac0 = base.get_scaled_positions()
        cell = np.array(base.cell[:])
        symbols = base.get_chemical_symbols()
        for k in range(n):
            frac = (frac0 + rng.normal(0, 0.002, frac0.shape)) % 1.0
            yield Frame(float(k), symbols, frac, cell, temperature=300.0)

    start = time.perf_counter()
    result = analyze_frames(stream(), AnalysisOptions(max_samples=50), total_fs=float(n))
    assert time.perf_counter() - start < 20
    assert result.n_frames == n
    assert result.n_samples <= 52
    assert result.bonds.initial["Li-S"] == 32
    assert len(result.rdf.frames) == 2
    assert 0.0 < result.similarity["similarity"] <= 1.0


def test_analyze_frames_from_structures_finds_formed_products():
    s0 = Structure.from_spacegroup("Fm-3m", Lattice.cubic(A_LICL), ["Li", "Cl"],
                                   [[0, 0, 0], [0.5, 0.5, 0.5]])
    # start: Cl far from Li (no product), end: rock salt
    apart = s0.copy()
    apart.scale_lattice(s0.volume * 4.0)
    frames = list(frames_from_structures([apart, s0], dt_fs=1000.0))
    # same lattice is not needed for the analysis: each frame carries its own
    result = analyze_frames(frames, AnalysisOptions(rdf_times_ps=[0.0, 1.0]))
    assert result.products.initial["LiCl"] == 0
    assert result.products.final["LiCl"] == 4
    assert result.products.formed["LiCl"] == 4
    assert [f.time_ps for f in result.rdf.frames] == [0.0, 1.0]


def test_rdfs_average_the_frames_of_a_window():
    from haml_flows.analysis.report import AnalysisOptions, analyze_frames

    lattice = np.diag([8.0, 8.0, 8.0])
    rng = np.random.default_rng(3)
    base = rng.random((16, 3))
    symbols = ["Li"] * 8 + ["S"] * 8
    frames = [Frame(float(t), symbols, (base + 0.002 * rng.standard_normal(base.shape)) % 1,
                    lattice) for t in range(101)]
    result = analyze_frames(iter(frames), AnalysisOptions(rdf_window_ps=0.01), total_fs=100.0)
    first, last = result.rdf.frames
    assert (first.n_frames, first.window_ps) == (11, (0.0, 0.01))
    assert (last.n_frames, last.window_ps) == (11, (0.09, 0.1))
    chosen = analyze_frames(iter(frames), AnalysisOptions(rdf_window_ps=0.01,
                                                          rdf_times_ps=[0.05]))
    (middle,) = chosen.rdf.frames
    assert middle.n_frames == 11 and middle.window_ps == (0.045, 0.055)
