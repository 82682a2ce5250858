"""Cost of a force call and of the extrapolation grade, per atom-step.

Shared by bench/mlpmd_throughput.py and bench/mtp_engine.py. On real AIMD
configurations (1 fs apart, so the neighbour list is rebuilt at least as
often as in MLP-MD's 0.5 fs steps), CPU time of this process (run with
OMP_NUM_THREADS=1: one core), the ways to get forces and a grade:

- motep's own calculator (forces);
- before: motep's compiled kernel behind vesin's neighbour list (forces),
  and that plus the linear-parameter grade this project used to compute
  (moment basis values and species one-hot rows against an active set of
  the linear parameters only; reconstructed here, it is not in the package);
- the full grade the naive way: motep's train mode (energies, forces and
  stresses with respect to every parameter) for the site-energy rows;
- ours: forces, and forces + the full grade every step.
"""

from __future__ import annotations

import time

import numpy as np


class _LinearGradeCalculator:
    """The grade over moment and species coefficients only (this project before)."""

    def __init__(self, data, frames) -> None:
        from motep.grade.maxvol import MaxVol
        from scipy.linalg import qr

        from haml_flows.mtp.neighbors import VesinMTPEngine

        self.engine = VesinMTPEngine(data, mode="run")
        rows = np.vstack([self._rows(atoms).T for atoms in frames])
        scale = np.linalg.norm(rows, axis=0)
        scale[scale == 0] = 1.0
        scaled = rows / scale
        _, r, pivots = qr(scaled, mode="economic", pivoting=True)
        diag = np.abs(np.diag(r))
        rank = int(np.sum(diag > 1e-10 * np.sqrt(scaled.shape[0]) * diag[0]))
        self.columns = np.sort(pivots[:rank])
        picked = MaxVol(rng=np.random.default_rng(0), threshold=1e-9).run(
            scaled[:, self.columns]
        )
        sub = scaled[:, self.columns][picked.indices]
        self.inverse = np.linalg.inv(sub) / scale[self.columns][:, None]

    def _rows(self, atoms) -> np.ndarray:
        self.engine.calculate(atoms)
        species = self.engine.mtp_data.species
        onehot = (atoms.numbers[None, :] == np.asarray(species)[:, None]).astype(float)
        return np.vstack([self.engine.mbd.vatoms, onehot])

    def forces_and_grade(self, atoms) -> float:
        rows = self._rows(atoms)
        return float(np.abs(rows[self.columns].T @ self.inverse).max())


def _per_atom_step(work, configurations, n_atoms: int) -> float:
    work(configurations[0])
    start = time.process_time()
    for atoms in configurations:
        work(atoms)
    return 1e6 * (time.process_time() - start) / (len(configurations) * n_atoms)


def md_cost(level: int, frames, repeats: int = 3) -> dict[str, float]:
    """Microseconds per atom-step of each way, on ``frames`` (a potential of ``level``).

    The potential's linear part is fitted to the first 20 frames, its radial
    part is not (the cost does not depend on it); the active sets are those
    of the same 20 frames.
    """
    from motep.calculator import make_calculator

    from haml_flows.mtp.engine import KernelMTPEngine
    from haml_flows.mtp.grade import ActiveSet, load_potential, mtp_calculator
    from haml_flows.mtp.neighbors import VesinMTPEngine
    from haml_flows.mtp.training import train_mtp

    potential = train_mtp(frames[:20], level=level, radial_iterations=0).potential
    data = load_potential(potential)
    active_set = ActiveSet.from_training(potential, frames[:20])
    n_atoms = len(frames[0])
    configurations = [f.copy() for f in frames] * repeats

    def with_calculator(calc):
        def work(atoms):
            atoms.calc = calc
            atoms.get_forces()
        return work

    before = VesinMTPEngine(load_potential(potential), mode="run")
    linear = _LinearGradeCalculator(load_potential(potential), frames[:20])
    trained = load_potential(potential)
    trained.optimized = ["moment_coeffs", "species_coeffs", "radial_coeffs"]
    kernel = KernelMTPEngine(data).kernel

    def motep_train_grade(atoms):
        engine = make_calculator(trained, engine="cext", mode="train").engine
        engine.calculate(atoms)
        rows = engine.jac_energies(atoms).parameters.T
        active_set.grades_of_rows(rows)

    ways = {
        "motep": with_calculator(make_calculator(data, engine="cext", mode="run")),
        "before_forces": before.calculate,
        "before_linear_grade": linear.forces_and_grade,
        "motep_train_grade": motep_train_grade,
        "forces": with_calculator(mtp_calculator(potential)),
        "forces_grade": with_calculator(mtp_calculator(potential, active_set)),
    }
    costs = {}
    for name, work in ways.items():
        subset = configurations[: len(frames)] if name == "motep_train_grade" else configurations
        costs[name] = _per_atom_step(work, subset, n_atoms)
    costs["n_params"] = float(kernel.n_params)
    return costs
