"""MTP training seam: motep (or MLIP's ``mlp train``) on all reference frames so far."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from jobflow import Maker, job
from pymatgen.core import Element
from pymatgen.core.trajectory import Trajectory

from haml_flows.engines.commands import MLP
from haml_flows.engines.frames import measure_cost, trajectory_frames
from haml_flows.engines.mlip import train_with_mlp
from haml_flows.faults.training_fallback import fit_or_keep_previous, held_out_errors
from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
from haml_flows.mtp.training import train_mtp
from haml_flows.mtp.grade import GradeError, candidate_active_set
from haml_flows.schemas import ActiveSetDoc, TrainingDoc
from haml_flows.spec import MtpSpec
from haml_flows.progress import link_job_folder

logger = logging.getLogger(__name__)


def active_set_record(
    potential: str, frames: list, mtp: MtpSpec
) -> tuple[ActiveSetDoc | None, list[list[int]] | None]:
    """The grade's active set of a trained potential, as a document and its slots.

    Chosen from at most ``mtp.active_set_frames`` training frames in
    ``mtp.grade_mode``, as MLIP builds it; None for a potential whose
    derivatives are not finite (MLP-MD then runs without a grade and the
    collapse guard stops it at its first force call).
    """
    with measure_cost() as meter:
        try:
            active, candidates = candidate_active_set(
                potential, frames, mode=mtp.grade_mode, max_frames=mtp.active_set_frames
            )
        except GradeError as exc:
            logger.warning("no active set for the grade: %s", exc)
            return None, None
    if active.shortfall:
        logger.warning(
            "active set short of %d rows for the %d parameters its %d candidate "
            "frames excite: MLP-MD will break as soon as it leaves the training frames",
            active.shortfall, active.n_params, len(candidates),
        )
    doc = ActiveSetDoc(
        mode=active.mode,
        n_params=active.n_params,
        candidate_frames=candidates,
        n_candidates=active.n_candidates,
        shortfall=active.shortfall,
        uncovered=len(active.uncovered),
        uncovered_blocks=active.uncovered_blocks(),
        cost=meter.cost,
    )
    return doc, active.slots.tolist()


@dataclass
class MtpTrainMaker(Maker):
    """Train an MTP on the previous training set plus one new AIMD segment.

    The training set grows by the new frames every cycle and is stored with
    the potential, so each training sees every reference frame of the run;
    the previous potential is the starting point of the fit. ``mtp`` is the
    spec's section: its fields are the fit's settings.

    ``mtp.engine`` 'mlip' trains with MLIP's ``mlp train``, with the command
    read on the worker (``HAML_MLP_CMD``, or ``mlp_cmd`` here); unset, it is
    mlip when the worker has an ``mlp`` command and motep otherwise. MLIP runs
    its own optimizer, so ``radial_iterations``, ``rounds``, ``warm_rounds``,
    ``radial_frames``, ``linear_frames`` and ``seed`` apply to motep only.

    A fit that fails, ends with a non-finite loss or does worse on the
    held-out frames than the previous potential is not used: the previous
    potential is kept and ``fallback`` says why (``faults.training_fallback``).
    """

    name: str = "mtp training"
    mtp: MtpSpec = field(default_factory=MtpSpec)
    mlp_cmd: str | None = None

    def command_setting(self) -> str | None:
        """The ``mlp`` command setting this job reads here; None: it trains with motep."""
        if self.mtp.engine == "motep":
            return None
        return MLP.setting_value(self.mlp_cmd)

    def _mlp_command(self) -> str | None:
        if self.mtp.engine == "motep":
            return None
        if self.mtp.engine == "mlip":
            return MLP.require(self.mlp_cmd)
        return MLP.resolve(self.mlp_cmd)

    @job(data=["potential", "training_set", "active_set_slots"])
    def make(
        self,
        trajectory: Trajectory,
        previous_training_set: str | None = None,
        previous_potential: str | None = None,
        labelled: list[Trajectory | None] | None = None,
    ) -> TrainingDoc:
        """Add the segment's frames to the training set and fit the potential.

        ``labelled`` are MLP-MD frames the reference engine relabelled since
        the last training (the audits'); they join before the new AIMD frames,
        the newest of which is always trained on.
        """
        link_job_folder()
        species = [Element(s).Z for s in self.mtp.species] if self.mtp.species else None
        old_frames = (
            cfg_to_frames(previous_training_set, species=species)
            if previous_training_set
            else []
        )
        audited = [f for t in labelled or [] if t is not None for f in trajectory_frames(t)]
        for atoms in audited:
            atoms.info["origin"] = "audit"  # MLP-MD geometry, reference labels
        frames = old_frames + audited + trajectory_frames(trajectory)
        settings = {
            "previous": previous_potential,
            "species": species,
            **self.mtp.fit_settings(),
        }
        mlp_cmd = self._mlp_command()

        def fit():  # noqa: ANN202
            if mlp_cmd is None:
                return train_mtp(frames, **settings)
            return train_with_mlp(frames, mlp_cmd=mlp_cmd, **settings)

        with measure_cost() as meter:
            fit_or_kept = fit_or_keep_previous(
                fit, old_frames, frames, previous_potential,
                lambda: held_out_errors(frames, **settings),
            )
            frames = fit_or_kept.frames
            active_set, slots = active_set_record(fit_or_kept.potential, frames, self.mtp)
        return TrainingDoc(
            engine="motep" if mlp_cmd is None else "mlip-mlp",
            potential=fit_or_kept.potential,
            training_set=frames_to_cfg(frames),
            level=self.mtp.level,
            cutoff=self.mtp.cutoff,
            training_set_size=len(frames),
            n_train=fit_or_kept.n_train,
            n_test=fit_or_kept.n_test,
            energy_rmse=fit_or_kept.energy_rmse,
            force_rmse=fit_or_kept.force_rmse,
            warm_started=previous_potential is not None,
            cost=meter.cost,
            active_set=active_set,
            active_set_slots=slots,
            fallback=fit_or_kept.fallback,
        )
