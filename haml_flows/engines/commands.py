"""Engine commands, read inside each job on the worker, and running them.

Embedded engines (GFN1-xTB, Lennard-Jones, motep, ASE) need no command.
Production engines take theirs from the settings of the machine the job runs
on (``HAML_VASP_CMD``, ``HAML_CP2K_CMD``, ``HAML_MLP_CMD``, ``HAML_LMP_CMD``
or the config file), as atomate2's ``run_vasp`` reads ``VASP_CMD``; a maker
field can override the setting. The value ``">>vasp_cmd<<"`` (FireWorks'
env_chk syntax) means ``env.vasp_cmd`` of the FireWorker running the job: the
worker file ``rlaunch``/``qlaunch`` was started with, or FireWorks' default
``my_fworker.yaml`` outside FireWorks.

This module imports nothing of the package but the settings, so every engine
and the cycle's factory can use it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from haml_flows.settings import HamlSettings, get_settings

PLACEHOLDER = re.compile(r"^>>(\w+)<<$")
TAIL_LINES = 20
"""Lines of a failed program's stderr (or stdout) quoted in its error."""


class EngineError(RuntimeError):
    """An engine's command is missing or cannot start where the job runs."""


class CommandError(RuntimeError):
    """An external program could not start, timed out or failed."""


def _running_fworker_env() -> dict | None:
    """``env`` of the FireWorker whose Rocket runs this code; None outside FireWorks.

    FireWorks hands a job no handle on its worker, but the job runs inside
    ``Rocket.run``, which holds the FWorker that ``rlaunch -w FILE`` (or any
    launcher) built.
    """
    rocket_module = sys.modules.get("fireworks.core.rocket")
    if rocket_module is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, rocket_module.Rocket):
            return dict(owner.fworker.env or {})
        frame = frame.f_back
    return None


def fworker_file_env(fworker_file: str | Path | None = None) -> dict:
    """``env`` of a FireWorker file (FireWorks' default ``FWORKER_LOC`` if none given)."""
    import yaml

    if fworker_file is None:
        from fireworks import fw_config

        fworker_file = fw_config.FWORKER_LOC
    if not fworker_file or not Path(fworker_file).exists():
        return {}
    content = yaml.safe_load(Path(fworker_file).read_text()) or {}
    env = content.get("env") if isinstance(content, dict) else None
    return env if isinstance(env, dict) else {}


def fworker_env(key: str, fworker_file: str | Path | None = None) -> str | None:
    """``env.<key>`` of the FireWorker running this job, or of ``fworker_file``."""
    env = _running_fworker_env() if fworker_file is None else None
    if env is None:
        env = fworker_file_env(fworker_file)
    value = env.get(key)
    return None if value is None else (str(value).strip() or None)


def resolve_command(value: str | None, fworker_file: str | Path | None = None) -> str | None:
    """The command to run: ``">>key<<"`` is looked up in the FireWorker's env."""
    if value is None or not value.strip():
        return None
    match = PLACEHOLDER.match(value.strip())
    if match:
        return fworker_env(match.group(1), fworker_file)
    return value.strip()


@dataclass(frozen=True)
class EngineCommand:
    """An external engine's command: its setting, its worker env key and an example."""

    spec_field: str
    engine: str
    setting: str
    fworker_key: str
    example: str

    def setting_value(
        self, override: str | None = None, settings: HamlSettings | None = None
    ) -> str | None:
        """The maker's ``override``, else this machine's setting (a command or ``>>key<<``)."""
        value = override if override is not None else getattr(get_settings(settings), self.setting)
        return value.strip() if value and value.strip() else None

    def resolve(
        self, override: str | None = None, fworker_file: str | Path | None = None
    ) -> str | None:
        """The command to run here, or None when none is configured."""
        return resolve_command(self.setting_value(override), fworker_file)

    def require(
        self, override: str | None = None, fworker_file: str | Path | None = None
    ) -> str:
        """The command to run here, or an EngineError that says where to configure it."""
        value = self.setting_value(override)
        command = resolve_command(value, fworker_file)
        if command is None:
            where = (
                f"env.{self.fworker_key} of my_fworker.yaml is missing or empty"
                if value and PLACEHOLDER.match(value)
                else f"HAML_{self.setting} is not set"
            )
            raise EngineError(
                f"{self.spec_field} '{self.engine}' needs a command, but {where}; set "
                f"HAML_{self.setting} (e.g. '{self.example}') or '>>{self.fworker_key}<<' "
                f"with env.{self.fworker_key} in my_fworker.yaml"
            )
        return command

    def submission_problem(self, settings: HamlSettings | None = None) -> str | None:
        """Why a spec using this engine cannot be submitted from here, or None.

        A ``>>key<<`` value is checked on the worker when the job runs (this
        machine's FireWorker file need not be the worker's); a plain command
        must name an executable found on PATH.
        """
        value = self.setting_value(settings=settings)
        if value is None:
            return (
                f"{self.spec_field}: '{self.engine}' needs a command: set "
                f"HAML_{self.setting} (e.g. '{self.example}'), or "
                f"HAML_{self.setting}='>>{self.fworker_key}<<' and "
                f"env.{self.fworker_key} in my_fworker.yaml"
            )
        if PLACEHOLDER.match(value):
            return None
        words = shlex.split(value)
        if not words or shutil.which(words[0]) is None:
            return (
                f"{self.spec_field}: '{self.engine}' command HAML_{self.setting}={value!r}: "
                f"{words[0] if words else '(empty)'!r} is not an executable on PATH"
            )
        return None


VASP = EngineCommand("reference.engine", "vasp", "VASP_CMD", "vasp_cmd", "srun vasp_std")
CP2K = EngineCommand("reference.engine", "cp2k", "CP2K_CMD", "cp2k_cmd", "srun cp2k.psmp")
MLP = EngineCommand("mtp.engine", "mlip", "MLP_CMD", "mlp_cmd", "mpirun -n 4 mlp")
LMP = EngineCommand("mlpmd.engine", "lammps", "LMP_CMD", "lmp_cmd", "srun lmp")
COMMANDS = {(c.spec_field, c.engine): c for c in (VASP, CP2K, MLP, LMP)}


def output_tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a program's output."""
    return "\n".join(text.strip().splitlines()[-lines:])


def failure_message(proc: subprocess.CompletedProcess) -> str:
    """What a failed run says: the command, its exit status and its output's tail."""
    # MLIP writes many of its errors to stdout, so fall back to it
    tail = output_tail(proc.stderr) or output_tail(proc.stdout) or "(no output)"
    return f"`{shlex.join(proc.args)}` failed with exit status {proc.returncode}:\n{tail}"


def run_command(
    args: Sequence[str],
    cwd: str | Path,
    *,
    error: type[Exception] = CommandError,
    timeout: float | None = None,
    allowed_status: Sequence[int] = (0,),
    keep_output_as: str | None = None,
) -> subprocess.CompletedProcess:
    """Run an external program in ``cwd`` and return its finished process.

    Raises ``error`` when it cannot start, runs past ``timeout`` seconds or
    exits with a status outside ``allowed_status``. ``keep_output_as`` keeps
    stdout and stderr with the job as ``<name>.out`` and ``<name>.err``.
    """
    args = list(args)
    if not args:
        raise error("the command is empty")
    shown = shlex.join(args)
    try:
        proc = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise error(f"`{shown}` could not start: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"`{shown}` did not finish within {timeout} s") from exc
    if keep_output_as is not None:
        (Path(cwd) / f"{keep_output_as}.out").write_text(proc.stdout)
        (Path(cwd) / f"{keep_output_as}.err").write_text(proc.stderr)
    if proc.returncode not in allowed_status:
        raise error(failure_message(proc))
    return proc
