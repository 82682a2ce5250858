"""Li mean-square displacement, diffusion coefficient, Nernst-Einstein conductivity.

The MSD is streamed: positions are unwrapped frame by frame (minimum-image
fractional displacement between consecutive frames, so frames must be close
enough that no atom moves half a cell between them) and only the reference
and current positions of the tracked species are held, with one MSD value
per frame. The time origin is the first frame (single origin).
"""

from __future__ import annotations

import numpy as np

from haml_flows.analysis.timeline import as_frame

ELEMENTARY_CHARGE = 1.602176634e-19  # C
BOLTZMANN = 1.380649e-23  # J/K


#: an ion of the tracked species within this distance of another element at the
#: start belongs to the electrolyte (or its interface); one with only its own
#: kind around it is the metal (Li of the slab), left out of the MSD, Angstrom
CONTACT_CUTOFF = 3.0
#: a diffusive regime needs the MSD to reach about one Li hop squared ...
DIFFUSIVE_MIN_MSD_A2 = 4.0
#: ... and a log-log slope of MSD(t) near 1 over the fit window (2: ballistic)
DIFFUSIVE_SLOPE_RANGE = (0.7, 1.3)


def touches_other_elements(frame, mask: np.ndarray, cutoff: float) -> np.ndarray:
    """For each atom: True when ``mask`` holds it and another element is within ``cutoff``."""
    frac = np.asarray(frame.frac_coords, dtype=float)
    symbols = np.asarray(frame.symbols)
    lattice = np.asarray(frame.lattice, dtype=float)
    out = np.zeros(len(symbols), dtype=bool)
    others = np.flatnonzero(symbols != symbols[mask][0]) if mask.any() else []
    if not len(others):
        return out
    for i in np.flatnonzero(mask):
        d = frac[others] - frac[i]
        d -= np.round(d)
        out[i] = bool((np.linalg.norm(d @ lattice, axis=1) < cutoff).any())
    return out


def diffusive_regime(times_fs, msd_a2, fit_start: float = 0.1) -> tuple[bool, str]:
    """Whether the MSD shows diffusion, and the numbers that say so or not.

    Needs the final MSD to reach ``DIFFUSIVE_MIN_MSD_A2`` and the log-log slope
    of MSD(t) over the fit window to lie in ``DIFFUSIVE_SLOPE_RANGE``; a run
    too short (ballistic or caged motion) gets no diffusion coefficient.
    """
    t = np.asarray(times_fs, dtype=float)
    y = np.asarray(msd_a2, dtype=float)
    if len(t) < 3 or t[-1] <= t[0]:
        return False, "fewer than 3 frames"
    keep = (t >= t[0] + fit_start * (t[-1] - t[0])) & (t > 0) & (y > 0)
    if keep.sum() < 2:
        return False, "no positive MSD in the fit window"
    slope = float(np.polyfit(np.log(t[keep]), np.log(y[keep]), 1)[0])
    low, high = DIFFUSIVE_SLOPE_RANGE
    numbers = f"MSD reaches {y[-1]:.2g} Å² in {t[-1] / 1000:.3g} ps, log-log slope {slope:.2f}"
    if y[-1] < DIFFUSIVE_MIN_MSD_A2 or not low <= slope <= high:
        return False, (f"too short for a diffusive regime ({numbers}; needs ≥ "
                       f"{DIFFUSIVE_MIN_MSD_A2:g} Å² and a slope in {low}–{high})")
    return True, f"diffusive ({numbers})"


class MsdAccumulator:
    """<|r_i(t) - r_i(0)|^2> over atoms of ``species``, frame by frame."""

    def __init__(self, species: str = "Li", remove_drift: bool = False,
                 electrolyte_only: bool = False, contact_cutoff: float = CONTACT_CUTOFF
                 ) -> None:
        self.species = species
        self.remove_drift = remove_drift
        self.electrolyte_only = electrolyte_only
        self.contact_cutoff = contact_cutoff
        self.n_excluded = 0
        self.times_fs: list[float] = []
        self.msd: list[float] = []
        self.temperatures: list[float] = []
        self.volume: float | None = None
        self.n_ions = 0
        self._mask = None
        self._prev_frac = None
        self._disp = None
        self._t0 = 0.0

    def add(self, frame) -> None:
        frame = as_frame(frame)
        frac = np.asarray(frame.frac_coords, dtype=float)
        if self._prev_frac is None:
            self._mask = np.asarray(frame.symbols) == self.species
            if self.electrolyte_only:
                touching = touches_other_elements(frame, self._mask, self.contact_cutoff)
                self.n_excluded = int((self._mask & ~touching).sum())
                self._mask &= touching
            self.n_ions = int(self._mask.sum())
            self._disp = np.zeros_like(frac)
            self._t0 = frame.time_fs
            self.volume = frame.volume
        else:
            step = frac - self._prev_frac
            step -= np.round(step)
            self._disp += step @ frame.lattice
        self._prev_frac = frac
        if frame.temperature is not None:
            self.temperatures.append(frame.temperature)
        disp = self._disp
        if self.remove_drift:
            disp = disp - disp.mean(axis=0)
        sel = disp[self._mask]
        value = float(np.mean(np.sum(sel**2, axis=1))) if len(sel) else 0.0
        self.times_fs.append(frame.time_fs - self._t0)
        self.msd.append(value)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(time in fs from the first frame, MSD in Angstrom^2)."""
        return np.asarray(self.times_fs), np.asarray(self.msd)


def diffusion_coefficient(
    times_fs, msd_a2, fit_start: float = 0.1
) -> tuple[float, float, float]:
    """D in cm^2/s from a linear fit MSD = 6 D t + b over t >= fit_start * t_max.

    Returns (D, slope in A^2/fs, intercept in A^2). 1 A^2/fs = 0.1 cm^2/s.
    """
    t = np.asarray(times_fs, dtype=float)
    y = np.asarray(msd_a2, dtype=float)
    if len(t) < 2 or t[-1] <= t[0]:
        return float("nan"), float("nan"), float("nan")
    keep = t >= t[0] + fit_start * (t[-1] - t[0])
    if keep.sum() < 2:
        keep = np.ones_like(t, dtype=bool)
    slope, intercept = np.polyfit(t[keep], y[keep], 1)
    return float(slope / 6.0 * 0.1), float(slope), float(intercept)


def nernst_einstein_conductivity(
    diffusion_cm2_s: float,
    n_ions: int,
    volume_a3: float,
    temperature_k: float,
    charge: int = 1,
) -> float:
    """sigma = n (z e)^2 D / (k_B T) in S/cm (Haven ratio 1).

    n is the number density of the mobile ions in the whole cell.
    """
    if not np.isfinite(diffusion_cm2_s) or temperature_k <= 0 or volume_a3 <= 0:
        return float("nan")
    n_m3 = n_ions / (volume_a3 * 1e-30)
    d_m2_s = diffusion_cm2_s * 1e-4
    sigma_s_m = n_m3 * (charge * ELEMENTARY_CHARGE) ** 2 * d_m2_s / (BOLTZMANN * temperature_k)
    return float(sigma_s_m / 100.0)
