"""Reference engine seam: AIMD segments and the geometry optimization.

The embedded engine is GFN1-xTB through tblite, run by atomate2's ASE makers;
an analytic Lennard-Jones engine with the same interface serves fast tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import units
from atomate2.ase.jobs import GFNxTBRelaxMaker, LennardJonesRelaxMaker
from atomate2.ase.md import GFNxTBMDMaker
from jobflow import Maker, job
from monty.json import MSONable
from pymatgen.core import Structure

from haml_flows.engines.frames import (
    atoms_with_velocities,
    bare_structure,
    final_structure,
    measure_cost,
)
from haml_flows.faults.handlers import MAX_CORRECTIONS, run_segment
from haml_flows.schemas import AimdSegmentDoc, StageCost
from haml_flows.spec import OptimizationSpec, ReferenceSpec
from haml_flows.progress import link_job_folder

LENNARD_JONES = {"sigma": 2.0, "epsilon": 0.05, "rc": 5.0, "smooth": True}


DEFAULTS = ReferenceSpec()
"""A spec's ``reference`` section as written by default: the makers' defaults."""


def nose_hoover_kwargs(thermostat_time_fs: float) -> dict:
    """ASE's Nose-Hoover NVT: the NPT integrator with the barostat switched off."""
    return {"ttime": thermostat_time_fs * units.fs, "pfactor": None}


def segment_settings(reference: ReferenceSpec) -> dict:
    """The AIMD makers' fields (steps, time step, thermostat target, seed) of a section."""
    return {
        "n_steps": reference.steps,
        "time_step": reference.time_step,
        "temperature": reference.temperature,
        "mb_velocity_seed": reference.seed,
    }


@dataclass
class AimdSegmentMaker(GFNxTBMDMaker):
    """One NVT Nose-Hoover AIMD segment on GFN1-xTB.

    Velocities come from the structure's ``velocities`` site property; only a
    structure without them (the first segment) gets a Maxwell-Boltzmann draw
    seeded by ``mb_velocity_seed``.
    """

    name: str = "aimd segment"
    n_steps: int = DEFAULTS.steps
    time_step: float | None = DEFAULTS.time_step
    temperature: float = DEFAULTS.temperature
    dynamics: str = "nose-hoover"
    ase_md_kwargs: dict | None = field(
        default_factory=lambda: nose_hoover_kwargs(DEFAULTS.thermostat_time)
    )
    mb_velocity_seed: int | None = DEFAULTS.seed
    zero_linear_momentum: bool = True
    engine_name: str = "GFN1-xTB"
    max_corrections: int = MAX_CORRECTIONS

    @classmethod
    def from_spec(cls, reference: ReferenceSpec) -> AimdSegmentMaker:
        """The segment a spec's ``reference`` section asks for."""
        return cls(
            **segment_settings(reference),
            ase_md_kwargs=nose_hoover_kwargs(reference.thermostat_time),
        )

    @job(data=["trajectory"])
    def make(
        self, structure: Structure, prev_dir: str | Path | None = None
    ) -> AimdSegmentDoc:
        """Run the segment under custodian's handlers; return its frames and final state."""
        link_job_folder()
        with measure_cost() as meter:
            trajectory, corrections, attempts, simulated_fs = run_segment(
                self, structure, max_corrections=self.max_corrections
            )
        props = trajectory.frame_properties
        n_steps = len(trajectory) - 1
        return AimdSegmentDoc(
            engine=self.engine_name,
            structure=final_structure(trajectory),
            trajectory=trajectory,
            n_steps=n_steps,
            time_step_fs=self.time_step,
            simulated_fs=simulated_fs,
            temperature_start=float(props[0]["temperature"]),
            temperature_end=float(props[-1]["temperature"]),
            cost=meter.cost,
            attempts=attempts,
            corrections=corrections,
        )


@dataclass
class LennardJonesAimdSegmentMaker(AimdSegmentMaker):
    """The AIMD segment on an analytic Lennard-Jones reference, for fast tests."""

    name: str = "aimd segment (lj)"
    calculator_kwargs: dict = field(default_factory=lambda: dict(LENNARD_JONES))
    engine_name: str = "lennard-jones"

    def _get_calculator(self):  # noqa: ANN202
        from ase.calculators.lj import LennardJones

        return LennardJones(**self.calculator_kwargs)


def seeded_velocities(structure: Structure, temperature: float, seed: int | None):
    """Maxwell-Boltzmann velocities (ASE units) without centre-of-mass drift."""
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    atoms = atoms_with_velocities(bare_structure(structure))
    thermalize_momenta(
        atoms, temperature_K=temperature, rng=np.random.default_rng(seed)
    )
    Stationary(atoms)
    return atoms.get_velocities()


@dataclass
class ExternalAimdSegmentMaker(Maker):
    """What the AIMD segments on external engines (VASP, CP2K) share.

    The fields of a spec's ``reference`` section, and the start velocities:
    the structure's own, or a Maxwell-Boltzmann draw seeded by
    ``mb_velocity_seed`` for the first segment.
    """

    n_steps: int = DEFAULTS.steps
    time_step: float = DEFAULTS.time_step
    temperature: float = DEFAULTS.temperature
    mb_velocity_seed: int | None = DEFAULTS.seed

    @classmethod
    def from_spec(cls, reference: ReferenceSpec):
        """The segment a spec's ``reference`` section asks for."""
        return cls(**segment_settings(reference))

    def start_velocities(self, structure: Structure) -> np.ndarray:
        """Velocities (ASE units) the segment starts from."""
        velocities = structure.site_properties.get("velocities")
        if velocities is None:
            return seeded_velocities(structure, self.temperature, self.mb_velocity_seed)
        return np.asarray(velocities, dtype=float)


@dataclass
class GeometryOptimization(MSONable):
    """Fixed-cell geometry optimization on the reference engine, run inside a job.

    The run's first job calls :meth:`optimize`; ``settings`` is the spec's
    ``optimization`` section.
    """

    engine: str = "xtb"
    settings: OptimizationSpec = field(default_factory=OptimizationSpec)

    def relax_maker(self) -> GFNxTBRelaxMaker | LennardJonesRelaxMaker:
        """atomate2's relax maker for the engine."""
        common = {
            "relax_cell": False,
            "steps": self.settings.steps,
            "relax_kwargs": {"fmax": self.settings.fmax},
        }
        if self.engine == "lj":
            return LennardJonesRelaxMaker(
                calculator_kwargs=dict(LENNARD_JONES), **common
            )
        return GFNxTBRelaxMaker(**common)

    def optimize(self, structure: Structure) -> tuple[Structure, StageCost]:
        """Relax; returns the structure and the cost."""
        structure = bare_structure(structure)
        with measure_cost() as meter:
            if self.settings.steps > 0:
                structure = bare_structure(
                    self.relax_maker().run_ase(structure).final_mol_or_struct
                )
        return structure, meter.cost
