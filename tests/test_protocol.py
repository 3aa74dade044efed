"""The evaluation protocol: a validation split apart from the test images, likelihoods of the data as they
are (a discretized Gaussian on grey pixels, Bernoulli on binary ones) in bits per dimension, the check of K,
and run folders made before the split still loading, resuming and scored, marked as validated on the test."""

import json
import math
import shutil

import numpy as np
import pytest
from scipy.stats import norm

import evaluate
from conftest import TINY, last_line, params, run_main, train
from models import VariationalAutoencoder, likelihoods, model_config
from models.likelihoods import Likelihood, discretized_gaussian_log_prob
from utils.analysis.metrics import K_CHECK_FACTOR, k_check
from utils.data.binarize import load_data
from utils.runs.settings import TrainSettings, recorded_settings


def _rows(images):
    return {a.tobytes() for a in images}


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_the_validation_split_is_apart_from_the_test_images_and_the_same_for_every_run(binarize):
    first, second = (load_data(TrainSettings(dataset="fashion_mnist", limit=300, seed=s, binarize=binarize))
                     for s in (0, 7))
    raw = load_data(TrainSettings(dataset="fashion_mnist", limit=300, val_fraction=0.0))
    n_val = len(first.x_val)  # 10 % of each class, rounded per class
    assert 25 <= n_val <= 35 and len(first.x_train) == 300 - n_val and first.validation["source"] == "training images"
    assert first.validation["n"] == n_val
    np.testing.assert_array_equal(first.x_val, second.x_val)  # seeded by the data, not by the run
    np.testing.assert_array_equal(first.y_val, second.y_val)
    if binarize == "none":  # every validation image is a training image of the unsplit data, none a test image
        assert _rows(first.x_val) <= _rows(raw.x_train) and not _rows(first.x_val) & _rows(first.x_train)
        assert not _rows(first.x_val) & _rows(first.x_test)
        assert np.bincount(first.y_val).max() <= 4  # stratified: about 3 of each of the 10 classes
    else:
        assert likelihoods.is_binary(first.x_val) and likelihoods.is_binary(first.x_test)
    assert raw.x_val is raw.x_test and raw.validation["source"] == "test images"


def test_a_run_records_its_split_and_validates_on_it(trained_run):
    recorded = params(trained_run)
    assert recorded["training"]["val_fraction"] == 0.1 and recorded["n_val"] + recorded["n_train"] == 300
    assert recorded["validation"]["source"] == "training images" and recorded["validation"]["n"] == recorded["n_val"]
    data = load_data(recorded_settings(recorded))
    assert len(data.x_val) == recorded["n_val"] and data.validation == recorded["validation"]


@pytest.mark.parametrize("mean,sigma", [(0.0, 0.01), (0.5, 0.1), (1.0, 0.003), (0.3, 2.0), (-0.2, 0.05), (1.3, 1e-3)])
def test_the_discretized_gaussian_sums_to_one_over_the_256_levels(mean, sigma):
    levels = np.arange(256) / 255.0
    log_p = discretized_gaussian_log_prob(levels, mean, sigma)
    assert np.all(log_p <= 0) and math.fsum(np.exp(log_p)) == pytest.approx(1.0, abs=1e-9)


def test_bits_per_dimension_of_one_image_by_hand():
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (1, 4, 4, 1)) / 255.0).astype("float32")
    mean = rng.random((1, 4, 4, 1)).astype("float32")
    sigma = 0.2
    by_hand = 0.0
    for value, mu in zip(x.ravel().astype("float64"), mean.ravel().astype("float64")):
        low = -np.inf if value == 0 else (value - 0.5 / 255 - mu) / sigma
        high = np.inf if value == 1 else (value + 0.5 / 255 - mu) / sigma
        by_hand += math.log(norm.cdf(high) - norm.cdf(low))
    ours = Likelihood("discretized_gaussian", sigma).log_prob(x, mean)
    assert ours[0] == pytest.approx(by_hand, rel=1e-9)
    assert likelihoods.bits_per_dimension(-ours[0], 16) == pytest.approx(-by_hand / (16 * math.log(2)), rel=1e-9)


def test_grey_data_get_a_discretized_gaussian_and_binary_data_bernoulli():
    model = VariationalAutoencoder(model_config(z_dim=2))  # trained with mse: no noise model of its own
    grey = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1)).astype("float32") / 255
    fitted = model.scoring_likelihood(False, grey)
    assert fitted.kind == "discretized_gaussian" and "20 validation images" in fitted.name
    by_hand = np.sqrt(np.mean((grey - model.decode(model.encode(grey)["z"])) ** 2))  # another posterior draw
    assert fitted.sigma == pytest.approx(by_hand, rel=0.05)
    assert model.scoring_likelihood(True, grey) == Likelihood("bernoulli")
    learned = VariationalAutoencoder(model_config(z_dim=2, loss="gaussian_learned"))
    assert learned.scoring_likelihood(False, grey) == Likelihood("discretized_gaussian")
    with pytest.raises(ValueError, match="not a likelihood"):
        model.log_importance_weights(grey[:2], 1, np.random.default_rng(0))


def test_the_k_check_compares_k_with_4k_draws_of_the_same_stream():
    model = VariationalAutoencoder(model_config(z_dim=2))
    x = np.random.default_rng(1).random((12, 28, 28, 1)).astype("float32")
    bernoulli = Likelihood("bernoulli")
    check = k_check(model, x, 5, bernoulli, seed=3)
    log_w = model.log_importance_weights(x, K_CHECK_FACTOR * 5, np.random.default_rng(3), bernoulli)
    blocks = [np.log(np.mean(np.exp(block.astype("float64")), axis=0)) for block in np.split(log_w, K_CHECK_FACTOR)]
    assert check["k_check_nll_at_k"] == pytest.approx(-np.mean(blocks), rel=1e-6)
    whole = -np.mean(np.log(np.mean(np.exp(log_w.astype("float64")), axis=0)))
    assert check["k_check_nll_at_4k"] == pytest.approx(whole, rel=1e-6)
    assert check["k_check_change"] == pytest.approx(check["k_check_nll_at_k"] - whole) and check["k_check_images"] == 12


@pytest.mark.slow
def test_a_run_made_before_the_split_still_resumes_and_scores_marked(trained_run, tmp_path):
    legacy = tmp_path / trained_run.name
    shutil.copytree(trained_run, legacy)
    recorded = params(legacy)
    del recorded["training"]["val_fraction"], recorded["validation"], recorded["n_val"]
    (legacy / "eval.json").unlink(missing_ok=True)
    (legacy / "params.json").write_text(json.dumps(recorded))
    assert recorded_settings(recorded).val_fraction == 0.0
    assert train("--resume", legacy, "--epochs", 3) == legacy
    assert "val_fraction" not in params(legacy)["training"] or params(legacy)["training"]["val_fraction"] == 0.0
    code, out, err = run_main(evaluate.main, legacy, "--samples", 4, "--limit", 30)
    assert code == 0, err[-2000:]
    assert "validated on the test images" in last_line(out)
    entry = json.loads((legacy / "eval.json").read_text())["k4_n30"]
    assert entry["validated_on"] == "test images"


def test_evaluate_binarize_scores_bernoulli_and_says_so(trained_run):
    code, out, err = run_main(evaluate.main, trained_run, "--samples", 4, "--limit", 30, "--binarize")
    assert code == 0, err[-2000:]
    entry = json.loads((trained_run / "eval.json").read_text())["k4_binarized_n30"]
    assert entry["likelihood"] == "bernoulli" and "bernoulli" in last_line(out)


def test_evaluate_says_when_a_family_has_no_likelihood(tmp_path):
    run = train("--family", "ae", "--epochs", 1, "--seed", 0, "--run-root", tmp_path, *TINY)
    code, out, err = run_main(evaluate.main, run, "--samples", 4, "--limit", 30)
    assert code == 0, err[-2000:]
    assert "no likelihood" in last_line(out) and "bits/dim" not in last_line(out)
