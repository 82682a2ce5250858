"""Which engine runs each stage, and the command that starts it.

Embedded engines (GFN1-xTB, Lennard-Jones, motep, ASE) need no command.
Production engines take theirs from the settings (``HAML_VASP_CMD``,
``HAML_CP2K_CMD``, ``HAML_MLP_CMD``, ``HAML_LMP_CMD`` or the config file),
where the value ``">>vasp_cmd<<"`` (FireWorks' env_chk syntax) means
"``env.vasp_cmd`` of the FireWorker's ``my_fworker.yaml``, read on the worker
when the job runs". A spec naming an engine without a usable command fails
at submission, before any job exists.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from haml_flows.spec import SpecError

_PLACEHOLDER = re.compile(r"^>>(\w+)<<$")


@dataclass(frozen=True)
class EngineCommand:
    """The command an external engine needs: where it is configured and an example."""

    spec_field: str
    engine: str
    setting: str
    fworker_key: str
    example: str


COMMANDS = {
    ("reference.engine", "vasp"): EngineCommand(
        "reference.engine", "vasp", "VASP_CMD", "vasp_cmd", "srun vasp_std"
    ),
    ("reference.engine", "cp2k"): EngineCommand(
        "reference.engine", "cp2k", "CP2K_CMD", "cp2k_cmd", "srun cp2k.psmp"
    ),
    ("mtp.engine", "mlip"): EngineCommand(
        "mtp.engine", "mlip", "MLP_CMD", "mlp_cmd", "mpirun -n 4 mlp"
    ),
    ("mlpmd.engine", "lammps"): EngineCommand(
        "mlpmd.engine", "lammps", "LMP_CMD", "lmp_cmd", "srun lmp"
    ),
}


class EngineError(RuntimeError):
    """An engine's command is missing or cannot start where the job runs."""


def fworker_env(key: str, fworker_file: str | Path | None = None) -> str | None:
    """``env.<key>`` of the FireWorker file (FireWorks' ``FWORKER_LOC`` by default)."""
    import yaml

    if fworker_file is None:
        from fireworks import fw_config

        fworker_file = fw_config.FWORKER_LOC
    if not fworker_file or not Path(fworker_file).exists():
        return None
    content = yaml.safe_load(Path(fworker_file).read_text()) or {}
    env = content.get("env") or {} if isinstance(content, dict) else {}
    value = env.get(key)
    return None if value is None else (str(value).strip() or None)


def resolve_command(
    value: str | None, fworker_file: str | Path | None = None
) -> str | None:
    """The command to run: ``">>key<<"`` is looked up in the FireWorker's env."""
    if value is None or not value.strip():
        return None
    match = _PLACEHOLDER.match(value.strip())
    if match:
        return fworker_env(match.group(1), fworker_file)
    return value.strip()


def require_command(
    value: str | None, what: EngineCommand, fworker_file: str | Path | None = None
) -> str:
    """The resolved command, or an EngineError that says where to configure it."""
    command = resolve_command(value, fworker_file)
    if command is None:
        where = (
            f"env.{what.fworker_key} of my_fworker.yaml is missing or empty"
            if value and _PLACEHOLDER.match(value.strip())
            else f"HAML_{what.setting} is not set"
        )
        raise EngineError(
            f"{what.spec_field} '{what.engine}' needs a command, but {where}; set "
            f"HAML_{what.setting} (e.g. '{what.example}') or '>>{what.fworker_key}<<' "
            f"with env.{what.fworker_key} in my_fworker.yaml"
        )
    return command


def check_command(spec_field: str, engine: str, value: str | None) -> None:
    """Fail at submission when an external engine has no usable command.

    A ``>>key<<`` value is checked on the worker at run time, since the
    FireWorker file of the submitting machine need not be the worker's; a
    plain command must name an executable found on PATH here.
    """
    what = COMMANDS.get((spec_field, engine))
    if what is None:
        return
    if value is None or not value.strip():
        raise SpecError(
            f"{spec_field}: '{engine}' needs a command: set HAML_{what.setting} "
            f"(e.g. '{what.example}'), or HAML_{what.setting}='>>{what.fworker_key}<<' "
            f"and env.{what.fworker_key} in my_fworker.yaml"
        )
    if _PLACEHOLDER.match(value.strip()):
        return
    words = shlex.split(value)
    if not words or shutil.which(words[0]) is None:
        raise SpecError(
            f"{spec_field}: '{engine}' command HAML_{what.setting}={value!r}: "
            f"{words[0] if words else '(empty)'!r} is not an executable on PATH"
        )


def stage_makers(spec, settings=None) -> tuple:
    """(AIMD maker, training maker, MLP-MD maker) of a spec's engines.

    Checks every external engine's command first, so that a spec that cannot
    run fails before any job exists.
    """
    from haml_flows.engines.reference import aimd_maker_for, nose_hoover_kwargs
    from haml_flows.engines.training import MtpTrainMaker
    from haml_flows.settings import HamlSettings

    settings = settings or HamlSettings()
    ref, mtp, md = spec.reference, spec.mtp, spec.mlpmd
    configured_mlp = bool(settings.MLP_CMD and settings.MLP_CMD.strip())
    mlp_engine = mtp.engine or ("mlip" if configured_mlp else "motep")
    reference_cmd = {"vasp": settings.VASP_CMD, "cp2k": settings.CP2K_CMD}
    check_command("reference.engine", ref.engine, reference_cmd.get(ref.engine))
    check_command("mtp.engine", mlp_engine, settings.MLP_CMD)
    check_command("mlpmd.engine", md.engine, settings.LMP_CMD)
    if md.engine == "lammps":
        # MLIP builds the active set (state.als) that LAMMPS loads
        try:
            check_command("mtp.engine", "mlip", settings.MLP_CMD)
        except SpecError as exc:
            raise SpecError(f"mlpmd.engine 'lammps' needs MLIP's mlp too: {exc}") from None

    if ref.engine == "vasp":
        from haml_flows.engines.vasp import VaspAimdSegmentMaker

        aimd = VaspAimdSegmentMaker(
            n_steps=ref.steps, time_step=ref.time_step, temperature=ref.temperature,
            mb_velocity_seed=ref.seed, vasp_cmd=settings.VASP_CMD,
        )
    elif ref.engine == "cp2k":
        from haml_flows.engines.cp2k import Cp2kAimdSegmentMaker

        aimd = Cp2kAimdSegmentMaker(
            n_steps=ref.steps, time_step=ref.time_step, temperature=ref.temperature,
            thermostat_time=ref.thermostat_time, mb_velocity_seed=ref.seed,
            cp2k_cmd=settings.CP2K_CMD, data_dir=settings.CP2K_DATA_DIR,
        )
    else:
        aimd = aimd_maker_for(
            ref.engine, n_steps=ref.steps, time_step=ref.time_step,
            temperature=ref.temperature,
            ase_md_kwargs=nose_hoover_kwargs(ref.thermostat_time),
            mb_velocity_seed=ref.seed,
        )
    # the spec sections use the makers' field names
    train = MtpTrainMaker(
        **mtp.model_dump(exclude={"engine"}),
        mlp_cmd=settings.MLP_CMD if mlp_engine == "mlip" else None,
    )
    if md.engine == "lammps":
        from haml_flows.engines.lammps import LammpsMlpMdMaker

        # the collapse guard lives in the ASE loop; LAMMPS segments end at
        # MLIP's own gamma break, so the guard's thresholds do not apply
        guard = {"max_force", "distance_margin", "temperature_factor"}
        mlpmd = LammpsMlpMdMaker(
            **md.model_dump(exclude={"engine", "continue_trusted", *guard}),
            lmp_cmd=settings.LMP_CMD, mlp_cmd=settings.MLP_CMD,
        )
    else:
        from haml_flows.engines.mlpmd import MlpMdMaker

        mlpmd = MlpMdMaker(**md.model_dump(exclude={"engine", "continue_trusted"}))
    return aimd, train, mlpmd
