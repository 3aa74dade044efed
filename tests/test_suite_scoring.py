"""A suite reuses a run's `eval.json` only for the models it scored: an extended run is scored again."""

import json
import os
from datetime import datetime, timezone

from utils.runs import layout
from utils.experiments.scoring import scores


def fake_run(tmp_path, scored_at, models_at):
    """A run folder with saved models written at `models_at` and an eval.json entry made at `scored_at`."""
    (tmp_path / layout.MODELS).mkdir()
    for name in (layout.WEIGHTS, layout.ENCODER, layout.DECODER):
        path = layout.model_file(tmp_path, name)
        path.write_bytes(b"model")
        os.utime(path, (models_at, models_at))
    entry = {"pixel_mse": 0.01, "nll": 120.5, "elbo": -125.0, "active_units": 2, "kl_per_dimension": [3.0, 2.5],
             "samples": 100, "binarize": False, "validated_on": "training images",
             "time": datetime.fromtimestamp(scored_at, timezone.utc).isoformat(timespec="seconds")}
    (tmp_path / layout.EVAL).write_text(json.dumps({"k100_n1000": entry}))
    return tmp_path


def test_scores_of_the_current_models_are_reused(tmp_path):
    run = fake_run(tmp_path, scored_at=1_700_000_100, models_at=1_700_000_000)
    assert scores(run, 100) == {"test_pixel_mse": 0.01, "test_nll": 120.5, "test_elbo": -125.0, "active_units": 2,
                                "test_kl_dim0": 3.0, "test_kl_dim1": 2.5, "validated_on": "training images"}
    assert scores(run, 10) == {}  # another number of importance samples is another setting


def test_scores_made_before_the_models_were_rewritten_are_not(tmp_path):
    run = fake_run(tmp_path, scored_at=1_700_000_000, models_at=1_700_000_500)  # e.g. extended to more epochs
    assert scores(run, 100) == {}


def test_an_entry_without_a_time_is_not_trusted(tmp_path):
    run = fake_run(tmp_path, scored_at=1_700_000_100, models_at=1_700_000_000)
    data = json.loads((run / layout.EVAL).read_text())
    del data["k100_n1000"]["time"]
    (run / layout.EVAL).write_text(json.dumps(data))
    assert scores(run, 100) == {}


def test_every_number_of_an_entry_is_a_column_and_bookkeeping_is_not(tmp_path):
    run = fake_run(tmp_path, scored_at=1_700_000_100, models_at=1_700_000_000)
    data = json.loads((run / layout.EVAL).read_text())
    data["k100_n1000"].update(active_units_layer2=3, kl_layer2=1.5, likelihood="bce", family="lvae")
    (run / layout.EVAL).write_text(json.dumps(data))
    found = scores(run, 100)
    assert found["test_active_units_layer2"] == 3 and found["test_kl_layer2"] == 1.5
    assert not {"test_samples", "test_time", "test_likelihood", "test_family", "test_binarize"} & set(found)


def test_an_entry_made_before_the_scoring_protocol_is_not_used(tmp_path):
    """Entries without `validated_on` scored grey pixels with a Bernoulli "NLL": the suite scores the run again."""
    run = fake_run(tmp_path, scored_at=1_700_000_100, models_at=1_700_000_000)
    data = json.loads((run / layout.EVAL).read_text())
    del data["k100_n1000"]["validated_on"]
    (run / layout.EVAL).write_text(json.dumps(data))
    assert scores(run, 100) == {}
