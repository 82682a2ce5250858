"""The run specification: a YAML file validated before anything runs.

Every section rejects unknown keys, and every number is checked against its
allowed range, so that a typo or an impossible value fails with a message that
names the field before a job is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pymatgen.core import Element, Structure

from haml_flows.distances import closest_pair

BUILDER_NAMES = ("li_lpsc_mini", "li6ps5cl", "li_lpsc", "li_lifsi_dme")
"""Structure builders a spec may name (``haml_flows.systems.BUILDERS``)."""

NOSE_HOOVER_TIME_FS = 25.0
"""Characteristic time of the Nose-Hoover thermostat of every MD segment."""

START_TEMPERATURE_FACTOR = 1.5
"""An MLP-MD start frame above this multiple of the target is cooled to it:
AIMD from a strained MLP-MD end frame turns the potential's energy error into
heat (40 meV/atom is about 300 K); left alone, it compounds over cycles."""

MAX_FORCE = 50.0
"""Largest force component (eV/Angstrom) an MD step may show; MD at a few
hundred K on a trusted potential stays one to two orders of magnitude below."""

DISTANCE_MARGIN = 0.6
"""A pair is too close below this fraction of its shortest training distance
(0.6 leaves room for new bonds, e.g. S-S at 2.05 A where the training set's
shortest S-S is 3.3 A, and flags atoms pressed into each other)."""

CONTACT_TOLERANCE = 0.1
"""Angstrom: an MLP-MD pair may come this much closer than the run's reference
dynamics ever brought it (the fidelity gate allows the same below the pure-AIMD
ensemble's closest contact)."""

CONTACT_RANGE = 4.0
"""Angstrom: a pair the reference kept farther apart is held to this distance."""

CHECK_EVERY_FS = 10.0
"""fs between reference checks inside an MLP-MD segment: the mini Li | Li6PS5Cl's
audited force error crosses 0.15 eV/Angstrom within about 50 fs of a hand-over."""

TEMPERATURE_FACTOR = 3.0
"""The temperature has run away above this multiple of the thermostat target."""

TEMPERATURE_BAND = 0.25
"""Half-width of the running-temperature band around the target, as a fraction."""

TEMPERATURE_WINDOW_FS = 100.0
"""The running temperature is the mean over this much MD time: a 42-atom cell's
instantaneous temperature scatters by sqrt(2/3N), 13 % at 300 K."""

GAMMA_SELECT = 2.0
"""MLIP's default ``select:threshold`` (MLIP-3's ``threshold_save``): frames
graded above it are extrapolating enough to be worth labelling."""

ACTIVE_SET_FRAMES = 300
"""Training frames the active set is chosen from: the MaxVol selection costs
one pass over all candidate rows per swap, so the candidates are bounded."""


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and what is allowed."""


class _Section(BaseModel):
    """A spec section; makers carry theirs, so it serializes the way jobflow needs."""

    model_config = ConfigDict(extra="forbid")

    def as_dict(self) -> dict:
        """monty's form (jobflow serializes makers and their fields with monty)."""
        cls = type(self)
        return {
            "@module": cls.__module__, "@class": cls.__name__,
            **self.model_dump(mode="json"),
        }

    @classmethod
    def from_dict(cls, data: dict):
        """The section of :meth:`as_dict`'s form."""
        return cls.model_validate({k: v for k, v in data.items() if not k.startswith("@")})


class SystemSpec(_Section):
    """Which structure to simulate: a named builder or a structure file."""

    builder: str | None = Field(None, description=f"One of {sorted(BUILDER_NAMES)}.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the builder."
    )
    file: str | None = Field(None, description="Structure file (CIF, POSCAR, ...).")

    @field_validator("builder")
    @classmethod
    def _known_builder(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILDER_NAMES:
            raise ValueError(
                f"unknown builder {value!r}; allowed: {sorted(BUILDER_NAMES)}"
            )
        return value


class ReferenceSpec(_Section):
    """AIMD segments on the reference engine."""

    engine: Literal["xtb", "lj", "vasp", "cp2k"] = Field(
        "xtb",
        description="'xtb' = GFN1-xTB (tblite); 'lj' = analytic, for tests; "
        "'vasp' = VASP PBE+D3 under custodian (needs HAML_VASP_CMD); "
        "'cp2k' = CP2K PBE+GTH+D3 under custodian (needs HAML_CP2K_CMD).",
    )
    steps: int = Field(20, gt=0, description="AIMD steps per segment.")
    time_step: float = Field(1.0, gt=0, description="AIMD time step, fs.")
    temperature: float = Field(300.0, gt=0, description="Thermostat target, K.")
    thermostat_time: float = Field(
        NOSE_HOOVER_TIME_FS, gt=0, description="Nose-Hoover characteristic time, fs."
    )
    seed: int = Field(42, description="Seed of the first Maxwell-Boltzmann draw.")
    lengthen_factor: float = Field(
        2.0, ge=1,
        description="After a cycle whose audit failed, whose MLP-MD a guard stopped "
        "or whose training kept the previous potential, the next AIMD segment is this "
        "many times the last one (up to max_steps); a clean cycle returns to steps.",
    )
    max_steps: int | None = Field(
        None, gt=0,
        description="Longest AIMD segment lengthening may reach; None = 4 x steps.",
    )

    @property
    def longest(self) -> int:
        """The AIMD segment lengthening stops at."""
        return self.max_steps if self.max_steps is not None else 4 * self.steps

    @model_validator(mode="after")
    def _longest_not_below_steps(self) -> ReferenceSpec:
        if self.max_steps is not None and self.max_steps < self.steps:
            raise ValueError(
                f"max_steps ({self.max_steps}) must be at least steps ({self.steps})"
            )
        return self


class OptimizationSpec(_Section):
    """Geometry optimization before the first cycle (fixed cell)."""

    enabled: bool = Field(True, description="Run the optimization.")
    fmax: float = Field(0.1, gt=0, description="Force criterion, eV/Angstrom.")
    steps: int = Field(30, ge=0, description="Maximum optimizer steps.")


class MtpSpec(_Section):
    """Moment Tensor Potential training."""

    engine: Literal["motep", "mlip"] | None = Field(
        None,
        description="'motep' (embedded) or 'mlip' (MLIP's mlp, needs HAML_MLP_CMD); "
        "None = mlip when the worker has HAML_MLP_CMD set, else motep.",
    )
    level: int = Field(12, description="lev_max, even, 2 to 28.")
    cutoff: float = Field(5.0, gt=0, description="Radial cutoff, Angstrom.")
    min_dist: float | None = Field(
        None, gt=0, description="Inner radius, Angstrom; None = from the frames."
    )
    species: list[str] | None = Field(
        None, description="Elements the potential describes; None = the system's."
    )
    radial_iterations: int = Field(
        30, ge=0, description="L-BFGS iterations on radial coefficients per training."
    )
    rounds: int = Field(
        3,
        ge=1,
        description=(
            "Rounds of (L-BFGS on the radial coefficients, then linear least "
            "squares) per training; more rounds fit better at proportional cost "
            "(3 with force_weight 0.1: force RMSE on the next 200 fs of the mini "
            "Li | Li6PS5Cl 0.124 eV/A against 0.163 with 1 round and 0.01, after "
            "800 frames; bench/fit_sweep.py)."
        ),
    )
    warm_rounds: int | None = Field(
        1,
        ge=1,
        description=(
            "Rounds when the fit starts from the previous cycle's potential (every "
            "training after the first); None = ``rounds``. A warm start already "
            "sits near the fit: 1 round on 800 frames of the mini Li | Li6PS5Cl, "
            "from the fit on the first 700, reaches 0.119 eV/A on the next 200 fs "
            "in 41 CPU s, where 3 rounds from scratch reach 0.124 in 132 "
            "(bench/fit_sweep.py)."
        ),
    )
    radial_frames: int | None = Field(
        20,
        gt=0,
        description=(
            "Cap on training frames (evenly spaced) seen by the L-BFGS stage; "
            "None = all. Bounds training time as the training set grows."
        ),
    )
    linear_frames: int | None = Field(
        100,
        gt=0,
        description=(
            "Cap on training frames seen by the linear least-squares stages: the "
            "newest half of them and older ones evenly spaced; None = all."
        ),
    )
    holdout_fraction: float = Field(
        0.2, ge=0, lt=1,
        description="Fraction of frames held out for errors, spread over the run; the "
        "newest frame (where the MLP-MD starts) is always trained on.",
    )
    energy_weight: float = Field(1.0, ge=0, description="Loss weight of energies.")
    force_weight: float = Field(
        0.1, ge=0,
        description="Loss weight of forces (per component, against 1 per frame energy). "
        "MLIP's 0.01 leaves the force fit above the audit threshold on the mini "
        "Li | Li6PS5Cl; 0.1 fits forces better at the same cost (bench/fit_sweep.py).",
    )
    stress_weight: float = Field(0.001, ge=0, description="Loss weight of stresses.")
    seed: int = Field(0, description="Seed of the training.")
    grade_mode: Literal["neighborhood", "configuration"] = Field(
        "neighborhood",
        description="Rows of the extrapolation grade (MLIP's al_mode): site energies "
        "('neighborhood', MLIP's default and what MLP-MD watches) or configuration "
        "energies ('configuration').",
    )
    active_set_frames: int | None = Field(
        ACTIVE_SET_FRAMES,
        gt=0,
        description="Cap on the training frames the grade's active set is chosen "
        "from (the newest half and older ones evenly spaced); None = all.",
    )

    def fit_settings(self) -> dict:
        """The fields the fit takes (not the engine, species or the grade's)."""
        return self.model_dump(
            exclude={"engine", "species", "grade_mode", "active_set_frames"}
        )

    @field_validator("level")
    @classmethod
    def _even_level(cls, value: int) -> int:
        if value % 2 or not 2 <= value <= 28:
            raise ValueError(f"level must be even and in 2..28, got {value}")
        return value

    @field_validator("species")
    @classmethod
    def _real_elements(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [s for s in value if not Element.is_valid_symbol(s)]
        if unknown:
            raise ValueError(f"unknown elements {unknown}; use element symbols")
        return value


class MlpMdSpec(_Section):
    """MLP-MD segments with the extrapolation grade watching."""

    engine: Literal["ase", "lammps"] = Field(
        "ase",
        description="'ase' (embedded, motep) or 'lammps' (LAMMPS + MLIP, needs "
        "HAML_LMP_CMD and HAML_MLP_CMD).",
    )
    time_step: float = Field(0.5, gt=0, description="Time step, fs.")
    max_steps: int = Field(2000, gt=0, description="Step limit of one segment.")
    continue_trusted: bool = Field(
        True,
        description="A segment that reaches max_steps without a gamma break or a "
        "collapse is trusted: the next cycle continues MLP-MD with the same "
        "potential, without AIMD or training.",
    )
    gamma_break: float = Field(10.0, gt=1, description="Stop when gamma exceeds it.")
    gamma_every: int = Field(1, gt=0, description="Evaluate gamma every k steps.")
    gamma_select: float = Field(
        GAMMA_SELECT, gt=1,
        description="Frames graded above it (and not above gamma_break) are kept "
        "for labelling, as MLIP's select:threshold.",
    )
    max_selected: int = Field(
        20, ge=0,
        description="Most frames a segment keeps above gamma_select (the highest "
        "graded, at least save_interval steps apart).",
    )
    temperature: float = Field(300.0, gt=0, description="Thermostat target, K.")
    thermostat_time: float = Field(
        NOSE_HOOVER_TIME_FS, gt=0, description="Nose-Hoover characteristic time, fs."
    )
    start_temperature_factor: float = Field(
        START_TEMPERATURE_FACTOR, gt=1,
        description="A segment whose start frame is hotter than this multiple of the "
        "target (heat the reference engine released after a hand-over) starts "
        "with its velocities scaled down to the target.",
    )
    save_interval: int = Field(10, gt=0, description="Store every k-th frame.")
    max_force: float = Field(
        MAX_FORCE, gt=0, description="Collapse guard: largest force component, eV/Angstrom."
    )
    distance_margin: float = Field(
        DISTANCE_MARGIN, gt=0, le=1,
        description="Collapse guard: fraction of a pair's shortest training distance "
        "(capped at the covalent radii sum) below which two atoms have collapsed.",
    )
    contact_tolerance: float | None = Field(
        CONTACT_TOLERANCE, ge=0,
        description="Guard: a segment is stopped when a pair comes more than this "
        "(Angstrom) closer than the run's reference dynamics ever brought it (at most "
        f"{CONTACT_RANGE:g} A); None leaves only the distance_margin rule.",
    )
    temperature_factor: float = Field(
        TEMPERATURE_FACTOR, gt=1,
        description="Collapse guard: temperature limit / thermostat target.",
    )
    temperature_band: float | None = Field(
        TEMPERATURE_BAND, gt=0, lt=1,
        description="Guard: a segment whose running temperature (mean over "
        "temperature_window_fs) leaves target x (1 +- band) is stopped and handed "
        "over, with the velocities of the frame handed over scaled to the target; "
        "None switches the guard off.",
    )
    temperature_window_fs: float = Field(
        TEMPERATURE_WINDOW_FS, gt=0,
        description="Window of the running temperature, fs; the band is checked once "
        "half of it has run.",
    )

    @model_validator(mode="after")
    def _select_below_break(self) -> MlpMdSpec:
        if self.gamma_select >= self.gamma_break:
            raise ValueError(
                f"gamma_select ({self.gamma_select:g}) must be below gamma_break "
                f"({self.gamma_break:g}): frames are selected between the two"
            )
        return self


class AuditSpec(_Section):
    """The MLP checked against the reference engine along its own MLP-MD, every cycle."""

    enabled: bool = Field(
        True,
        description="Relabel frames of every MLP-MD segment with the reference engine.",
    )
    frames: int = Field(
        4, gt=0,
        description="Frames relabelled per segment, evenly spaced over its saved "
        "frames, the last one (the frame handed over) always among them.",
    )
    selected_frames: int = Field(
        4, ge=0,
        description="The segment's highest-graded selected frames (above "
        "mlpmd.gamma_select) relabelled too; all relabelled frames join the training set.",
    )
    max_force_rmse: float = Field(
        0.15, gt=0,
        description="eV/Angstrom: a segment that reached max_steps is continued on the "
        "same potential only if the force RMSE of its audited frames is at most this.",
    )
    check_every_fs: float | None = Field(
        CHECK_EVERY_FS, gt=0,
        description="Reference checks inside each MLP-MD segment, every this many fs: "
        "the segment stops at the first check whose force RMSE exceeds max_force_rmse, "
        "rolled back to the last check that passed, and hands over to AIMD; None: "
        "no checks (the audit alone). ASE MLP-MD only.",
    )


class StopSpec(_Section):
    """When the cycle loop ends: whichever rule is met first."""

    total_time_ps: float = Field(10.0, gt=0, description="Total simulated time, ps.")
    max_cycles: int = Field(10, gt=0, description="Maximum number of cycles.")


class RunSpec(_Section):
    """A whole HAML run."""

    name: str = Field(description="Run name (used in the run id).")
    system: SystemSpec = Field(description="The structure.")
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec)
    optimization: OptimizationSpec = Field(default_factory=OptimizationSpec)
    mtp: MtpSpec = Field(default_factory=MtpSpec)
    mlpmd: MlpMdSpec = Field(default_factory=MlpMdSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    stop: StopSpec = Field(default_factory=StopSpec)

    @model_validator(mode="after")
    def _checks_where_they_run(self) -> RunSpec:
        """In-segment checks run on the ASE MLP-MD with an audit; the default yields elsewhere."""
        audit = self.audit
        if audit.check_every_fs is None:
            return self
        explicit = "check_every_fs" in audit.model_fields_set
        if self.mlpmd.engine == "lammps" or not audit.enabled:
            if explicit:
                where = ("mlpmd.engine 'lammps' runs no in-segment checks"
                         if self.mlpmd.engine == "lammps" else "audit.enabled is false")
                raise ValueError(
                    f"audit.check_every_fs ({audit.check_every_fs:g}) cannot apply: "
                    f"{where}; set it to null"
                )
            self.audit = audit.model_copy(update={"check_every_fs": None})
        elif audit.check_every_fs < self.mlpmd.time_step:
            raise ValueError(
                f"audit.check_every_fs ({audit.check_every_fs:g} fs) is shorter than "
                f"mlpmd.time_step ({self.mlpmd.time_step:g} fs); allowed: >= the time step"
            )
        return self

    def check_against(self, structure: Structure) -> None:
        """Fail when atoms overlap or the potential's settings cannot describe them."""
        if self.mtp.min_dist is not None and self.mtp.cutoff <= self.mtp.min_dist:
            raise SpecError(
                f"mtp.cutoff ({self.mtp.cutoff}) must be above mtp.min_dist "
                f"({self.mtp.min_dist})"
            )
        closest = closest_pair(structure)
        if closest is not None:
            i, j, shortest = closest
            if shortest < MIN_ATOM_SEPARATION:
                raise SpecError(
                    f"system: atoms {i} ({structure[i].specie}) and {j} "
                    f"({structure[j].specie}) are {shortest:.2f} A apart "
                    f"(minimum {MIN_ATOM_SEPARATION} A)"
                )
            if self.mtp.cutoff <= shortest:
                raise SpecError(
                    f"mtp.cutoff ({self.mtp.cutoff}) must be above the shortest "
                    f"interatomic distance of the system ({shortest:.2f} A), else the "
                    "potential sees no neighbours; allowed: cutoff > "
                    f"{max(shortest, self.mtp.min_dist or 0):.2f}"
                )
        elements = sorted({site.specie.symbol for site in structure})
        if self.reference.engine == "xtb":
            beyond = [e for e in elements if Element(e).Z > _XTB_MAX_Z]
            if beyond:
                raise SpecError(
                    f"reference.engine 'xtb' (GFN1-xTB) cannot describe {beyond}; "
                    f"allowed: elements H to Rn (Z <= {_XTB_MAX_Z})"
                )
        if self.mtp.species is not None:
            missing = sorted(set(elements) - set(self.mtp.species))
            if missing:
                raise SpecError(
                    f"mtp.species {self.mtp.species} does not cover the system's "
                    f"elements {missing}"
                )


_XTB_MAX_Z = 86  # GFN1-xTB is parametrized for H to Rn
MIN_ATOM_SEPARATION = 0.5
"""Angstrom; two atoms closer than this are an input error, not a structure."""


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names of the section that ``loc`` points into."""
    model: Any = RunSpec
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return sorted(model.model_fields) if issubclass(model, BaseModel) else []


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        message = err["msg"]
        if err["type"] == "value_error":  # our validators' own words, without pydantic's prefix
            message = str(err["ctx"]["error"])
        if err["type"] == "extra_forbidden":
            message = f"unknown key; allowed: {_allowed_keys(err['loc'])}"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_spec(data: dict) -> RunSpec:
    """Validate a spec mapping, raising SpecError with field names."""
    if not isinstance(data, dict):
        raise SpecError("spec: the file must hold a mapping at the top level")
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_error(exc)) from None


def load_spec(path: str | Path) -> RunSpec:
    """Read and validate a spec file."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"spec file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: malformed YAML: {exc}") from None
    return parse_spec(data)
