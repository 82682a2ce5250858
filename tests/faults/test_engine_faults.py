"""Engine faults, really injected: MLP-MD collapses and failed trainings.

Collapses come from MTPs whose parameters were damaged (a NaN coefficient,
an inverted or amplified energy landscape); failed trainings from training
sets that cannot be fitted. Every segment runs as a jobflow job against the
embedded database, so the documents a fault could cost are counted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.data import atomic_numbers
from jobflow import run_locally
from pymatgen.core.trajectory import Trajectory

from haml_flows.engines.mlpmd import MlpMdMaker
from haml_flows.engines.reference import AimdSegmentMaker, LennardJonesAimdSegmentMaker
from haml_flows.engines.training import MtpTrainMaker
from haml_flows.distances import pair_minimum_distances
from haml_flows.mtp.frames import cfg_to_frames
from haml_flows.mtp.grade import load_potential, mtp_calculator, potential_text
from haml_flows.queries import cycle_docs, run_summary, trajectory
from haml_flows.flows.haml import HamlMaker
from haml_flows.runner import prepare_run, run_prepared_locally
from haml_flows.faults.handlers import AimdSegmentFailed
from haml_flows.schemas import AimdSegmentDoc, CycleState, MlpMdDoc, TrainingDoc
from haml_flows.spec import MlpMdSpec, MtpSpec, SpecError, load_spec, parse_spec
from haml_flows.systems import li_lpsc_mini

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def trained():
    """An AIMD segment on the analytic reference and a level-6 MTP fitted to it."""
    maker = LennardJonesAimdSegmentMaker(n_steps=12, mb_velocity_seed=3)
    aimd = LennardJonesAimdSegmentMaker.make.original(maker, li_lpsc_mini(li_layers=1))
    doc = MtpTrainMaker.make.original(
        MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=5)), aimd.trajectory
    )
    return aimd, doc


def _damaged(potential: str, factor: float = 1.0, nan: bool = False) -> str:
    """The potential with its moment coefficients scaled (or one set to NaN)."""
    data = load_potential(potential)
    coeffs = np.array(data.moment_coeffs, dtype=float) * factor
    if nan:
        coeffs[0] = np.nan
    data.moment_coeffs = coeffs
    return potential_text(data)


def _run_job(job, store, tmp_path, monkeypatch) -> tuple[dict, int]:
    """Run one job against the store; return its stored output and the documents lost.

    A job that finishes writes one output document; lost = documents that
    were there before or should have been written but are not in the store.
    """
    monkeypatch.chdir(tmp_path)
    before = {d["uuid"] for d in store.docs_store.query({}, properties=["uuid"])}
    run_locally(job, store=store, log=False, ensure_success=True)
    after = {d["uuid"] for d in store.docs_store.query({}, properties=["uuid"])}
    lost = len(before - after) + (0 if job.uuid in after else 1)
    stored = store.query_one({"uuid": job.uuid}, properties=["output"], load=True)
    return stored["output"], lost


def _mlpmd(trained, potential, store, tmp_path, monkeypatch, **settings):
    aimd, doc = trained
    # the grade off: grades of a collapsing potential exceed any finite threshold
    maker = MlpMdMaker(
        mlpmd=MlpMdSpec(**{"max_steps": 300, "gamma_break": float("inf"), "save_interval": 5,
                           "contact_tolerance": None, **settings})
    )
    job = maker.make(aimd.structure, potential, doc.training_set)
    output, lost = _run_job(job, store, tmp_path, monkeypatch)
    out = MlpMdDoc.model_validate(output)
    stored = trajectory(store, job.uuid)
    assert [p["step"] for p in stored.frame_properties] == [
        p["step"] for p in out.trajectory.frame_properties
    ]
    return out, lost


def _check_rolled_back(out: MlpMdDoc, handler: str, ring: int = 10) -> None:
    assert out.stop_reason == "collapse"
    assert handler in [c.handler for c in out.collapse]
    fired_at = out.collapse[0].step
    assert out.rolled_back_to_step == max(fired_at - ring, 0) == out.n_steps
    assert out.simulated_fs == pytest.approx(out.n_steps * out.time_step_fs)
    steps = [p["step"] for p in out.trajectory.frame_properties]
    assert steps[-1] == out.n_steps and max(steps) == out.n_steps
    assert all(c.actions for c in out.collapse)


def test_nan_forces_roll_back_to_the_aimd_frame(
    trained, job_store, tmp_path, monkeypatch, fault_ledger
):
    aimd, doc = trained
    out, lost = _mlpmd(
        trained, _damaged(doc.potential, nan=True), job_store, tmp_path, monkeypatch
    )
    _check_rolled_back(out, "BadForcesHandler")
    assert out.collapse[0].errors == ["non-finite forces"]
    assert out.n_steps == 0
    # the hand-over frame is the AIMD frame the segment started from
    assert np.allclose(out.structure.distance_matrix, aimd.structure.distance_matrix)
    assert lost == 0
    fault_ledger.record(
        "MLP-MD collapse: NaN forces",
        injected="MTP with a NaN moment coefficient",
        recovered=True,
        documents_lost=lost,
        outcome="guard fired at step 0; hand-over to AIMD from the AIMD frame",
    )


def test_huge_forces_roll_back_to_a_trusted_frame(
    trained, job_store, tmp_path, monkeypatch, fault_ledger
):
    aimd, doc = trained
    potential = _damaged(doc.potential, factor=-1.0)
    # the temperature limit off, so that the force check is what fires
    out, lost = _mlpmd(
        trained, potential, job_store, tmp_path, monkeypatch, temperature_factor=1e9,
        temperature_band=None,
    )
    _check_rolled_back(out, "BadForcesHandler")
    assert "above 50 eV/A" in out.collapse[0].errors[0]
    # the restored frame is sane under the same potential
    atoms = out.structure.to_ase_atoms()
    atoms.calc = mtp_calculator(potential)
    assert np.abs(atoms.get_forces()).max() < 50.0
    assert lost == 0
    fault_ledger.record(
        "MLP-MD collapse: huge forces",
        injected="MTP with inverted moment coefficients",
        recovered=True,
        documents_lost=lost,
        outcome=f"guard fired at step {out.collapse[0].step}; rolled back to "
        f"step {out.n_steps}; hand-over to AIMD",
    )


def test_atoms_crashing_together(trained, job_store, tmp_path, monkeypatch, fault_ledger):
    aimd, doc = trained
    out, lost = _mlpmd(
        trained,
        _damaged(doc.potential, factor=-1.0),
        job_store,
        tmp_path,
        monkeypatch,
        max_force=1e9,
        temperature_factor=1e9,
        temperature_band=None,
    )
    _check_rolled_back(out, "CloseContactHandler")
    assert out.collapse[0].handler == "CloseContactHandler"
    minima = pair_minimum_distances(cfg_to_frames(doc.training_set))
    atoms = out.structure.to_ase_atoms()
    restored = pair_minimum_distances([atoms])
    assert all(restored[pair] > 0.6 * min(d, 2.0) for pair, d in minima.items())
    assert lost == 0
    fault_ledger.record(
        "MLP-MD collapse: atoms crash together",
        injected="MTP with inverted moment coefficients, force and temperature "
        "limits off",
        recovered=True,
        documents_lost=lost,
        outcome=f"{out.collapse[0].errors[0].split(',')[0]}; rolled back to step "
        f"{out.n_steps}",
    )


def test_runaway_temperature(trained, job_store, tmp_path, monkeypatch, fault_ledger):
    aimd, doc = trained
    out, lost = _mlpmd(
        trained, _damaged(doc.potential, factor=-3.0), job_store, tmp_path, monkeypatch
    )
    _check_rolled_back(out, "OverheatingHandler")
    assert out.temperature_end < 3 * 300.0
    assert lost == 0
    fault_ledger.record(
        "MLP-MD collapse: temperature run-away",
        injected="MTP with moment coefficients x -3 (energy pumped into the atoms)",
        recovered=True,
        documents_lost=lost,
        outcome=f"{out.collapse[0].errors[0]}; rolled back to step {out.n_steps}",
    )


def test_running_temperature_outside_its_band_stops_and_hands_over_at_the_target(
    trained, job_store, tmp_path, monkeypatch, fault_ledger
):
    aimd, doc = trained
    target = aimd.temperature_end / 1.4  # the segment starts 40 % above its target
    out, lost = _mlpmd(
        trained, doc.potential, job_store, tmp_path, monkeypatch,
        temperature=target, temperature_band=0.2, temperature_window_fs=10.0,
        start_temperature_factor=2.0, temperature_factor=10.0, max_force=1e9,
        distance_margin=0.1,
    )
    _check_rolled_back(out, "TemperatureBandHandler")
    assert out.collapse[0].step == 9  # steps 0-9: half the 20-step window had run
    assert "running temperature" in out.collapse[0].errors[0]
    # the heat is not carried into the next stage
    assert out.temperature_end == pytest.approx(target, rel=1e-6)
    assert lost == 0
    fault_ledger.record(
        "MLP-MD: running temperature out of band",
        injected="segment started 40 % above its thermostat target, band +-20 %",
        recovered=True,
        documents_lost=lost,
        outcome=f"{out.collapse[0].errors[0]}; handed over at {out.temperature_end:.0f} K",
    )


def test_temperature_band_waits_for_half_its_window():
    from ase.build import bulk

    from haml_flows.faults.collapse import TemperatureBandHandler

    atoms = bulk("Li", "bcc", a=3.45).repeat((3, 3, 3))
    handler = TemperatureBandHandler(target=300.0, band=0.25, window=8)
    rng = np.random.default_rng(0)
    fired = []
    for step in range(8):
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(atoms, temperature_K=500.0, rng=rng, force_temp=True)
        fired.append(handler.check(atoms))
    assert fired == [False, False, False, True, True, True, True, True]
    handler.restore(atoms)
    assert atoms.get_temperature() == pytest.approx(300.0)


def test_contact_limits_come_from_the_reference_dynamics_only(trained):
    from haml_flows.faults.collapse import CloseContactHandler, CollapseGuard

    aimd, doc = trained
    frames = cfg_to_frames(doc.training_set)
    squeezed = frames[0].copy()
    squeezed.calc = frames[0].calc
    squeezed.positions[1] = squeezed.positions[0] + [0.9, 0.0, 0.0]
    squeezed.info["origin"] = "audit"  # an MLP-MD geometry the reference relabelled
    atoms = aimd.structure.to_ase_atoms()
    guard = CollapseGuard.for_training_set(atoms, [*frames, squeezed], 300.0)
    (contact,) = [h for h in guard.handlers if isinstance(h, CloseContactHandler)]
    reference = CollapseGuard.for_training_set(atoms, frames, 300.0)
    (expected,) = [h for h in reference.handlers if isinstance(h, CloseContactHandler)]
    assert contact.limits == expected.limits


def test_healthy_potential_is_not_flagged(trained):
    aimd, _ = trained
    # 15 L-BFGS iterations: the fixture's 5 leave radial functions that blow up
    # within 60 steps on this system (a real collapse, not a false alarm)
    doc = MtpTrainMaker.make.original(
        MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=15)), aimd.trajectory
    )
    # the collapse rules alone: the reference-contact rule is the next test's
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=60, gamma_break=1e9, contact_tolerance=None))
    out = MlpMdMaker.make.original(maker, aimd.structure, doc.potential, doc.training_set)
    assert out.stop_reason == "max_steps" and out.collapse == []
    assert out.rolled_back_to_step is None and out.guard_seconds > 0


def test_a_pair_closer_than_the_reference_ever_brought_it_stops_the_segment(trained):
    """A sound potential, but its MD reaches a Li-Li distance the 8-step reference never did."""
    aimd, _ = trained
    doc = MtpTrainMaker.make.original(
        MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=15)), aimd.trajectory
    )
    maker = MlpMdMaker(mlpmd=MlpMdSpec(max_steps=60, gamma_break=1e9))
    out = MlpMdMaker.make.original(maker, aimd.structure, doc.potential, doc.training_set)
    assert out.stop_reason == "collapse"
    (fired,) = out.collapse
    assert fired.handler == "CloseContactHandler"
    assert "0.1 A below the closest the reference dynamics brought the pair" in fired.errors[0]
    minima = pair_minimum_distances(cfg_to_frames(doc.training_set))
    symbols = re.findall(r"\(([A-Z][a-z]?)\)", fired.errors[0])
    distance = float(re.search(r"([0-9.]+) A apart", fired.errors[0]).group(1))
    key = tuple(sorted(atomic_numbers[s] for s in symbols))
    assert minima[key] - 0.1 - 0.01 < distance < minima[key] - 0.1
    # rolled back to a frame where every pair is within the limits
    restored = pair_minimum_distances([out.structure.to_ase_atoms()])
    assert all(d >= min(minima[k], 4.0) - 0.1 for k, d in restored.items() if k in minima)


def test_contact_limits_take_the_looser_rule_and_fit_the_cell():
    from haml_flows.faults.collapse import CloseContactHandler

    minima = {(3, 3): 2.278, (3, 17): 2.30, (17, 17): 3.42, (15, 17): 6.0}
    handler = CloseContactHandler(minima, margin=0.6, tolerance=0.1)
    assert handler.limits[(3, 3)] == pytest.approx(2.178)
    assert handler.limits[(17, 17)] == pytest.approx(3.32)  # the margin rule: 0.6 x 2.04
    assert handler.limits[(15, 17)] == pytest.approx(3.9)  # held to the 4 A range
    loose = CloseContactHandler(minima, margin=0.6, tolerance=None)
    assert loose.limits[(17, 17)] == pytest.approx(0.6 * (0.99 + 1.02), abs=0.02)
    # a 7 A cell: minimum images are exact below 3.5 A, the limits stay under it
    atoms = Atoms("ClClP", positions=[[0, 0, 0], [3.45, 0, 0], [3.5, 3.5, 3.5]],
                  cell=[7.0, 7.0, 7.0], pbc=True)
    handler.prepare(atoms)
    assert not handler.check(atoms)
    atoms.positions[1] = [3.25, 0, 0]
    assert handler.check(atoms) and "Cl" in handler.describe()
    with pytest.raises(ValueError, match="contact tolerance"):
        CloseContactHandler(minima, tolerance=-0.1)


# --- training failures -------------------------------------------------------


def _new_segment(aimd, energy_scale=1.0, seed=11):
    """A fresh reference segment, optionally with corrupted labels."""
    maker = LennardJonesAimdSegmentMaker(n_steps=8, mb_velocity_seed=seed)
    segment = LennardJonesAimdSegmentMaker.make.original(maker, aimd.structure)
    frames, props = [], []
    for index in range(len(segment.trajectory)):
        structure = segment.trajectory[index].copy()
        frames.append(structure)
        p = dict(segment.trajectory.frame_properties[index])
        p["energy"] = p["energy"] * energy_scale
        p["forces"] = (np.asarray(p["forces"]) * energy_scale).tolist()
        props.append(p)
    return Trajectory.from_structures(frames, frame_properties=props, constant_lattice=False)


def _train(trained, segment, store, tmp_path, monkeypatch, **settings):
    aimd, doc = trained
    maker = MtpTrainMaker(mtp=MtpSpec(**{"level": 6, "radial_iterations": 5, **settings}))
    job = maker.make(segment, doc.training_set, doc.potential)
    output, lost = _run_job(job, store, tmp_path, monkeypatch)
    return TrainingDoc.model_validate(output), lost


def _corrupt_first_coordinate(cfg: str, value: str = "1" + "0" * 300 + ".0") -> str:
    """The .cfg text with the first atom's x coordinate replaced (a corrupted file)."""
    lines = cfg.splitlines()
    row = lines.index(next(x for x in lines if x.strip().startswith("AtomData:"))) + 1
    cols = lines[row].split()
    cols[2] = value
    lines[row] = "    " + " ".join(cols)
    return "\n".join(lines) + "\n"


def test_singular_training_set_keeps_previous_potential(
    trained, job_store, tmp_path, monkeypatch, fault_ledger
):
    aimd, doc = trained
    # one coordinate of 1e300 A in the stored training set makes the linear
    # least-squares system that motep solves numerically singular
    corrupt = _corrupt_first_coordinate(doc.training_set)
    maker = MtpTrainMaker(mtp=MtpSpec(level=6, radial_iterations=5))
    job = maker.make(_new_segment(aimd), corrupt, doc.potential)
    output, lost = _run_job(job, job_store, tmp_path, monkeypatch)
    out = TrainingDoc.model_validate(output)
    assert out.fallback is not None and out.fallback.handler == "FitFailedHandler"
    assert "singular least-squares system" in out.fallback.errors[0]
    assert "keep the previous potential" in out.fallback.actions
    assert out.potential == doc.potential
    assert out.training_set_size == doc.training_set_size
    assert lost == 0
    fault_ledger.record(
        "Training: singular least-squares system",
        injected="training set with one coordinate at 1e300 A",
        recovered=True,
        documents_lost=lost,
        outcome="SVD did not converge; previous potential kept",
    )


def test_nan_loss_keeps_previous_potential(
    trained, job_store, tmp_path, monkeypatch, fault_ledger
):
    aimd, doc = trained
    segment = _new_segment(aimd, energy_scale=1e300)
    out, lost = _train(trained, segment, job_store, tmp_path, monkeypatch)
    assert out.fallback is not None and out.fallback.handler == "NonFiniteLossHandler"
    assert out.potential == doc.potential
    assert out.training_set_size == doc.training_set_size
    assert np.isnan(out.force_rmse) or out.force_rmse > 1e100  # previous pot on bad labels
    assert lost == 0
    fault_ledger.record(
        "Training: NaN loss",
        injected="new frames with energies and forces x 1e300",
        recovered=True,
        documents_lost=lost,
        outcome="previous potential kept; frames left out of the training set",
    )


def test_no_improvement_keeps_previous_potential(
    trained, job_store, tmp_path, monkeypatch, fault_ledger
):
    aimd, doc = trained
    segment = _new_segment(aimd)
    # a fit that ignores forces cannot match the previous potential's forces
    out, lost = _train(
        trained, segment, job_store, tmp_path, monkeypatch,
        force_weight=0.0, stress_weight=0.0, radial_iterations=0,
    )
    assert out.fallback is not None and out.fallback.handler == "NoImprovementHandler"
    assert out.potential == doc.potential
    assert out.training_set_size == doc.training_set_size + len(segment)
    assert lost == 0
    fault_ledger.record(
        "Training: no improvement",
        injected="fit with force weight 0 against a force-fitted previous potential",
        recovered=True,
        documents_lost=lost,
        outcome="previous potential kept; " + out.fallback.errors[0],
    )


# --- whole cycles -------------------------------------------------------------


def _spec(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _lost_in_run(store, run_id: str, cycles: int) -> int:
    """Cycle documents missing, plus trajectories the cycle documents cannot load."""
    docs = cycle_docs(store, run_id)
    lost = cycles - len({d.cycle for d in docs})
    for doc in docs:
        for job_uuid in (doc.aimd_job, doc.mlpmd_job):
            try:
                trajectory(store, job_uuid)
            except (KeyError, TypeError):
                lost += 1
    return lost


@pytest.mark.slow
def test_collapse_hands_over_to_aimd_in_the_loop(job_store, tmp_path, fault_ledger):
    # the grade is switched off, so the under-trained potential runs until it
    # collapses and only the guard stops it
    run = prepare_run(
        _spec(
            tmp_path, mlpmd__gamma_break=1e9, mlpmd__max_steps=600,
            stop__max_cycles=2,
        )
    )
    run_prepared_locally(run, job_store, tmp_path / "work")
    docs = cycle_docs(job_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2]
    collapsed = [d for d in docs if d.stop_reason == "collapse"]
    assert collapsed, [d.stop_reason for d in docs]
    first = collapsed[0]
    assert first.mlpmd_collapse and first.mlpmd_steps < 600
    if first.cycle == 1:
        # the next AIMD continues from the rolled-back frame
        assert docs[1].temperature_aimd_start == pytest.approx(
            first.temperature_mlpmd_end, rel=0.03
        )
    assert run_summary(job_store, run.run_id).cycles == 2
    lost = _lost_in_run(job_store, run.run_id, 2)
    assert lost == 0
    fault_ledger.record(
        "MLP-MD collapse inside a run",
        injected="grade switched off (gamma_break 1e9), under-trained level-6 MTP",
        recovered=True,
        documents_lost=lost,
        outcome=f"cycle {first.cycle}: {first.mlpmd_collapse[0].handler} at step "
        f"{first.mlpmd_collapse[0].step}; run completed 2 cycles",
    )


@pytest.mark.slow
def test_training_fallback_lengthens_next_aimd(
    trained, job_store, tmp_path, monkeypatch, fault_ledger
):
    # the loop continues from a force-fitted potential with fits that ignore
    # forces: each one is worse than the potential it started from
    aimd, doc = trained
    spec = load_spec(
        _spec(
            tmp_path, stop__max_cycles=2, mtp__force_weight=0.0,
            mtp__stress_weight=0.0, mtp__radial_iterations=0,
            # every cycle runs AIMD: a segment trusted to max_steps is not continued
            mlpmd__continue_trusted=False,
        )
    )
    run = HamlMaker.from_spec(spec)
    job = run.cycle_maker.make(
        CycleState(
            run_id=run.run_id, structure=aimd.structure,
            training_set=doc.training_set, potential=doc.potential,
        )
    )
    monkeypatch.chdir(tmp_path)
    run_locally(job, store=job_store, log=False, ensure_success=True)
    docs = cycle_docs(job_store, run.run_id)
    assert [d.cycle for d in docs] == [1, 2]
    first = docs[0].training_fallback
    assert first is not None and first.handler == "NoImprovementHandler"
    assert docs[0].aimd_steps == spec.reference.steps
    assert docs[1].aimd_steps == 2 * spec.reference.steps
    assert docs[1].aimd_fs == pytest.approx(2 * docs[0].aimd_fs)
    lost = _lost_in_run(job_store, run.run_id, 2)
    assert lost == 0
    fault_ledger.record(
        "Training fallback inside a run",
        injected="fits with force weight 0 continuing a force-fitted potential",
        recovered=True,
        documents_lost=lost,
        outcome=f"previous potential kept; next AIMD {docs[1].aimd_steps} steps "
        f"instead of {docs[0].aimd_steps}",
    )


# --- reference-engine failures (GFN1-xTB through tblite) --------------------


def _xtb_maker(n_steps: int, time_step: float = 1.0, **calculator) -> AimdSegmentMaker:
    maker = AimdSegmentMaker(n_steps=n_steps, time_step=time_step, mb_velocity_seed=5)
    maker.calculator_kwargs = {**maker.calculator_kwargs, "verbosity": 0, **calculator}
    return maker


@pytest.mark.slow
def test_xtb_scf_failure_is_corrected(job_store, tmp_path, monkeypatch, fault_ledger):
    # an SCF limit of one iteration cannot converge GFN1-xTB for this cell
    maker = _xtb_maker(3, max_iterations=1)
    job = maker.make(li_lpsc_mini(li_layers=1))
    output, lost = _run_job(job, job_store, tmp_path, monkeypatch)
    out = AimdSegmentDoc.model_validate(output)
    assert out.n_steps == 3 and out.simulated_fs == pytest.approx(3.0)
    handlers = [c.handler for c in out.corrections]
    assert handlers and set(handlers) == {"XtbScfHandler"}
    assert out.attempts == len(handlers) + 1
    assert all(c.errors[0].startswith("SCF not converged") for c in out.corrections)
    last = json.loads(out.corrections[-1].actions[0])["action"]["_set"]
    assert last["calculator_kwargs->max_iterations"] > 1
    assert all(e < -100 for e in (p["energy"] for p in out.trajectory.frame_properties))
    assert lost == 0
    fault_ledger.record(
        "AIMD: SCF not converged (GFN1-xTB)",
        injected="tblite max_iterations = 1",
        recovered=True,
        documents_lost=lost,
        outcome=f"{len(handlers)} SCF corrections (max_iterations to "
        f"{last['calculator_kwargs->max_iterations']}, stronger damping); segment completed",
    )


@pytest.mark.slow
def test_xtb_failure_mid_segment_restarts_from_last_good_frame(
    job_store, tmp_path, monkeypatch, fault_ledger
):
    # a 30 fs step drives the atoms into a configuration whose SCF does not
    # converge in 20 iterations, after the first step has completed
    maker = _xtb_maker(3, time_step=30.0, max_iterations=20)
    job = maker.make(li_lpsc_mini(li_layers=1))
    output, lost = _run_job(job, job_store, tmp_path, monkeypatch)
    out = AimdSegmentDoc.model_validate(output)
    restarts = [c for c in out.corrections if c.handler == "AimdRestartHandler"]
    assert restarts and any(c.handler == "XtbScfHandler" for c in out.corrections)
    settings = json.loads(restarts[0].actions[1])["action"]["_set"]
    assert settings["time_step"] == pytest.approx(15.0)
    done = int(restarts[0].errors[0].split()[2])
    assert done >= 1 and settings["n_steps"] == 3 - done
    # the good frames are kept and the segment reaches its step count
    assert out.n_steps == 3 and len(out.trajectory) == 4
    assert out.simulated_fs < 3 * 30.0
    stored = trajectory(job_store, job.uuid)
    assert len(stored) == 4
    assert lost == 0
    fault_ledger.record(
        "AIMD: crash mid-segment (GFN1-xTB)",
        injected="30 fs time step with an SCF limit of 20 iterations",
        recovered=True,
        documents_lost=lost,
        outcome=f"failed after {done} step(s); restarted from the last good frame "
        f"with 15 fs and more SCF iterations; {out.attempts} attempts",
    )


def test_unfixable_reference_failure_stops_with_clear_error(
    job_store, tmp_path, monkeypatch, fault_ledger
):
    # keep a document in the store to show a failing segment costs nothing stored
    earlier = _xtb_maker(0).make(li_lpsc_mini(li_layers=1))
    _run_job(earlier, job_store, tmp_path, monkeypatch)
    before = {d["uuid"] for d in job_store.docs_store.query({}, properties=["uuid"])}
    maker = _xtb_maker(2, method="GFN9-xTB")  # corrupted input: no such method
    job = maker.make(li_lpsc_mini(li_layers=1))
    responses = run_locally(job, store=job_store, log=False)
    assert job.uuid not in responses
    after = {d["uuid"] for d in job_store.docs_store.query({}, properties=["uuid"])}
    lost = len(before - after)
    with pytest.raises(AimdSegmentFailed, match="GFN9-xTB.*not available"):
        AimdSegmentMaker.make.original(maker, li_lpsc_mini(li_layers=1))
    assert lost == 0
    fault_ledger.record(
        "AIMD: unfixable engine input",
        injected="calculator method 'GFN9-xTB'",
        recovered=True,
        documents_lost=lost,
        outcome="no handler applies; the segment stops naming the method",
    )


def test_a_failed_segment_leaves_its_files_with_its_job(job_store, tmp_path):
    # custodian works in the job's own directory, so the evidence stays there
    job = _xtb_maker(2, method="GFN9-xTB").make(li_lpsc_mini(li_layers=1))
    run_locally(job, store=job_store, log=False, create_folders=True, root_dir=tmp_path)
    (job_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert "GFN9-xTB" in json.loads((job_dir / "aimd_error.json").read_text())["message"]
    assert json.loads((job_dir / "aimd_settings.json").read_text())["n_steps"] == 2


@pytest.mark.slow
def test_aimd_corrections_reach_the_cycle_document(job_store, tmp_path, fault_ledger):
    # a run on the LJ spec whose AIMD runs on GFN1-xTB with an impossible SCF limit
    spec = load_spec(_spec(tmp_path, stop__max_cycles=1, reference__steps=3))
    maker = HamlMaker.from_spec(spec)
    maker.cycle_maker.aimd_maker = _xtb_maker(3, max_iterations=1)
    flow = maker.make(li_lpsc_mini(li_layers=1))
    run_locally(flow, store=job_store, log=False, ensure_success=True,
                root_dir=tmp_path)
    docs = cycle_docs(job_store, maker.run_id)
    assert [d.cycle for d in docs] == [1]
    assert docs[0].aimd_steps == 3
    assert docs[0].aimd_corrections
    assert {c.handler for c in docs[0].aimd_corrections} == {"XtbScfHandler"}
    lost = _lost_in_run(job_store, maker.run_id, 1)
    assert lost == 0
    fault_ledger.record(
        "AIMD SCF failure inside a run",
        injected="tblite max_iterations = 1 in the cycle's AIMD maker",
        recovered=True,
        documents_lost=lost,
        outcome=f"{len(docs[0].aimd_corrections)} corrections recorded in the "
        "cycle document; cycle completed",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("distance_margin", 1.5), ("temperature_factor", 1.0), ("max_force", 0.0)],
)
def test_guard_thresholds_are_checked_in_the_spec(key, value):
    data = yaml.safe_load((DATA / "lj_small.yaml").read_text())
    data["mlpmd"][key] = value
    with pytest.raises(SpecError, match=f"mlpmd.{key}"):
        parse_spec(data)
