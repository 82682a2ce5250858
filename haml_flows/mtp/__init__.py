"""Moment Tensor Potentials: basis generation, training data, training, grading."""

from haml_flows.mtp.basis import untrained_mtp, write_untrained_mtp
from haml_flows.mtp.frames import cfg_to_frames, frames_to_cfg
from haml_flows.mtp.grade import ActiveSet, GammaCalculator, load_potential, mtp_calculator
from haml_flows.mtp.training import TrainingResult, train_mtp

__all__ = [
    "ActiveSet",
    "GammaCalculator",
    "TrainingResult",
    "cfg_to_frames",
    "frames_to_cfg",
    "load_potential",
    "mtp_calculator",
    "train_mtp",
    "untrained_mtp",
    "write_untrained_mtp",
]
