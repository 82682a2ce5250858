"""MTP training seam: motep (or MLIP's ``mlp train``) on all reference frames so far."""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import Maker, job
from pymatgen.core import Element
from pymatgen.core.trajectory import Trajectory

from haml_flows.engines.frames import measure_cost, trajectory_frames
from haml_flows.faults.training_fallback import fit_or_keep_previous, held_out_errors
from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
from haml_flows.mtp.mlip_binary import resolve_mlp_cmd, train_with_mlp
from haml_flows.mtp.training import train_mtp
from haml_flows.schemas import TrainingDoc


@dataclass
class MtpTrainMaker(Maker):
    """Train an MTP on the previous training set plus one new AIMD segment.

    The training set grows by the new frames every cycle and is stored with
    the potential, so each training sees every reference frame of the run;
    the previous potential is the starting point of the fit.

    ``mlp_cmd`` (e.g. ``"mpirun -n 4 mlp"``, or ``">>mlp_cmd<<"`` for the
    FireWorker's ``env.mlp_cmd``) trains with MLIP's ``mlp train`` instead of
    motep; ``None`` (or an empty worker entry) uses motep. MLIP runs its own
    optimizer with its default iteration limit, so ``radial_iterations``,
    ``rounds``, ``radial_frames`` and ``seed`` apply to motep only. ``radial_frames``
    caps the frames of the L-BFGS stage (evenly spaced over the run) and
    ``linear_frames`` those of the linear stages (the newest half and older
    ones evenly spaced), which keeps a cycle's training time bounded while
    the training set grows.

    A fit that fails, ends with a non-finite loss or does worse on the
    held-out frames than the previous potential is not used: the previous
    potential is kept and ``fallback`` says why (``faults.training_fallback``).
    """

    name: str = "mtp training"
    level: int = 12
    cutoff: float = 5.0
    min_dist: float | None = None
    species: list[str] | None = None
    radial_iterations: int = 30
    rounds: int = 1
    radial_frames: int | None = 20
    linear_frames: int | None = 100
    holdout_fraction: float = 0.2
    energy_weight: float = 1.0
    force_weight: float = 0.01
    stress_weight: float = 0.001
    seed: int = 0
    mlp_cmd: str | None = None

    @job(data=["potential", "training_set"])
    def make(
        self,
        trajectory: Trajectory,
        previous_training_set: str | None = None,
        previous_potential: str | None = None,
    ) -> TrainingDoc:
        """Add the segment's frames to the training set and fit the potential."""
        species = [Element(s).Z for s in self.species] if self.species else None
        old_frames = (
            cfg_to_frames(previous_training_set, species=species)
            if previous_training_set
            else []
        )
        frames = old_frames + trajectory_frames(trajectory)
        common = {
            "previous": previous_potential,
            "level": self.level,
            "species": species,
            "cutoff": self.cutoff,
            "min_dist": self.min_dist,
            "holdout_fraction": self.holdout_fraction,
            "energy_weight": self.energy_weight,
            "force_weight": self.force_weight,
            "stress_weight": self.stress_weight,
            "seed": self.seed,
        }
        mlp_cmd = resolve_mlp_cmd(self.mlp_cmd)

        def fit():  # noqa: ANN202
            if mlp_cmd is None:
                return train_mtp(
                    frames,
                    radial_iterations=self.radial_iterations,
                    rounds=self.rounds,
                    radial_frames=self.radial_frames,
                    linear_frames=self.linear_frames,
                    **common,
                )
            return train_with_mlp(frames, mlp_cmd=mlp_cmd, **common)

        with measure_cost() as meter:
            fit_or_kept = fit_or_keep_previous(
                fit, old_frames, frames, previous_potential,
                lambda: held_out_errors(frames, **common),
            )
        frames = fit_or_kept.frames
        return TrainingDoc(
            engine="motep" if mlp_cmd is None else "mlip-mlp",
            potential=fit_or_kept.potential,
            training_set=frames_to_cfg(frames),
            level=self.level,
            cutoff=self.cutoff,
            training_set_size=len(frames),
            n_train=fit_or_kept.n_train,
            n_test=fit_or_kept.n_test,
            energy_rmse=fit_or_kept.energy_rmse,
            force_rmse=fit_or_kept.force_rmse,
            warm_started=previous_potential is not None,
            cost=meter.cost,
            fallback=fit_or_kept.fallback,
        )
