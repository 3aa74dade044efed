"""Sharper samples and a number that shows it: the Fréchet distance against its closed form, KID against
double loops and against draws of one distribution and of two, the feature network's and the judge's caches
(reused for the same data, rebuilt for other data or another network, kept apart), the distances' scale,
the judge apart from the DFC-VAE's network, the DFC-VAE's feature loss by hand, the lecture notes' conv
autoencoder, --lr-decay against Keras 2's formula, and the scores through evaluate.py for a VAE, an AE and a
DFC-VAE, named by their judge."""

import json

import keras
import numpy as np
import pytest

import evaluate
import train as train_command
from conftest import TINY, numpy_of, run_main, train
from models import build_model, model_config
from utils.analysis import features
from utils.analysis.frechet import blurred, class_spread, distance_between, frechet_distance, noisy
from utils.analysis.kid import kernel_distance, mmd2_unbiased
from utils.data.loaders import Dataset, load_dataset
from models.presets import preset_config


def test_frechet_distance_is_the_closed_form_for_known_gaussians():
    mean_a, mean_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    sd_a, sd_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    # Diagonal covariances commute: the trace term is sum (sd_a - sd_b)^2.
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
    assert frechet_distance(mean_a, np.diag(sd_a**2), mean_b, np.diag(sd_b**2)) == pytest.approx(expected, rel=1e-9)
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]  # the same, in rotated axes
    cov_a, cov_b = rotation @ np.diag(sd_a**2) @ rotation.T, rotation @ np.diag(sd_b**2) @ rotation.T
    assert frechet_distance(rotation @ mean_a, cov_a, rotation @ mean_b, cov_b) == pytest.approx(expected, rel=1e-7)
    points = np.random.default_rng(1).normal(size=(500, 8))
    assert abs(distance_between(points, points)) < 1e-8


def test_kid_is_the_unbiased_mmd_by_double_loops():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 3)), rng.normal(0.5, 1.0, size=(4, 3))

    def k(a, b):
        return (sum(a_i * b_i for a_i, b_i in zip(a, b)) / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / (4 * 3)
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / (5 * 4)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    # Two subsets of 2 (rows drawn by the seed), averaged, with the t-interval of two values: t(0.975, 1) = 12.7062.
    rng = np.random.default_rng(0)
    order_x, order_y = rng.permutation(5)[:4], rng.permutation(4)[:4]
    parts = [mmd2_unbiased(x[order_x[i:i + 2]], y[order_y[i:i + 2]]) for i in (0, 2)]
    found = kernel_distance(x, y, subsets=2)
    mean, half = np.mean(parts), 12.706204736 * np.std(parts, ddof=1) / np.sqrt(2)
    assert found["kid"] == pytest.approx(mean) and found["kid_high"] == pytest.approx(mean + half)
    assert (found["kid_subsets"], found["kid_subset_size"]) == (2, 2)


def test_kid_is_zero_within_its_interval_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(1000, 16))
    same = kernel_distance(real, rng.normal(size=(1000, 16)))
    shifted = kernel_distance(real, rng.normal(0.3, 1.0, size=(1000, 16)))
    assert same["kid_low"] < 0 < same["kid_high"] and abs(same["kid"]) < 0.02
    assert shifted["kid_low"] > 5 * (same["kid_high"] - same["kid_low"]) and shifted["kid"] > 10 * abs(same["kid"])
    assert (same["kid_subsets"], same["kid_subset_size"]) == (10, 100)
    covered = [kernel_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16))) for _ in range(200)]
    assert 0.9 <= np.mean([k["kid_low"] < 0 < k["kid_high"] for k in covered]) <= 0.98  # a 95 % interval: here 0.955
    with pytest.raises(ValueError, match="at least 2 subsets of 2"):
        kernel_distance(real[:19], real[:19])


def test_class_spread():
    assert class_spread([3] * 10, 10) == {"class_entropy": 0.0, "rarest_class_share": 0.0}
    even = class_spread(np.arange(100) % 10, 10)
    assert even["class_entropy"] == pytest.approx(1.0) and even["rarest_class_share"] == pytest.approx(0.1)


def test_blur_and_noise_spoil_images_as_asked():
    image = np.zeros((1, 9, 9, 1), "float32")
    image[0, 4, 4, 0] = 1.0
    spread = blurred(image, 1.0)
    assert spread.sum() == pytest.approx(1.0, rel=1e-5) and spread[0, 4, 4, 0] < 0.2 and spread[0, 4, 5, 0] > 0.05
    images = np.full((200, 8, 8, 1), 0.5, "float32")
    assert noisy(images, 0.1).std() == pytest.approx(0.1, rel=0.05)


def tiny_data(seed, n=120):
    """Three classes anyone can tell apart: dark, the left half lit, the right half lit (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.random((n, 28, 28, 1)).astype("float32") * 0.2
    images[labels == 1, :, :14] += 0.8
    images[labels == 2, :, 14:] += 0.8
    return Dataset("tiny", images[:90], images[90:], labels[:90], labels[90:])


@pytest.mark.slow
def test_the_feature_network_is_cached_for_the_same_data_and_rebuilt_for_other_data(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_FEATURE_NETS", str(tmp_path))
    said = []
    first = features.feature_network(tiny_data(0), log=said.append)
    stamp = (tmp_path / "tiny" / "classifier.weights.h5").stat().st_mtime_ns
    again = features.feature_network(tiny_data(0), log=said.append)
    assert len(said) == 1 and (tmp_path / "tiny" / "classifier.weights.h5").stat().st_mtime_ns == stamp
    assert again.info == first.info and first.info["n_classes"] == 3 and first.info["test_accuracy"] > 0.9
    other = features.feature_network(tiny_data(1), log=said.append)
    assert "trained on other data" in said[1] and other.info["data_hash"] != first.info["data_hash"]
    assert features.feature_network(tiny_data(1), log=said.append).info == other.info and len(said) == 3


@pytest.mark.slow
def test_the_judge_is_cached_apart_and_rebuilt_when_another_network_sits_there(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_FEATURE_NETS", str(tmp_path))
    said = []
    network = features.feature_network(tiny_data(0), log=said.append)
    judge = features.judge(tiny_data(0), log=said.append)
    assert (network.folder, judge.folder) == (tmp_path / "tiny", tmp_path / "judge_tiny") and len(said) == 2
    assert (network.info["seed"], network.info["architecture"]) == (0, "feature_cnn")
    assert (judge.info["seed"], judge.info["architecture"], judge.info["role"]) == (1, "judge_cnn", "judge")
    assert judge.info["test_accuracy"] > 0.9 and judge.info["feature_rms"] > 0
    info = judge.folder / "info.json"
    info.write_text(json.dumps({**judge.info, "seed": 0}))  # another network under the judge's name
    assert features.judge(tiny_data(0), log=said.append).info["seed"] == 1
    assert "was another network (seed 0, wanted 1): training it again" in said[2]
    legacy = {k: v for k, v in network.info.items() if k not in ("architecture", "role", "feature_rms")}
    (network.folder / "info.json").write_text(json.dumps(legacy))  # a cache made before the judge: still used
    assert features.feature_network(tiny_data(0), log=said.append).info == legacy and len(said) == 4


@pytest.fixture(scope="module")
def fashion_network():
    return features.feature_network(load_dataset("fashion_mnist", 300), 300, log=lambda line: None)


@pytest.fixture(scope="module")
def fashion_judge():
    return features.judge(load_dataset("fashion_mnist", 300), 300, log=lambda line: None)


@pytest.mark.parametrize("which", ["fashion_network", "fashion_judge"])
def test_the_distance_grows_as_images_are_spoilt(which, request):
    network = request.getfixturevalue(which)
    scale, kid = network.info["scale"], network.info["kid_scale"]
    for figures in (scale, kid):
        real = figures["training images (held-out real)"]
        assert real < figures["test images blurred (σ = 1 px)"] < figures["test images blurred (σ = 2 px)"]
        assert real < figures["test images with noise (σ = 0.3)"]
    data = load_dataset("fashion_mnist", 300)
    base = network.features(data.x_test)
    heavier = network.distances(base, network.features(noisy(data.x_test, 0.5)))
    assert heavier["frechet_distance"] > scale["test images with noise (σ = 0.3)"]
    assert heavier["kid_low"] > 0 and heavier["kid"] > kid["test images with noise (σ = 0.3)"]


def test_the_judge_is_not_the_network_the_dfc_vae_trains_against(fashion_network, fashion_judge):
    model = build_model(model_config("dfc", feature_network=str(fashion_network.weights_path)))
    trained_against = {layer.name for layer in model.features.layers}
    judge_layers = {layer.name: layer for layer in fashion_judge.classifier.layers}
    assert not (trained_against - {"image"}) & set(judge_layers)  # no layer of the DFC's features is the judge's
    assert fashion_judge.weights_path != fashion_network.weights_path
    assert fashion_judge.folder.name == "judge_fashion_mnist_limit300"
    assert (fashion_judge.info["seed"], fashion_network.info["seed"]) == (1, 0)
    shapes = [[w.shape for w in n.classifier.get_weights()] for n in (fashion_network, fashion_judge)]
    assert shapes[0] != shapes[1] and judge_layers["judge_conv_1"].kernel.shape[:2] == (5, 5)
    images = load_dataset("fashion_mnist", 300).x_test[:8]
    assert fashion_judge.features(images).shape == (8, 256) and fashion_network.features(images).shape == (8, 128)


def test_the_dfc_loss_is_the_feature_networks_squared_distance_by_hand(fashion_network):
    model = build_model(model_config("dfc", feature_network=str(fashion_network.weights_path)))
    x = np.random.default_rng(2).random((3, 28, 28, 1)).astype("float32")
    x_hat = np.random.default_rng(3).random((3, 28, 28, 1)).astype("float32")
    by_hand = sum(0.5 * ((numpy_of(a) - numpy_of(b)) ** 2).reshape(3, -1).sum(axis=1)
                  for a, b in zip(model.features(x), model.features(x_hat)))
    np.testing.assert_allclose(numpy_of(model.feature_loss(x, x_hat)), by_hand, rtol=1e-5)
    conv = fashion_network.classifier.get_layer("feature_conv_1").get_weights()[0]  # the trained network, loaded
    np.testing.assert_array_equal(model.features.get_layer("feature_conv_1").get_weights()[0], conv)
    assert len(model.trainable_weights) == len(build_model(model_config()).trainable_weights)  # it stays frozen
    assert model.term_names() == ("feature_loss", "kl_loss")
    with_pixels = build_model(model_config("dfc", pixel_weight=2.0))
    assert with_pixels.term_names() == ("feature_loss", "kl_loss", "r_loss")
    terms = with_pixels.loss_terms(x, with_pixels(x))
    assert terms["feature_loss"][1] == 0.5 and terms["r_loss"][1] == 2.0


def test_the_lecture_autoencoder_has_its_shapes_and_learns():
    model = build_model(preset_config("conv_ae_lecture"))
    model.build_all()
    names = {layer.name: tuple(layer.output.shape[1:]) for layer in model.encoder.layers}
    assert names["encoder_pool_0"] == (14, 14, 16) and names["encoder_pool_2"] == (3, 3, 64)
    assert names["encoder_global_pool"] == (30,) and names["code"] == (30,)
    decoder = {layer.name: tuple(layer.output.shape[1:]) for layer in model.decoder.layers}
    assert decoder["decoder_reshape"] == (3, 3, 16) and decoder["decoder_conv_t_0"] == (7, 7, 32)
    assert decoder["decoder_conv_t_2"] == (28, 28, 1)
    model.compile(optimizer="adam")
    x = load_dataset("fashion_mnist", 300).x_train
    history = model.fit(x, batch_size=50, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def test_lr_decay_is_keras_2s_formula(tmp_path):
    run_dir = train("--epochs", 2, "--lr", 0.001, "--lr-decay", 0.01, "--seed", 0, "--run-root", tmp_path, *TINY)
    lrs = json.loads((run_dir / "params.json").read_text())["training"]["lr_decay"], None
    import pandas as pd

    history = pd.read_csv(run_dir / "training.csv")
    steps = np.array([9, 18])  # 270 training images (300 less the 10 % validation split) in batches of 32
    np.testing.assert_allclose(history["lr"], 0.001 / (1 + 0.01 * steps), rtol=1e-5)
    assert lrs[0] == 0.01


@pytest.mark.parametrize("flags, words", [
    (["--preset", "dfc_vae", "--feature-layers", "feature_conv_1,nope"], "the feature network has no layer nope"),
    (["--preset", "dfc_vae", "--feature-weight", "-1"], "--feature-weight: must be a number >= 0"),
    (["--preset", "dfc_vae", "--feature-network", "missing.h5"], "feature network missing.h5 does not exist"),
    (["--lr-decay", "-0.1"], "--lr-decay: must be a number >= 0"),
])
def test_bad_settings_end_in_one_line(flags, words, tmp_path):
    code, _, err = run_main(train_command.main, *flags, "--epochs", 1, "--run-root", tmp_path / "runs", *TINY)
    assert code != 0 and len(err.strip().splitlines()) == 1 and words in err, err


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["conv_vae", "conv_ae_lecture", "dfc_vae"])
def test_evaluate_prints_the_sample_scores_of_every_family(preset, tmp_path):
    run_dir = train("--preset", preset, "--epochs", 1, "--seed", 0, "--run-root", tmp_path, *TINY)
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 4)
    assert code == 0 and "Fréchet distance" in out and "reconstructions classified right" in out, err
    assert ("bits/dim" in out) == (preset != "conv_ae_lecture") and ("no likelihood" in out) == (preset == "conv_ae_lecture")
    entry = json.loads((run_dir / "eval.json").read_text())["k4_n100"]
    assert entry["frechet_distance"] > 0 and 0 <= entry["reconstruction_accuracy"] <= 1
    assert 0 <= entry["class_entropy"] <= 1 and ("nll" in entry) == (preset != "conv_ae_lecture")
    assert entry["judge"].startswith("judge_cnn, seed 1") and entry["kid_low"] <= entry["kid"] <= entry["kid_high"]
    if preset == "dfc_vae":  # trained against the feature network, scored by the judge
        assert "classifier.weights.h5" in (run_dir / "params.json").read_text()
        assert "judge_" not in (run_dir / "params.json").read_text() and "judge_" in entry["judge"]
    keras.config.set_dtype_policy("float32")


def test_evaluate_names_the_judge_and_its_kid_in_eval_json(trained_run):
    code, out, err = run_main(evaluate.main, trained_run, "--samples", 2, "--limit", 40)
    assert code == 0, err[-2000:]
    entry = json.loads((trained_run / "eval.json").read_text())["k2_n40"]
    judge = features.judge(load_dataset("fashion_mnist", 300), 300)
    assert entry["judge"] == judge.describe() and entry["judge"].startswith("judge_cnn, seed 1, test accuracy ")
    assert entry["judge"].endswith(str(judge.folder)) and (entry["kid_subsets"], entry["kid_subset_size"]) == (10, 4)
    assert entry["kid_low"] < entry["kid"] < entry["kid_high"] and entry["frechet_distance"] > 0
