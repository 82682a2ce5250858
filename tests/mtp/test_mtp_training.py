"""Staged training: error reduction, reproducibility, warm start, input checks."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from motep.calculator import MTP

from haml_flows.mtp.basis import untrained_mtp
from haml_flows.mtp.grade import load_potential
from haml_flows.mtp.training import MIN_DIST_MARGIN, shortest_distance, train_mtp

FAST = {"level": 8, "cutoff": 4.5, "radial_iterations": 5, "rounds": 1}


@pytest.fixture(scope="module")
def trained(frames):
    return train_mtp(frames, **FAST)


def _force_rmse(data, frames) -> float:
    diffs = []
    for atoms in frames:
        probe = atoms.copy()
        probe.calc = MTP(data, engine="cext", mode="run")
        diffs.append(probe.get_forces() - atoms.get_forces())
    return float(np.sqrt(np.mean(np.square(diffs))))


def test_training_reduces_force_error(frames, trained):
    start = untrained_mtp(8, [13, 29], cutoff=4.5, min_dist=1.5)
    start.initialize(np.random.default_rng(0))
    from haml_flows.mtp.training import held_out_indices

    assert trained.n_frames == 12
    assert (trained.n_train, trained.n_test) == (10, 2)
    held_out = [frames[i] for i in held_out_indices(12, 2)]
    assert trained.force_rmse < 0.5 * _force_rmse(start, held_out)
    assert trained.force_rmse == pytest.approx(
        _force_rmse(load_potential(trained.potential), held_out), rel=1e-6)
    assert trained.train_seconds > 0


def test_min_dist_below_shortest_distance_with_md_headroom(frames, trained):
    data = load_potential(trained.potential)
    assert list(data.species) == [13, 29]
    shortest = shortest_distance(frames)
    assert data.radial_basis.min == pytest.approx(MIN_DIST_MARGIN * shortest)
    assert data.radial_basis.min < shortest


def test_same_seed_same_potential(frames, trained):
    again = train_mtp(frames, **FAST)
    assert again.potential == trained.potential
    other = train_mtp(frames, seed=7, **FAST)
    assert other.potential != trained.potential


def test_warm_start_continues_from_previous(frames, trained):
    warm = train_mtp(frames, previous=trained.potential, **FAST)
    assert warm.force_rmse < 1.2 * trained.force_rmse
    no_radial = train_mtp(frames, previous=trained.potential, level=8, cutoff=4.5, radial_iterations=0)
    start = load_potential(trained.potential)
    end = load_potential(no_radial.potential)
    np.testing.assert_array_equal(end.radial_coeffs, start.radial_coeffs)


def test_warm_start_with_other_species_is_rejected(frames, trained):
    with pytest.raises(ValueError, match="species"):
        train_mtp(frames, previous=trained.potential, species=[13, 29, 3], **FAST)


def test_stride_and_duplicates(frames):
    result = train_mtp(frames + frames[:3], stride=2, holdout_fraction=0.0, level=4, cutoff=4.5, radial_iterations=0)
    assert result.n_frames == 6  # 8 strided frames, two of them repeats
    assert result.n_test == 0


def test_frame_with_foreign_species_is_named(frames):
    bad = [f.copy() for f in frames[:4]]
    for f, g in zip(bad, frames[:4]):
        f.calc = g.calc
    bad[2] = frames[2].copy()
    bad[2].numbers[0] = 3
    bad[2].calc = frames[2].calc
    with pytest.raises(ValueError, match=r"frame 2 .*\[3\]"):
        train_mtp(bad, species=[13, 29], **FAST)


@pytest.mark.parametrize("key", ["energy", "forces"])
def test_nan_labels_are_named(frames, key):
    from ase.calculators.singlepoint import SinglePointCalculator

    bad = list(frames[:5])
    atoms = frames[3].copy()
    results = dict(frames[3].calc.results)
    results[key] = np.nan * np.asarray(results[key])
    atoms.calc = SinglePointCalculator(atoms, **results)
    bad[3] = atoms
    with pytest.raises(ValueError, match=f"frame 3 .*{key[:5]}"):
        train_mtp(bad, **FAST)


@pytest.mark.slow
def test_haml_sized_training_set():
    """40 frames x 48 atoms at level 12, cold then warm (about 80 s each on 1 core)."""
    from mtp_test_frames import labelled_frames

    frames = labelled_frames(40, repeat=(2, 2, 3), rattle=0.12)
    cold = train_mtp(frames, level=12)
    warm = train_mtp(labelled_frames(40, seed=1, repeat=(2, 2, 3), rattle=0.12), level=12, previous=cold.potential)
    assert cold.n_test == 8
    # the fit must explain most of the force signal on held-out frames
    held_out = np.concatenate([f.get_forces() for f in frames[-8:]])
    force_rms = float(np.sqrt(np.mean(held_out**2)))
    assert cold.force_rmse < 0.5 * force_rms
    assert warm.force_rmse < 0.5 * force_rms


def test_stages_and_their_frames(frames, monkeypatch):
    """L-BFGS sees radial_frames evenly spaced frames, LLS all; warm starts skip one LLS."""
    import motep.train.trainer

    from haml_flows.mtp import training

    seen: list[tuple[str, int]] = []
    original = motep.train.trainer.Trainer.train

    def counting_train(self, images):
        seen.append((self.steps[0]["method"], len(images)))
        return original(self, images)

    monkeypatch.setattr(training.Trainer, "train", counting_train)
    cold = train_mtp(frames, **{**FAST, "radial_iterations": 2}, radial_frames=4)
    assert seen == [("LLS", 10), ("minimize", 4), ("LLS", 10)]
    seen.clear()
    # a warm start skips the first linear stage unless asked for it
    train_mtp(frames, **{**FAST, "radial_iterations": 2}, previous=cold.potential)
    assert seen == [("minimize", 10), ("LLS", 10)]
    seen.clear()
    train_mtp(
        frames, **{**FAST, "radial_iterations": 2}, previous=cold.potential,
        linear_first=True,
    )
    assert seen == [("LLS", 10), ("minimize", 10), ("LLS", 10)]
    seen.clear()
    # a warm start runs warm_rounds rounds, or rounds when warm_rounds is None
    train_mtp(frames, **{**FAST, "radial_iterations": 2, "rounds": 3, "warm_rounds": 2},
              previous=cold.potential)
    assert seen == 2 * [("minimize", 10), ("LLS", 10)]
    seen.clear()
    train_mtp(frames, **{**FAST, "radial_iterations": 2, "rounds": 3, "warm_rounds": None},
              previous=cold.potential)
    assert seen == 3 * [("minimize", 10), ("LLS", 10)]
    seen.clear()
    # ... and a cold start rounds, whatever warm_rounds says
    train_mtp(frames, **{**FAST, "radial_iterations": 2, "rounds": 2, "warm_rounds": 1})
    assert seen == [("LLS", 10)] + 2 * [("minimize", 10), ("LLS", 10)]
    seen.clear()
    # linear stages capped: the newest half of the cap and older frames spread
    train_mtp(
        frames, **{**FAST, "radial_iterations": 2}, radial_frames=4, linear_frames=6,
        linear_first=True,
    )
    assert seen == [("LLS", 6), ("minimize", 4), ("LLS", 6)]


def test_linear_frames_keep_the_newest_and_spread_the_rest():
    from haml_flows.mtp.training import _recent_and_spread

    frames = [Atoms("H", info={"index": i}) for i in range(40)]
    picked = [a.info["index"] for a in _recent_and_spread(frames, 10)]
    assert len(picked) == 10
    assert picked[-5:] == [35, 36, 37, 38, 39]
    assert picked[0] == 0 and picked[:5] == sorted(set(picked[:5]))
    assert max(picked[:5]) < 35
    assert _recent_and_spread(frames, None) == frames
    assert _recent_and_spread(frames[:8], 10) == frames[:8]
    with pytest.raises(ValueError, match="linear_frames"):
        train_mtp([], linear_frames=0)


def test_capped_stages_keep_the_audited_frames_first():
    """Audited MLP-MD frames take up to half of a cap; the newest AIMD frame stays."""
    from haml_flows.mtp.training import _evenly_spaced, _recent_and_spread

    # 3 cycles of 30 AIMD frames, each followed by 4 audited MLP-MD frames
    frames = []
    for cycle in range(3):
        frames += [Atoms("H", info={"index": len(frames) + i}) for i in range(30)]
        frames += [Atoms("H", info={"index": len(frames) + 30 + i, "origin": "audit"})
                   for i in range(4)]
    frames += [Atoms("H", info={"index": len(frames) + i}) for i in range(30)]
    audited = [a.info["index"] for a in frames if a.info.get("origin") == "audit"]
    assert len(audited) == 12

    linear = [a.info["index"] for a in _recent_and_spread(frames, 20)]
    assert len(linear) == 20
    assert set(audited[-10:]) <= set(linear)  # half of the cap, the newest audited
    assert frames[-1].info["index"] in linear
    radial = [a.info["index"] for a in _evenly_spaced(frames, 30)]
    assert len(radial) == 30 and set(audited) <= set(radial)
    assert frames[-1].info["index"] in radial and frames[0].info["index"] in radial
    # without audited frames the caps pick as before
    plain = [a for a in frames if a.info.get("origin") != "audit"]
    assert [a.info["index"] for a in _recent_and_spread(plain, 20)][-10:] == [
        a.info["index"] for a in plain[-10:]]


def test_radial_stage_moves_the_radial_functions_and_improves_the_fit(frames):
    settings = {"holdout_fraction": 0.0, "level": 8, "cutoff": 4.5}
    linear_only = train_mtp(frames, radial_iterations=0, **settings)
    fitted = train_mtp(frames, radial_iterations=20, **settings)
    start = load_potential(linear_only.potential).radial_coeffs
    assert not np.allclose(load_potential(fitted.potential).radial_coeffs, start)
    assert fitted.force_rmse < 0.95 * linear_only.force_rmse


def test_rounds_repeat_the_radial_and_linear_stages(frames):
    """Two rounds are the cold fit followed by one warm (radial, linear) pass."""
    settings = {**FAST, "holdout_fraction": 0.0}
    one = train_mtp(frames, **settings)
    chained = train_mtp(frames, previous=one.potential, **settings)
    two = train_mtp(frames, **{**settings, "rounds": 2})
    assert two.force_rmse == pytest.approx(chained.force_rmse, rel=1e-4)
    assert two.energy_rmse == pytest.approx(chained.energy_rmse, rel=1e-3, abs=1e-6)
    assert two.force_rmse < one.force_rmse
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        train_mtp(frames, **{**settings, "rounds": 0})


def test_the_newest_frame_is_trained_on_and_the_held_out_are_spread():
    # the MLP-MD starts from the newest frame: the fit must have learnt it
    from haml_flows.mtp.training import held_out_indices

    for n_frames, n_test in [(12, 2), (61, 12), (100, 20), (401, 80), (3, 2), (2, 1)]:
        held = held_out_indices(n_frames, n_test)
        assert len(set(held)) == n_test
        assert n_frames - 1 not in held
        assert all(0 <= i < n_frames for i in held)
    held = held_out_indices(100, 20)
    gaps = np.diff([-1, *held, 100])
    assert gaps.max() <= 7  # spread over the run, not a block
    assert held_out_indices(10, 0) == []
