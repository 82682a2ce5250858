"""How often a trajectory drawn like the AIMD seeds lands in the gate's bond band.

The gate's bond rule (haml_flows.analysis.fidelity): a HAML run's
time-averaged count must lie inside the AIMD seeds' range widened by one
seed standard deviation. If HAML were pure AIMD with new seeds, how often
would it pass? For normally distributed time averages, by Monte Carlo:
the chance that one new value lands inside the band of ``n`` reference
values, and that ``k`` new values all do.

    python bench/band_chance.py [--reference 3 5 7 8] [--haml 3] [--draws 400000]

A model, not a measurement: bench/fidelity.py's self-check measures the
same thing on the cached AIMD seeds.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def band_chance(n_reference: int, n_haml: int, draws: int, seed: int = 0,
                widen: float = 1.0) -> tuple[float, float]:
    """(one new value inside, all ``n_haml`` new values inside) for ``n_reference`` seeds;
    the band is their range widened by ``widen`` standard deviations (the gate's: 1)."""
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((draws, n_reference))
    new = rng.standard_normal((draws, n_haml))
    spread = reference.std(axis=1, ddof=1)
    low = reference.min(axis=1) - widen * spread
    high = reference.max(axis=1) + widen * spread
    inside = (new >= low[:, None]) & (new <= high[:, None])
    return float(inside[:, 0].mean()), float(inside.all(axis=1).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=int, nargs="+", default=[3, 5, 7, 8])
    parser.add_argument("--haml", type=int, default=3)
    parser.add_argument("--draws", type=int, default=400_000)
    args = parser.parse_args()
    if min(args.reference) < 2 or args.haml < 1:
        parser.error("--reference needs at least 2 seeds and --haml at least 1")
    print(f"| AIMD seeds | one new seed inside | all {args.haml} inside |")
    print("| --- | --- | --- |")
    for n in args.reference:
        one, every = band_chance(n, args.haml, args.draws)
        print(f"| {n} | {one:.3f} | {every:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
