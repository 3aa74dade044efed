"""Every family: loss terms by hand, the AE's code Gaussian kept with its weights, and each system preset
trained, resumed, evaluated, loaded and sampled from through the commands."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import evaluate
import generate
from conftest import REPO, TINY, numpy_of, preset_as_recorded, run_main, train
from models import Autoencoder, VariationalAutoencoder, build_model, likelihoods, model_config, penalties
from models.presets import SYSTEM_PRESETS, preset_config
from utils.runs.loading import load_model
from utils.training.callbacks import history_columns

RNG = np.random.default_rng(0)
X = RNG.random((6, 28, 28, 1)).astype("float32")


def test_denoising_target_is_the_clean_image_and_noise_is_for_training_only():
    model = Autoencoder(model_config("dae", noise="gaussian:0.5"))
    state = model.corruption.seed_generator.state
    start = numpy_of(state)
    noisy = numpy_of(model.corrupt(X, training=True))
    assert np.abs(noisy - X).mean() > 0.2  # the noise is there while training
    state.assign(start)  # the same noise again inside the loss
    _, terms = model.per_sample_losses(X, training=True)
    output = model.reconstruct(noisy)
    np.testing.assert_allclose(numpy_of(terms["r_loss"]), ((X - output) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)
    assert not np.allclose(numpy_of(terms["r_loss"]), ((noisy - output) ** 2).mean(axis=(1, 2, 3)), rtol=1e-2)
    _, clean_terms = model.per_sample_losses(X, training=False)  # validation sees the clean image
    clean_output = model.reconstruct(X)
    np.testing.assert_allclose(numpy_of(clean_terms["r_loss"]), ((X - clean_output) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)


def test_dropout_noise_zeroes_pixels_only_while_training():
    model = Autoencoder(model_config("dae", "dense", noise="dropout:0.5", encoder_widths=[8], decoder_widths=[8]))
    noisy = numpy_of(model.corrupt(X, training=True))
    assert 0.4 < np.mean(noisy == 0) < 0.6
    np.testing.assert_array_equal(numpy_of(model.corrupt(X, training=False)), X)


def test_kl_sparsity_on_a_batch_by_hand():
    code = np.array([[0.1, 0.9, 0.5], [0.3, 0.7, 0.5]], "float32")
    rho, rho_hat = 0.05, code.mean(axis=0)
    expected = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    np.testing.assert_allclose(numpy_of(penalties.kl_sparsity(code, rho)), [expected, expected], rtol=1e-5)
    np.testing.assert_allclose(numpy_of(penalties.l1_activity(code)), [1.5, 1.5], rtol=1e-6)


def test_sparse_autoencoder_total_is_the_weighted_sum():
    model = Autoencoder(model_config("sae", "dense", encoder_widths=[16], decoder_widths=[16], z_dim=12,
                                     code_activation="sigmoid", sparsity="kl:0.1:0.5"))
    total, terms = model.per_sample_losses(X)
    rho_hat = model.latent_means(X).mean(axis=0)
    kl = np.sum(0.1 * np.log(0.1 / rho_hat) + 0.9 * np.log(0.9 / (1 - rho_hat)))
    np.testing.assert_allclose(numpy_of(terms["sparsity_loss"]), np.full(len(X), kl), rtol=1e-4)
    np.testing.assert_allclose(numpy_of(total), numpy_of(terms["r_loss"]) + 0.5 * kl, rtol=1e-5)
    assert model.term_names() == ("r_loss", "sparsity_loss")


def test_gaussian_likelihoods_match_their_closed_forms():
    mean = RNG.random(X.shape).astype("float32")
    log_var = RNG.normal(-2, 0.5, X.shape).astype("float32")
    sigma = 0.3
    fixed = (-0.5 * ((X - mean) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(axis=(1, 2, 3))
    learned = (-0.5 * (X - mean) ** 2 / np.exp(log_var) - 0.5 * log_var - 0.5 * math.log(2 * math.pi)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(numpy_of(likelihoods.log_likelihood("gaussian", X, mean, sigma)), fixed, rtol=1e-5)
    np.testing.assert_allclose(numpy_of(likelihoods.log_likelihood("gaussian_learned", X, [mean, log_var])), learned,
                               rtol=1e-5)
    bernoulli = (X * np.log(mean) + (1 - X) * np.log(1 - mean)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(numpy_of(likelihoods.log_likelihood("bce", X, mean)), bernoulli, rtol=1e-4)
    with pytest.raises(ValueError, match="not a likelihood"):
        likelihoods.log_likelihood("mse", X, mean)


def test_learned_variance_decoder_has_two_outputs_and_generation_uses_the_mean():
    model = VariationalAutoencoder(model_config("vae", "dense", loss="gaussian_learned", encoder_widths=[16],
                                                decoder_widths=[16], z_dim=3))
    mean, log_var = model.decoder(np.zeros((2, 3), "float32"))
    assert mean.shape == log_var.shape == (2, 28, 28, 1)
    mu = model.latent_means(X[:2])
    np.testing.assert_array_equal(model.decode(mu), numpy_of(model.decoder(mu)[0]))
    assert model.reconstruct(X[:2]).shape == (2, 28, 28, 1)


def test_decoder_l2_and_warmup_as_a_fraction():
    model = VariationalAutoencoder(model_config("vae", "dense", loss="bce", decoder_l2=0.01, beta=2.0,
                                                warmup_fraction=3 / 7, encoder_widths=[16], decoder_widths=[16]))
    total, terms = model.per_sample_losses(X)
    l2 = sum(float(np.sum(np.square(w))) for w in model.decoder.get_weights())
    np.testing.assert_allclose(numpy_of(terms["l2_loss"]), np.full(len(X), l2), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(total), numpy_of(terms["r_loss"]) + 2.0 * numpy_of(terms["kl_loss"]) + 0.01 * l2,
                               rtol=1e-5)
    model.on_epoch_start(0, 14)
    assert float(numpy_of(model.kl_beta)) == 0.0
    model.on_epoch_start(3, 14)  # the warm-up lasts 6 of 14 epochs
    assert float(numpy_of(model.kl_beta)) == pytest.approx(1.0)
    model.on_epoch_start(6, 14)
    assert float(numpy_of(model.kl_beta)) == pytest.approx(2.0)


@pytest.mark.parametrize("family,arch,extra", [("ae", "conv", {}), ("vae", "dense", {}),
                                               ("sae", "conv", {"sparsity": "l1:1e-4", "z_dim": 8}),
                                               ("dae", "dense", {"noise": "gaussian:0.3"})])
def test_short_fit_lowers_the_loss_and_weights_round_trip(family, arch, extra, tmp_path):
    model = build_model(model_config(family, arch, **extra))
    model.build_all()
    model.compile(optimizer="adam", jit_compile=False)
    x = np.repeat(X, 10, axis=0)
    history = model.fit(x, epochs=3, batch_size=20, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert set(history) == {"loss", *model.term_names()}
    model.fit_code_distribution(x)
    model.save_weights(tmp_path / "m.weights.h5")
    again = type(model).from_config(model.get_config())
    again.build_all()
    again.load_weights(tmp_path / "m.weights.h5")
    code = model.latent_means(X[:2])  # a VAE's mu: deterministic, unlike its z
    np.testing.assert_array_equal(again.latent_means(X[:2]), code)
    np.testing.assert_array_equal(again.decode(code), model.decode(code))
    np.testing.assert_array_equal(again.sample(5, seed=1), model.sample(5, seed=1))  # an AE's Gaussian came along
    encoder, decoder = model.export_models()
    np.testing.assert_allclose(numpy_of(decoder(code)), model.decode(code), atol=1e-5)
    exported_code = encoder(X[:2])
    np.testing.assert_allclose(numpy_of(exported_code[0] if family == "vae" else exported_code), code, atol=1e-5)


def test_an_autoencoder_samples_from_the_gaussian_of_its_training_codes():
    model = build_model(model_config("ae", "dense", encoder_widths=[16], decoder_widths=[16], z_dim=2))
    with pytest.raises(ValueError, match="has no prior"):
        model.sample_codes(3, np.random.default_rng(0))  # not fitted before training ends
    codes = model.latent_means(X)
    model.fit_code_distribution(X)
    mean, cov = model.code_moments()
    np.testing.assert_allclose(mean, codes.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cov, np.cov(codes, rowvar=False), rtol=1e-4, atol=1e-7)
    drawn = model.sample_codes(20_000, np.random.default_rng(0))
    np.testing.assert_allclose(drawn.mean(axis=0), mean, atol=0.05 * np.sqrt(np.diag(cov)).max() + 1e-6)
    grid = model.latent_grid(3)  # the manifold's grid spans the fitted Gaussian's marginals
    np.testing.assert_allclose(grid[4], mean, rtol=1e-5, atol=1e-6)
    assert model.has_likelihood is False and VariationalAutoencoder.has_likelihood is True


def test_a_folder_from_before_the_gaussian_joined_the_weights_still_samples(trained_ae):
    legacy = trained_ae.parent / "legacy_ae"
    import shutil

    shutil.copytree(trained_ae, legacy)
    model = load_model(trained_ae)
    mean, cov = model.code_moments()
    # An older folder: weights without the Gaussian, which sat in code_gaussian.json beside them.
    old = build_model(model.config)
    old.build_all()
    old.code_gaussian.fitted.assign(0.0)
    old.save_weights(legacy / "models" / "model.weights.h5")
    (legacy / "models" / "code_gaussian.json").write_text(json.dumps({"mean": (mean + 1).tolist(), "cov": cov.tolist()}))
    np.testing.assert_allclose(load_model(legacy).code_moments()[0], mean + 1, rtol=1e-6)


@pytest.fixture(scope="module")
def trained_ae(tmp_path_factory):
    return train("--preset", "dae_gaussian", "--epochs", 1, "--seed", 0, "--batch-size", 100,
                 "--run-root", tmp_path_factory.mktemp("ae"), *TINY)


FRESH_LOAD = """
import sys, numpy as np, keras
models_dir = sys.argv[1]
decoder = keras.models.load_model(models_dir + "/decoder.h5", compile=False)
import models  # registers Sampling, which a VAE's encoder.h5 holds
encoder = keras.models.load_model(models_dir + "/encoder.h5", compile=False)
out = encoder(np.zeros((2,) + encoder.input_shape[1:], "float32"))
code = out[0] if isinstance(out, list) else out
images = decoder(code)
print("ok", keras.ops.convert_to_numpy(images[0] if isinstance(images, list) else images).shape)
"""


def exercise_preset(preset, root, resume=True):
    """Train `preset` for an epoch, resume it to two (or train two at once), evaluate and generate through
    the commands' mains; returns (run folder, what generate.py printed)."""
    run_dir = train("--preset", preset, "--epochs", 1 if resume else 2, "--seed", 0, "--batch-size", 100,
                    "--run-root", root, *TINY)
    if resume:
        assert train("--resume", run_dir, "--epochs", 2) == run_dir
    params = json.loads((run_dir / "params.json").read_text())
    model = load_model(run_dir)
    assert params["status"] == "finished" and len(params.get("resumes", [])) == resume
    assert not resume or params["resumes"][0]["from_epoch"] == 1
    assert model.config == preset_as_recorded(preset, model, epochs=1 if resume else 2)
    history = pd.read_csv(run_dir / "training.csv")
    assert list(history["epoch"]) == [1, 2] and list(history.columns) == history_columns(model.term_names())
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 4, "--limit", 40)
    assert code == 0, err
    entry = json.loads((run_dir / "eval.json").read_text())["k4_n40"]
    assert ("nll" in entry) == model.has_likelihood and entry["pixel_mse"] > 0
    code, out, err = run_main(generate.main, run_dir, "--n", 9, "--out", root / "g.png", "--seed", 0, "--bernoulli")
    assert code == 0, err
    own = {name for name in model.diagnostics(np.zeros((2, 28, 28, 1), "float32"))}
    manifold = {"manifold.png"} if model.latent_grid(2) is not None else set()
    assert {p.name for p in (run_dir / "viz").iterdir()} == {"latent_space.png", "samples.png",
                                                             "reconstructions.png", "losses.png", *own, *manifold}
    return run_dir, out


def test_a_system_preset_trains_resumes_evaluates_generates_and_loads_in_a_fresh_process(tmp_path):
    run_dir, printed = exercise_preset("dae_gaussian", tmp_path)
    assert "fitted to the training codes" in printed  # an AE has no prior, and generate.py says so
    fresh = subprocess.run([sys.executable, "-c", FRESH_LOAD, str(run_dir / "models")], capture_output=True,
                           text=True, cwd=tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert fresh.returncode == 0 and "ok (2, 28, 28, 1)" in fresh.stdout, fresh.stderr[-2000:]


# The hierarchy's presets go through every command in tests/test_lvae.py (lvae_small end to end, the paper-
# sized ones by a training step): on these paper-sized networks this exercise cost minutes.
OTHER_PRESETS = [p for p in SYSTEM_PRESETS if p != "dae_gaussian" and preset_config(p).family != "lvae"]
# Resuming is the same code for every preset of a family: one preset of each family resumes (the denoising
# AE's is dae_gaussian above), the others train their two epochs at once.
RESUMED = {next(p for p in OTHER_PRESETS if preset_config(p).family == f)
           for f in {preset_config(p).family for p in OTHER_PRESETS} - {preset_config("dae_gaussian").family}}


@pytest.mark.slow
@pytest.mark.parametrize("preset", OTHER_PRESETS)
def test_every_other_system_preset(preset, tmp_path):
    run_dir, printed = exercise_preset(preset, tmp_path, resume=preset in RESUMED)
    model = load_model(run_dir)
    assert model.sampling_note in printed  # generate.py says where its codes come from
    assert ("fitted to the training codes" in printed) == isinstance(model, Autoencoder)
