"""Run folders made before the autoencoder families (a flat `model` dict, `vae.weights.h5`) still load,
evaluate, generate and resume."""

import json
import shutil

import numpy as np
import pandas as pd

from conftest import run_script

# The settings such a folder holds: the conv VAE's fields, flat, as VAEConfig wrote them.
LEGACY_KEYS = ("input_shape", "encoder_conv_filters", "encoder_conv_kernel_size", "encoder_conv_strides",
               "decoder_conv_t_filters", "decoder_conv_t_kernel_size", "decoder_conv_t_strides", "z_dim",
               "encoder_act", "decoder_act", "norm", "norm_pos", "dropout", "loss", "r_loss_factor", "beta",
               "warmup_epochs")


def _legacy_copy(trained_run, tmp_path):
    run_dir = tmp_path / trained_run.name
    shutil.copytree(trained_run, run_dir)
    params = json.loads((run_dir / "params.json").read_text())
    nested = {**params["model"]["architecture"], **params["model"]["objective"]}
    params["model"] = {k: nested[k] for k in LEGACY_KEYS}
    params["model_family"] = "vae"
    del params["loss_formula"]
    (run_dir / "params.json").write_text(json.dumps(params))
    (run_dir / "models" / "model.weights.h5").rename(run_dir / "models" / "vae.weights.h5")
    return run_dir


def test_a_legacy_folder_loads_evaluates_generates_and_resumes(trained_run, tmp_path):
    from models import VariationalAutoencoder
    from utils.runs import load_model

    run_dir = _legacy_copy(trained_run, tmp_path)
    model = VariationalAutoencoder.load(run_dir)
    fresh = load_model(trained_run)
    z = np.random.default_rng(0).standard_normal((4, 2)).astype("float32")
    np.testing.assert_array_equal(model.decoder(z), fresh.decoder(z))
    assert model.config.objective.loss == "mse" and model.config.architecture.encoder_act == "gelu"
    evaluated = run_script("evaluate.py", run_dir, "--samples", 4, "--limit", 20)
    assert evaluated.returncode == 0 and "NLL" in evaluated.stdout, evaluated.stderr[-1500:]
    generated = run_script("generate.py", run_dir, "--n", 4, "--out", tmp_path / "g.png")
    assert generated.returncode == 0 and (tmp_path / "g.png").is_file(), generated.stderr[-1500:]
    resumed = run_script("train_vae.py", "--resume", run_dir, "--epochs", 3)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert list(pd.read_csv(run_dir / "training.csv")["epoch"]) == [1, 2, 3]
    assert json.loads((run_dir / "params.json").read_text())["status"] == "finished"
