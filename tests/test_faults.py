"""Faults survived: each file of a finished run folder damaged in each way (cut short, emptied, garbled,
removed), then the command a user would run next. Expected: the damaged file named with the kind of damage,
no traceback, nothing sound deleted, and `training.csv`'s earlier rows byte for byte as they were after any
resume. Cases that train are marked slow; the diagnoses and refusals are fast."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import evaluate
import generate
import train
from conftest import TINY, fake_run, params, run_main
from utils.analysis import features
from utils.data.loaders import load_dataset
from utils.experiments.runner import run_suite
from utils.experiments.suite import SuiteRequest
from utils.runs import health

DAMAGES = ("cut short", "emptied", "garbled", "removed")
# What a resume does depends only on whether a file is there but unusable or gone (health.py tells the kinds
# apart for the message, which the fast cases check for every file and kind), so the cases that train take one
# of each (the re-exports take the other kinds too).
RESUME_DAMAGES = ("garbled", "removed")
KIND = {"cut short": ("cut short", "garbled"), "emptied": ("empty",), "garbled": ("garbled",), "removed": ("missing",)}
BACKUP, METADATA = "backup/latest.weights.h5", "backup/training_metadata.json"
BEST, ENCODER, DECODER = "models/model.weights.h5", "models/encoder.h5", "models/decoder.h5"
TINY_SUITE = {"epochs": 1, "dataset": "fashion_mnist", "limit": 300, "eval_samples": 0}  # fake runs: nothing to score


def damage(path, how):
    """Damage `path` as a copy cut short, a disk that filled, a stray write or a clean-up would."""
    path = Path(path)
    data = path.read_bytes()
    if how == "cut short":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "garbled":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, max(len(data), 64), dtype=np.uint8).tobytes())
    else:
        path.unlink()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run, scored (so it has an eval.json): read-only, each case damages a copy."""
    code, out, err = run_main(train.main, *TINY, "--epochs", 2, "--seed", 3, "--eval-samples", 2,
                              "--run-root", tmp_path_factory.mktemp("faults"))
    assert code == 0, err[-2000:]
    return next(tmp_path_factory.getbasetemp().glob("faults*/0001_*"))


@pytest.fixture
def run_copy(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / finished.name))


def named(text, file, how):
    """Whether `text` names the damaged file and the kind of damage."""
    return file in text and any(kind in text for kind in KIND[how])


def one_line_error(code, err):
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "I0000", "E0000"))]
    return code != 0 and "Traceback" not in err and len(lines) == 1


def test_the_fixture_run_keeps_a_previous_backup_and_names_each_files_epoch(finished):
    assert health.weights_epoch(finished / BACKUP) == 2 and health.weights_epoch(finished / "backup/previous.weights.h5") == 1
    assert health.weights_epoch(finished / BEST) == params(finished)["result"]["best_epoch"]
    assert health.check_run(finished).state == "finished" and not health.check_run(finished).damage


# ---- the health check: every file, every damage -----------------------------------------------------

@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("file, state", [(BACKUP, "finished"), (METADATA, "finished"), ("params.json", "damaged"),
                                         ("training.csv", "damaged"), (BEST, "damaged"), (ENCODER, "damaged"),
                                         (DECODER, "damaged"), ("eval.json", "finished")])
def test_the_health_check_names_the_damaged_file_and_its_kind(run_copy, file, state, how):
    damage(run_copy / file, how)
    code, out, _ = run_main(evaluate.main, "--check", run_copy.parent)
    line = next(line for line in out.splitlines() if str(run_copy) in line)
    if (file, how) == ("eval.json", "removed"):  # a run need not have been scored: nothing is damaged
        assert line.endswith("finished (2 epochs)"), line
        return
    assert named(line, file, how), line
    assert (state == "damaged") == ("DAMAGED" in line) and code == (1 if state == "damaged" else 0)


# ---- refusals and diagnoses that load nothing (fast) ---------------------------------------------------

@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_params_json_is_named_by_every_command(run_copy, how, tmp_path):
    damage(run_copy / "params.json", how)
    for main, args in ((train.main, ["--resume", run_copy, "--epochs", 3]), (evaluate.main, [run_copy]),
                       (generate.main, [run_copy, "--out", tmp_path / "g.png"])):
        code, _, err = run_main(main, *args)
        assert one_line_error(code, err) and "params.json" in err, err
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_best_weights_are_named_as_damage_not_as_another_architecture(run_copy, how, tmp_path):
    damage(run_copy / BEST, how)
    before = (run_copy / "training.csv").read_bytes()
    for main, args in ((evaluate.main, [run_copy]), (generate.main, [run_copy, "--out", tmp_path / "g.png"]),
                       (train.main, ["--resume", run_copy])):  # no more epochs: the best epoch's model is lost
        code, _, err = run_main(main, *args)
        assert one_line_error(code, err) and "architecture" not in err and "describes" not in err, err
        assert named(err, BEST, how) if how != "removed" else "no saved weights" in err or named(err, BEST, how), err
    assert (run_copy / "training.csv").read_bytes() == before and params(run_copy)["status"] == "finished"


@pytest.mark.parametrize("how", ("emptied", "garbled", "removed"))
def test_a_lost_history_refuses_to_resume_and_says_which_file(run_copy, how):
    damage(run_copy / "training.csv", how)
    code, _, err = run_main(train.main, "--resume", run_copy, "--epochs", 3)
    assert one_line_error(code, err) and named(err, "training.csv", how) and "free space" not in err, err
    assert params(run_copy)["status"] == "finished" and (run_copy / BACKUP).is_file()


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_exported_decoder_is_named_when_given_as_a_file(run_copy, how, tmp_path):
    if how == "removed":
        pytest.skip("a missing file is the loader's own 'does not exist' (test_flags.py)")
    damage(run_copy / DECODER, how)
    code, _, err = run_main(generate.main, run_copy / DECODER, "--out", tmp_path / "g.png")
    assert one_line_error(code, err) and "decoder.h5" in err and "give the run folder" in err, err


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("file", ["info.json", "classifier.weights.h5"])
def test_a_damaged_feature_network_cache_is_found(tmp_path, file, how):
    folder = tmp_path / "judge"
    folder.mkdir()
    (folder / "info.json").write_text(json.dumps({"data_hash": "x", "seed": 1}))
    _tiny_h5(folder / "classifier.weights.h5")
    assert features.cache_damage(folder) is None
    damage(folder / file, how)
    assert named(str(features.cache_damage(folder)), file, how)


def _tiny_h5(path):
    import h5py

    with h5py.File(path, "w") as f:
        f["vars/0"] = np.arange(1000, dtype="float32")


# ---- a pool with one damaged run, its locks damaged too (fast: fake runs, nothing scored) -----------------

def test_a_suite_over_a_pool_with_a_damaged_run_finishes_the_rest_and_names_it(tmp_path):
    pool = tmp_path / "pool_fashion_mnist_limit300_val"
    runs = {(v, s): fake_run(pool, i, v, s) for i, (v, s) in enumerate([("base_lrelu", 0), ("base_lrelu", 1),
                                                                        ("gelu_full", 0), ("gelu_full", 1)], 1)}
    damage(runs[("gelu_full", 1)] / BEST, "cut short")
    (pool / ".locks").mkdir()
    for (variant, seed), how in zip(runs, DAMAGES):  # lock files damaged every way: they hold no state
        (pool / ".locks" / f"{variant}_seed{seed}.lock").write_text("pid 1")
        damage(pool / ".locks" / f"{variant}_seed{seed}.lock", how)
    code, out, _ = run_main(evaluate.main, "--check", pool)
    assert code == 1 and "4 runs: 3 finished, 0 resumable, 0 running, 1 damaged" in out
    suite_dir = tmp_path / "activations_fashion_mnist_limit300_val"
    suite_dir.mkdir()
    (suite_dir / ".suite.lock").write_bytes(b"\x00garbage")  # the suite's lock, damaged: it holds no state either
    lines = []
    result = run_suite(SuiteRequest("activations", 2, TINY_SUITE, variants=("base_lrelu", "gelu_full"),
                                    root=str(tmp_path)), log=lines.append)
    assert result.failed == ["gelu_full seed 1"] and len(result.summary) == 4
    assert any("gelu_full seed 1: DAMAGED, not trained" in line and "cut short" in line for line in lines), lines
    assert "1 damaged (not trained)" in lines[1]
    status = result.summary.set_index(["variant", "seed"])["status"]
    assert status[("gelu_full", 1)].startswith("damaged: models/model.weights.h5 is cut short")
    assert (status.drop(("gelu_full", 1)) == "finished").all()


def test_a_pool_folder_with_a_garbled_params_json_is_named_and_not_used(tmp_path):
    pool = tmp_path / "pool_fashion_mnist_limit300_val"
    fake_run(pool, 1, "base_lrelu", 0)
    bad = fake_run(pool, 2, "base_lrelu", 1)
    damage(bad / "params.json", "garbled")
    lines = []
    run_suite(SuiteRequest("activations", 1, TINY_SUITE, variants=("base_lrelu",), root=str(tmp_path)),
              log=lines.append)
    assert any(f"DAMAGED run folder {bad}: params.json is garbled" in line for line in lines), lines


# ---- resumes from the newest sound state (slow: each trains an epoch) -------------------------------------

def _resume(run_dir, *args):
    code, out, err = run_main(train.main, "--resume", run_dir, *args)
    assert code == 0 and "Traceback" not in err, err[-2000:]
    return next(line for line in out.splitlines() if line.startswith("resuming"))


def _rows(path):
    return Path(path).read_text().splitlines(keepends=True)


@pytest.mark.slow
@pytest.mark.parametrize("how", RESUME_DAMAGES)
def test_a_damaged_latest_backup_resumes_from_the_previous_one(run_copy, how):
    before = _rows(run_copy / "training.csv")
    damage(run_copy / BACKUP, how)
    line = _resume(run_copy, "--epochs", 3)
    assert "after epoch 1 of 3" in line and "backup/previous.weights.h5" in line and named(line, BACKUP, how), line
    after = _rows(run_copy / "training.csv")
    assert after[:2] == before[:2] and len(after) == 4  # header, epoch 1 as written, epochs 2-3 trained anew
    assert _rows(run_copy / "training.superseded.csv")[1] == before[2]  # the first epoch 2 is kept, not lost
    assert params(run_copy)["status"] == "finished" and params(run_copy)["resumes"][-1]["from_epoch"] == 1
    if how != "removed":
        assert any((run_copy / "damaged").glob(f"*/{BACKUP}"))  # moved aside, not deleted


@pytest.mark.slow
@pytest.mark.parametrize("how", RESUME_DAMAGES)
def test_a_damaged_backup_counter_is_remade_from_the_weights_file(run_copy, how):
    before = (run_copy / "training.csv").read_bytes()
    damage(run_copy / METADATA, how)
    line = _resume(run_copy, "--epochs", 3)
    assert "after epoch 2 of 3" in line and named(line, METADATA, how), line
    assert (run_copy / "training.csv").read_bytes().startswith(before)
    assert len(_rows(run_copy / "training.csv")) == 4 and not (run_copy / "training.superseded.csv").exists()


@pytest.mark.slow
def test_a_torn_history_resumes_after_its_last_whole_row(run_copy):
    before = _rows(run_copy / "training.csv")
    (run_copy / "training.csv").write_text("".join(before[:2]) + before[2][: len(before[2]) // 2])  # epoch 2 torn
    kept = _rows(run_copy / "training.csv")
    line = _resume(run_copy, "--epochs", 3)
    assert "after epoch 1 of 3" in line and "training.csv records 1 whole epochs" in line, line
    assert _rows(run_copy / "training.csv")[:2] == before[:2] == kept[:2]
    assert (run_copy / "training.superseded.csv").read_text().endswith(kept[-1])  # the torn row, kept


def test_a_history_with_no_whole_row_refuses_to_resume_and_says_why(run_copy):
    header, first = _rows(run_copy / "training.csv")[:2]
    (run_copy / "training.csv").write_text(header + first[:5])  # torn inside epoch 1: no whole row
    code, _, err = run_main(train.main, "--resume", run_copy, "--epochs", 3)
    assert one_line_error(code, err) and "training.csv is cut short (0 whole epochs" in err, err
    assert (run_copy / BACKUP).is_file() and params(run_copy)["status"] == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("how", RESUME_DAMAGES)
def test_damaged_best_weights_extend_with_the_best_epoch_chosen_after_the_resume(run_copy, how):
    before = (run_copy / "training.csv").read_bytes()
    damage(run_copy / BEST, how)
    line = _resume(run_copy, "--epochs", 3)
    assert "after epoch 2 of 3" in line and "chosen among the epochs after 2" in line, line
    recorded = params(run_copy)
    assert recorded["best_lost_through"] == 2 and recorded["best_from_epoch"] == 3
    assert recorded["result"]["best_epoch"] == 3 and health.weights_epoch(run_copy / BEST) == 3
    assert (run_copy / "training.csv").read_bytes().startswith(before)


@pytest.mark.slow
@pytest.mark.parametrize("file, how", [(ENCODER, "cut short"), (DECODER, "emptied"), (DECODER, "removed")])
def test_damaged_exports_are_remade_from_the_best_weights(run_copy, file, how, tmp_path):
    damage(run_copy / file, how)
    code, out, err = run_main(train.main, "--resume", run_copy)
    assert code == 0 and "re-exported" in out and named(out, file, how), out + err
    assert health.check_run(run_copy).state == "finished"
    code, _, err = run_main(generate.main, run_copy / DECODER, "--out", tmp_path / "g.png")
    assert code == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("how", RESUME_DAMAGES)
def test_a_damaged_eval_json_is_moved_aside_and_the_run_scored_anew(run_copy, how):
    damage(run_copy / "eval.json", how)
    code, _, err = run_main(evaluate.main, run_copy, "--samples", 2)
    assert code == 0, err
    assert json.loads((run_copy / "eval.json").read_text())  # a fresh file with the new entry
    if how != "removed":
        assert any((run_copy / "damaged").glob("*/eval.json")) and named(err, "eval.json", how), err


@pytest.mark.slow
def test_a_damaged_feature_network_is_trained_again(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_FEATURE_NETS", str(tmp_path))
    data = load_dataset("fashion_mnist", 300)
    first = features.judge(data, 300, log=lambda line: None)
    damage(first.weights_path, "cut short")
    said = []
    again = features.judge(data, 300, log=said.append)
    assert "cannot be used (classifier.weights.h5 is cut short" in said[0] and again.info["data_hash"]
