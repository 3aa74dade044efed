"""A real short run: the loss falls, the run folder holds what it promises, its figures show what its saved
model draws, and its models reload (in plain Keras in a fresh process, and as the training model)."""

import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import generate
from conftest import REPO, TINY, run_main, train
from utils.analysis.plots import plot_latent_space, plot_reconstructions, plot_samples, save_figure
from utils.data.binarize import load_data
from utils.runs.loading import load_model
from utils.training.callbacks import history_columns
from utils.runs.settings import TrainSettings


def test_loss_falls(trained_run):
    history = pd.read_csv(trained_run / "training.csv")
    assert list(history["epoch"]) == [1, 2]
    assert history["loss"].iloc[1] < history["loss"].iloc[0]
    assert history["val_loss"].iloc[1] < history["val_loss"].iloc[0]
    np.testing.assert_allclose(history["loss"], history["r_loss"] + history["kl_loss"], rtol=1e-4)


def test_run_folder_contents(trained_run):
    assert trained_run.name == "0001_fashion_mnist_gelu_both"
    history = pd.read_csv(trained_run / "training.csv")
    assert list(history.columns) == history_columns(("r_loss", "kl_loss"))
    assert (history["lr"] == 0.0005).all() and (history["train_seconds"] > 0).all()
    params = json.loads((trained_run / "params.json").read_text())
    assert params["status"] == "finished"
    assert params["model"]["architecture"]["encoder_act"] == params["model"]["architecture"]["decoder_act"] == "gelu"
    assert params["model"]["family_module"] == "models.VAE"
    assert params["loss_formula"] == "1000 × pixel MSE + KL"
    assert params["training"]["seed"] == 1 and params["training"]["epochs"] == 2
    assert {"python", "keras", "numpy", "backend", params["versions"]["backend"]} <= set(params["versions"])
    assert "git_commit" in params
    assert params["result"]["best_val_loss"] == history["val_loss"].min()
    for name in ("encoder.h5", "decoder.h5", "model.weights.h5"):
        assert (trained_run / "models" / name).stat().st_size > 10_000
    assert not list(trained_run.rglob(".tmp-*"))


def _png(figure, path):
    save_figure(figure, path)
    return matplotlib.image.imread(path)


def test_figures_show_what_the_saved_model_draws(trained_run, tmp_path):
    """Each figure, drawn again from the model loaded from the run's best weights, is the same picture."""
    model = load_model(trained_run)
    data = load_data(TrainSettings(**json.loads((trained_run / "params.json").read_text())["training"]))
    codes = model.latent_means(data.x_val)  # the figures show the validation images, never the test images
    expected = {"samples.png": plot_samples(model.sample(64, 0)),
                "reconstructions.png": plot_reconstructions(data.x_val[:10], model.decode(codes[:10]), data.x_train[:10],
                                                            model.reconstruct(data.x_train[:10]), "validation"),
                "latent_space.png": plot_latent_space(codes, data.y_val, data.class_names, "validation")}
    for name, figure in expected.items():
        saved = matplotlib.image.imread(trained_run / "viz" / name)
        again = _png(figure, tmp_path / name)
        assert saved.shape == again.shape and np.abs(saved - again).max() <= 2 / 255, name
    blank = _png(plot_samples(np.zeros((64, 28, 28, 1), "float32")), tmp_path / "blank.png")
    assert np.abs(matplotlib.image.imread(trained_run / "viz" / "samples.png") - blank).max() > 0.2  # not blank
    assert {p.name for p in (trained_run / "viz").iterdir()} == {
        "latent_space.png", "reconstructions.png", "samples.png", "manifold.png", "losses.png"}


FRESH_DECODE = """
import sys, numpy as np, keras
decoder = keras.models.load_model(sys.argv[1], compile=False)
z = np.random.default_rng(0).standard_normal((6, 2)).astype("float32")
np.save(sys.argv[2], keras.ops.convert_to_numpy(decoder(z)))
print("project imported:", any(m.split(".")[0] in ("models", "utils") for m in sys.modules))
"""


@pytest.mark.slow
def test_decoder_loads_in_plain_keras_in_a_fresh_process(trained_run, tmp_path):
    out = tmp_path / "fresh.npy"
    result = subprocess.run([sys.executable, "-c", FRESH_DECODE, trained_run / "models" / "decoder.h5", out],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "project imported: False" in result.stdout
    z = np.random.default_rng(0).standard_normal((6, 2)).astype("float32")
    np.testing.assert_allclose(np.load(out), load_model(trained_run).decode(z), atol=1e-5)


FRESH_ENCODE = """
import sys, numpy as np, keras
import models  # registers the Sampling layer
encoder = keras.models.load_model(sys.argv[1], compile=False)
mu, log_var, z = encoder(np.full((2, 28, 28, 1), 0.5, "float32"))
np.save(sys.argv[2], keras.ops.convert_to_numpy(mu))
"""


def test_encoder_loads_in_a_fresh_process_once_the_project_is_imported(trained_run, tmp_path):
    out = tmp_path / "mu.npy"
    result = subprocess.run([sys.executable, "-c", FRESH_ENCODE, trained_run / "models" / "encoder.h5", out],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = load_model(trained_run).latent_means(np.full((2, 28, 28, 1), 0.5, "float32"))
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)


def test_generate_draws_the_models_own_samples(trained_run, tmp_path):
    code, out, err = run_main(generate.main, trained_run, "--n", 16, "--out", tmp_path / "digits.png", "--seed", 3)
    assert code == 0, err
    assert "the VAE's prior" in out
    rng = np.random.default_rng(3)
    model = load_model(trained_run)
    expected = _png(plot_samples(model.decode(model.sample_codes(16, rng)), cols=4), tmp_path / "expected.png")
    assert np.abs(matplotlib.image.imread(tmp_path / "digits.png") - expected).max() <= 2 / 255
    code, out, _ = run_main(generate.main, trained_run / "models" / "decoder.h5", "--n", 4, "--out", tmp_path / "d.png")
    assert code == 0 and "the VAE's prior" in out  # a decoder file inside a run folder: the run's own model


def test_colour_npz_trains_with_bce_and_a_larger_latent(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "colour.npz", x_train=rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8),
             x_test=rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8))
    run_dir = train("--dataset", tmp_path / "colour.npz", "--epochs", 1, "--loss", "bce", "--z-dim", 5,
                    "--warmup-epochs", 2, "--plot-every", 1, "--run-root", tmp_path / "runs")
    assert run_dir == tmp_path / "runs" / "0001_colour_lrelu_bce_z5"
    assert (run_dir / "viz" / "latent_space.png").is_file() and not (run_dir / "viz" / "manifold.png").exists()
    history = pd.read_csv(run_dir / "training.csv")
    assert history["loss"].iloc[0] == pytest.approx(history["r_loss"].iloc[0])  # warm-up: beta is 0 in epoch 1
    assert load_model(run_dir).reconstruct(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 32, 32, 3)


def test_peak_gpu_memory_is_recorded_on_a_gpu_only(trained_run, monkeypatch):
    from utils.training import device, run

    assert "gpu_peak_memory_mb" not in json.loads((trained_run / "params.json").read_text())["result"]  # CPU
    if device.backend() != "tensorflow":
        pytest.skip("the fake GPU below is TensorFlow's")
    import tensorflow as tf

    monkeypatch.setattr(device, "on_gpu", lambda: True)
    monkeypatch.setattr(tf.config.experimental, "get_memory_info",
                        lambda name: {"current": 0, "peak": 300 * 2**20} if name == "GPU:0" else None)
    assert run.run_result(trained_run)["gpu_peak_memory_mb"] == 300.0


def test_a_step_budget_trains_the_fewest_epochs_that_make_it_and_records_both(tmp_path):
    # 300 images less the validation split (29, 10 % of each class rounded): 271 in batches of 32 make 9 steps an
    # epoch, so 20 steps need 3 epochs
    run_dir = train(*TINY, "--steps", "20", "--epochs", "7", "--run-root", tmp_path)
    recorded = json.loads((run_dir / "params.json").read_text())
    assert recorded["n_train"] == 271 and recorded["training"]["steps"] == 20 and recorded["training"]["epochs"] == 3
    assert len(pd.read_csv(run_dir / "training.csv")) == 3 and recorded["result"]["optimizer_steps"] == 27
