"""A real short run: the loss falls, the run folder holds what it promises, saved models reload."""

import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pandas as pd

from conftest import REPO, TINY, last_line, run_script
from utils.callbacks import history_columns

VIZ = ["latent_space.png", "reconstructions.png", "samples.png", "manifold.png", "losses.png"]


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
    assert params["loss_formula"] == "1000 × pixel MSE + KL"
    assert params["training"]["seed"] == 1 and params["training"]["epochs"] == 2
    assert {"python", "tensorflow", "keras", "numpy"} <= set(params["versions"])
    assert params["versions"]["gelu_kernel"].startswith("op gelu_op-")  # the compiled GELU ran (g++ is here)
    assert "git_commit" in params
    assert params["result"]["best_val_loss"] == history["val_loss"].min()
    for name in ("encoder.h5", "decoder.h5", "model.weights.h5"):
        assert (trained_run / "models" / name).stat().st_size > 10_000
    for name in VIZ:
        image = matplotlib.image.imread(trained_run / "viz" / name)
        assert image.shape[0] > 100 and image.std() > 0.01, name  # a real picture, not a blank
    assert not list(trained_run.rglob(".tmp-*"))


FRESH_DECODE = """
import sys, numpy as np, keras
decoder = keras.models.load_model(sys.argv[1], compile=False)
z = np.random.default_rng(0).standard_normal((6, 2)).astype("float32")
np.save(sys.argv[2], np.asarray(decoder(z)))
print("project imported:", any(m.split(".")[0] in ("models", "utils") for m in sys.modules))
"""


def test_decoder_loads_in_plain_keras_in_a_fresh_process(trained_run, tmp_path):
    out = tmp_path / "fresh.npy"
    result = subprocess.run([sys.executable, "-c", FRESH_DECODE, trained_run / "models" / "decoder.h5", out],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "project imported: False" in result.stdout
    from models import VariationalAutoencoder

    model = VariationalAutoencoder.load(trained_run)  # the training model, rebuilt from params.json
    z = np.random.default_rng(0).standard_normal((6, 2)).astype("float32")
    np.testing.assert_allclose(np.load(out), np.asarray(model.decoder(z)), atol=1e-5)


FRESH_ENCODE = """
import sys, numpy as np, keras
sys.path.insert(0, sys.argv[2])
import models
encoder = keras.models.load_model(sys.argv[1], compile=False)
mu, log_var, z = encoder(np.full((2, 28, 28, 1), 0.5, "float32"))
print(mu.shape, np.isfinite(np.asarray(mu)).all())
"""


def test_encoder_loads_once_the_project_is_imported(trained_run):
    result = subprocess.run([sys.executable, "-c", FRESH_ENCODE, trained_run / "models" / "encoder.h5", REPO],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(2, 2) True" in result.stdout


def test_generate_writes_a_grid(trained_run, tmp_path):
    out = tmp_path / "digits.png"
    result = run_script("generate.py", trained_run, "--n", 16, "--out", out, "--seed", 3)
    assert result.returncode == 0, result.stderr[-2000:]
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 100 and image.std() > 0.01


def test_colour_npz_trains_with_bce_and_a_larger_latent(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "colour.npz", x_train=rng.integers(0, 256, (96, 32, 32, 3), dtype=np.uint8),
             x_test=rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8))
    result = run_script("train_vae.py", "--dataset", tmp_path / "colour.npz", "--epochs", 1, "--loss", "bce",
                        "--z-dim", 5, "--warmup-epochs", 2, "--plot-every", 1, "--run-root", tmp_path / "runs")
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = tmp_path / "runs" / "0001_colour_lrelu_bce_z5"
    assert last_line(result.stdout) == str(run_dir)
    assert (run_dir / "viz" / "latent_space.png").is_file() and not (run_dir / "viz" / "manifold.png").exists()
    history = pd.read_csv(run_dir / "training.csv")
    assert history["loss"].iloc[0] == history["r_loss"].iloc[0]  # warm-up: beta is 0 in the first epoch


def test_peak_gpu_memory_is_recorded_on_a_gpu_only(trained_run, monkeypatch):
    from utils import training

    assert "gpu_peak_memory_mb" not in json.loads((trained_run / "params.json").read_text())["result"]  # CPU
    monkeypatch.setattr(training, "on_gpu", lambda: True)
    monkeypatch.setattr(training.tf.config.experimental, "get_memory_info",
                        lambda device: {"current": 0, "peak": 300 * 2**20} if device == "GPU:0" else None)
    assert training.run_result(trained_run)["gpu_peak_memory_mb"] == 300.0


def test_params_name_the_gelu_kernel_that_runs(monkeypatch):
    """versions.gelu_kernel: none without a GELU, xla where XLA compiles the step or bfloat16 runs, else the op."""
    import dataclasses

    monkeypatch.delenv("VAE_GELU_KERNEL", raising=False)
    from models.families import model_config
    from utils.training import TrainSettings, gelu_kernel

    gelu, lrelu = model_config("vae", encoder_act="gelu", decoder_act="gelu"), model_config("vae")
    float32 = TrainSettings(jit=False)
    assert gelu_kernel(lrelu, float32) == "none"
    assert gelu_kernel(gelu, dataclasses.replace(float32, jit=True)) == "xla"
    assert gelu_kernel(gelu, dataclasses.replace(float32, mixed_precision=True)) == "xla"
    assert gelu_kernel(gelu, float32).startswith("op gelu_op-")
