"""summary.csv and summary.md from fake run folders: every compared figure from the best epoch, text columns of
eval.json kept, and runs made before the validation split (no `validation` in params.json) marked."""

import json
import os
from datetime import datetime, timezone

import pandas as pd
import pytest

from conftest import fake_run
from utils.experiments.markdown import units_sentence, validation_note
from utils.experiments.report import collect, summary_markdown
from utils.experiments.suite import SuiteFolders, SuiteRequest
from utils.runs import layout

SPLIT = {"source": "training images", "fraction": 0.1, "seed": 0, "n": 30}


def _run(pool, number, variant, seed, val_losses, validation=SPLIT, figures=None):
    """A fake finished run with one epoch per value of `val_losses` (training loss 60 + epoch), validated on
    `validation` (None: a run folder made before the split), and an eval.json of `figures` when given."""
    run_dir = fake_run(pool, number, variant, seed, epochs=len(val_losses))
    params = json.loads((run_dir / layout.PARAMS).read_text())
    if validation:
        params.update(validation=validation, n_val=validation["n"])
    else:  # as run folders made before the split record it: no validation, no val_fraction
        params.pop("validation", None)
        params["training"].pop("val_fraction", None)
    (run_dir / layout.PARAMS).write_text(json.dumps(params))
    pd.DataFrame([{"epoch": e + 1, "loss": 60.0 + e, "r_loss": 55.0 + e, "kl_loss": 5.0, "val_loss": v,
                   "val_r_loss": v - 5, "val_kl_loss": 5.0, "lr": 5e-4, "train_seconds": 1.0}
                  for e, v in enumerate(val_losses)]).to_csv(
        run_dir / layout.HISTORY, index=False)
    if figures:
        for name in (layout.WEIGHTS, layout.ENCODER, layout.DECODER):  # fake_run's sound HDF5 files, made older
            os.utime(layout.model_file(run_dir, name), (1_700_000_000, 1_700_000_000))
        made = datetime.fromtimestamp(1_700_000_100, timezone.utc).isoformat(timespec="seconds")
        entry = {**figures, "samples": 100, "binarize": False, "time": made}
        (run_dir / layout.EVAL).write_text(json.dumps({"k100_n100": entry}))
    return run_dir


def _suite(tmp_path, legacy_seeds=()):
    """base_lrelu and gelu_full x 2 seeds; best epoch 2 of 3 everywhere; `legacy_seeds` of gelu_full made
    before the validation split."""
    pool, number = tmp_path / "pool", 0
    for variant, shift in (("base_lrelu", 0.0), ("gelu_full", -1.0)):
        for seed in (0, 1):
            number += 1
            legacy = variant == "gelu_full" and seed in legacy_seeds
            figures = {"bpd": 1.5 + shift / 100 + seed / 1000, "nll": 800.0 + shift + seed / 10,
                       "likelihood": "discretized_gaussian(sigma=0.1, fitted on 30 validation images)",
                       "judge": "judge_cnn(seed=1)",
                       "validated_on": "test images" if legacy else "training images"}
            _run(pool, number, variant, seed, [52.0 + shift, 49.0 + shift + seed / 10, 51.0],
                 validation=None if legacy else SPLIT, figures=figures)
    request = SuiteRequest("activations", 2, {"epochs": 3, "dataset": "fashion_mnist", "limit": 300},
                           variants=("base_lrelu", "gelu_full"))
    frame, _ = collect(request, SuiteFolders(tmp_path / "suite", pool))
    return frame, request


def test_summary_rows_hold_the_best_epochs_values_and_the_text_of_eval_json(tmp_path):
    frame, request = _suite(tmp_path)
    row = frame.set_index(["variant", "seed"]).loc[("gelu_full", 1)]
    assert (row["best_epoch"], row["best_val_loss"], row["final_val_loss"]) == (2, 48.1, 51.0)
    assert (row["best_loss"], row["final_loss"], row["best_val_r_loss"]) == (61.0, 62.0, 43.1)
    assert row["validated_on"] == "training images" and row["judge"] == "judge_cnn(seed=1)"
    assert row["likelihood"].startswith("discretized_gaussian(") and row["test_bpd"] == pytest.approx(1.491)
    text = summary_markdown(frame, request, n_images=(270, 30, 100))
    assert "270 training / 30 validation (held out of the training images) / 100 test images" in text
    assert "Every run was validated on images held out of its training images" in text
    # Compared on the best epoch: gelu_full − base_lrelu = -1 in both seeds (at the last epoch 0).
    assert "| gelu_full | val_loss | 2 | -1 | [-1, -1] | <0.0001 | yes |" in text
    assert ("Likelihood figures: test_bpd in bits per dimension, test_nll in nats per image, all of the "
            "likelihood `discretized_gaussian(sigma=0.1, fitted on 30 validation images)`.") in text
    assert "Samples are scored on the judge network `judge_cnn(seed=1)`." in text


def test_runs_made_before_the_validation_split_are_marked(tmp_path):
    frame, request = _suite(tmp_path, legacy_seeds=(1,))
    marked = frame.set_index(["variant", "seed"])["validated_on"]
    assert marked[("gelu_full", 1)] == "test images" and marked[("gelu_full", 0)] == "training images"
    text = summary_markdown(frame, request)
    assert ("**Validated on the test images** (made before the validation split, so their selection saw the "
            "test set): gelu_full seed 1.") in text
    legacy = frame.drop(columns=["validated_on"]).assign(validated_on="test images")
    assert validation_note(legacy).startswith("**Every run was validated on the test images**")


def test_a_run_folder_without_validation_key_reads_as_validated_on_the_test_images(tmp_path):
    _run(tmp_path / "pool", 1, "base_lrelu", 0, [50.0], validation=None)  # no eval.json either
    request = SuiteRequest("activations", 1, {"epochs": 1, "dataset": "fashion_mnist", "limit": 300},
                           variants=("base_lrelu",))
    frame, _ = collect(request, SuiteFolders(tmp_path / "suite", tmp_path / "pool"))
    assert frame.loc[0, "validated_on"] == "test images"
    assert "`validated_on`" not in units_sentence(frame) and units_sentence(frame) == ""
