"""Reference engine seam: AIMD segments and the geometry optimization.

The embedded engine is GFN1-xTB through tblite, run by atomate2's ASE makers;
an analytic Lennard-Jones engine with the same interface serves fast tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ase import units
from atomate2.ase.jobs import GFNxTBRelaxMaker, LennardJonesRelaxMaker
from atomate2.ase.md import GFNxTBMDMaker
from jobflow import Maker, job
from pymatgen.core import Structure

from haml_flows.engines.frames import bare_structure, final_structure, measure_cost
from haml_flows.faults.handlers import MAX_CORRECTIONS, run_segment
from haml_flows.schemas import AimdSegmentDoc
from haml_flows.spec import NOSE_HOOVER_TIME_FS

LENNARD_JONES = {"sigma": 2.0, "epsilon": 0.05, "rc": 5.0, "smooth": True}


def nose_hoover_kwargs(thermostat_time_fs: float) -> dict:
    """ASE's Nose-Hoover NVT: the NPT integrator with the barostat switched off."""
    return {"ttime": thermostat_time_fs * units.fs, "pfactor": None}


@dataclass
class AimdSegmentMaker(GFNxTBMDMaker):
    """One NVT Nose-Hoover AIMD segment on GFN1-xTB.

    Velocities come from the structure's ``velocities`` site property; only a
    structure without them (the first segment) gets a Maxwell-Boltzmann draw
    seeded by ``mb_velocity_seed``.
    """

    name: str = "aimd segment"
    n_steps: int = 20
    time_step: float | None = 1.0
    temperature: float = 300.0
    dynamics: str = "nose-hoover"
    ase_md_kwargs: dict | None = field(
        default_factory=lambda: nose_hoover_kwargs(NOSE_HOOVER_TIME_FS)
    )
    mb_velocity_seed: int | None = 42
    zero_linear_momentum: bool = True
    engine_name: str = "GFN1-xTB"
    max_corrections: int = MAX_CORRECTIONS

    @job(data=["trajectory"])
    def make(
        self, structure: Structure, prev_dir: str | Path | None = None
    ) -> AimdSegmentDoc:
        """Run the segment under custodian's handlers; return its frames and final state."""
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


@dataclass
class GeometryOptimizationMaker(Maker):
    """Fixed-cell geometry optimization on the reference engine."""

    name: str = "geometry optimization"
    engine: str = "xtb"
    fmax: float = 0.1
    steps: int = 30

    def relax_maker(self) -> GFNxTBRelaxMaker | LennardJonesRelaxMaker:
        """atomate2's relax maker for the engine."""
        common = {
            "relax_cell": False,
            "steps": self.steps,
            "relax_kwargs": {"fmax": self.fmax},
        }
        if self.engine == "lj":
            return LennardJonesRelaxMaker(
                calculator_kwargs=dict(LENNARD_JONES), **common
            )
        return GFNxTBRelaxMaker(**common)

    def optimize(self, structure: Structure) -> tuple[Structure, object]:
        """Relax without jobflow; returns the structure and the cost."""
        structure = bare_structure(structure)
        if self.steps == 0:
            with measure_cost() as meter:
                pass
            return structure, meter.cost
        with measure_cost() as meter:
            result = self.relax_maker().run_ase(structure)
        return bare_structure(result.final_mol_or_struct), meter.cost


def aimd_maker_for(engine: str, **kwargs) -> AimdSegmentMaker:
    """The AIMD segment maker of a reference engine name."""
    makers = {"xtb": AimdSegmentMaker, "lj": LennardJonesAimdSegmentMaker}
    if engine not in makers:
        raise ValueError(f"unknown reference engine {engine!r}; allowed: {sorted(makers)}")
    return makers[engine](**kwargs)
