"""The VAE-GAN: each network's loss moves that network alone (one optimizer step with one term switched on,
on this process's backend; tests/test_backends.py runs it on the others), a lost game or collapsed samples are
reported, and the preset trains, survives a kill, resumes, scores and samples through the commands."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

import evaluate
import generate
from conftest import TINY, kill_after_first_epoch, numpy_of, run_main, train
from models import build_model, model_config

SMALL_NET = {"encoder_conv_filters": [8, 8], "encoder_conv_kernel_size": [3, 3], "encoder_conv_strides": [2, 2],
             "decoder_conv_t_filters": [8, 1], "decoder_conv_t_kernel_size": [3, 3], "decoder_conv_t_strides": [2, 2],
             "dis_filters": [4, 8]}
SWITCHES = {"kl_loss": "beta", "feature_loss": "feature_weight", "decoder_feature_loss": "gamma",
            "gan_loss": "gan_weight", "dis_loss": "dis_weight"}
OWNER = {"kl_loss": "encoder", "feature_loss": "encoder", "decoder_feature_loss": "decoder", "gan_loss": "decoder",
         "dis_loss": "discriminator"}
IMAGES = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")


def moved_by(term):
    """The networks whose weights one Adam step on `term` alone changes."""
    keras.utils.set_random_seed(0)
    model = build_model(model_config("vae_gan", **SMALL_NET, **{w: 1.0 if t == term else 0.0
                                                                 for t, w in SWITCHES.items()}))
    model.build_all()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    networks = {"encoder": model.encoder, "decoder": model.decoder, "discriminator": model.discriminator}
    before = {name: [numpy_of(w).copy() for w in net.trainable_weights] for name, net in networks.items()}
    model.train_on_batch(IMAGES)
    return {name for name, net in networks.items()
            if any(not np.array_equal(a, numpy_of(w)) for a, w in zip(before[name], net.trainable_weights))}


@pytest.mark.parametrize("term", SWITCHES)
def test_each_term_moves_only_its_own_network(term):
    assert moved_by(term) == {OWNER[term]}


def test_a_lost_game_and_collapsed_samples_are_reported(monkeypatch):
    keras.utils.set_random_seed(0)
    model = build_model(model_config("vae_gan", **SMALL_NET))
    model.build_all()
    varied = np.random.default_rng(1).random((256, 28, 28, 1)).astype("float32")
    monkeypatch.setattr(model, "sample", lambda n, seed=None: varied[:n])  # samples as varied as the images
    assert model.training_report(IMAGES) == []
    monkeypatch.undo()
    output = model.decoder.layers[-1]  # the last conv-transpose: zero kernel, so every code decodes alike
    output.set_weights([np.zeros_like(w) for w in output.get_weights()])
    assert any("samples collapsed" in line for line in model.training_report(IMAGES))
    real = model.per_sample_losses
    monkeypatch.setattr(model, "per_sample_losses", lambda images: (real(images)[0], {
        **real(images)[1], "dis_loss": keras.ops.zeros((len(images),))}))
    assert model.game(IMAGES) == {"discriminator_loss": 0.0, "discriminator_won": True}
    assert any("discriminator won outright" in line for line in model.training_report(IMAGES))


@pytest.mark.slow
def test_the_preset_survives_a_kill_resumes_scores_and_samples(tmp_path):
    run_dir = kill_after_first_epoch("vae_gan", tmp_path, "0001_fashion_mnist_vae_gan", *TINY)
    assert train("--resume", run_dir) == run_dir
    history = pd.read_csv(run_dir / "training.csv")
    assert list(history["epoch"]) == [1, 2, 3] and {"dis_loss", "gan_loss", "feature_loss"} <= set(history)
    params = json.loads((run_dir / "params.json").read_text())
    assert params["result"]["best_epoch"] == 3  # the last epoch: opposed losses choose no best one
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 4, "--limit", 60)
    assert code == 0, err
    entry = json.loads((run_dir / "eval.json").read_text())["k4_n60"]
    assert isinstance(entry["discriminator_won"], bool) and "class_entropy" in entry and entry["frechet_distance"] > 0
    code, out, err = run_main(generate.main, run_dir / "models" / "decoder.h5", "--n", 4, "--out", tmp_path / "g.png")
    assert code == 0, err  # the plain decoder, in plain Keras
