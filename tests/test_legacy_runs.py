"""Run folders made before the autoencoder families (a flat `model` dict, `vae.weights.h5`) still load,
evaluate, generate and resume."""

import json
import shutil

import numpy as np
import pandas as pd

import evaluate
import generate
from conftest import run_main, train
from utils.runs.loading import load_model

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
    run_dir = _legacy_copy(trained_run, tmp_path)
    model = load_model(run_dir)
    z = np.random.default_rng(0).standard_normal((4, 2)).astype("float32")
    np.testing.assert_array_equal(model.decode(z), load_model(trained_run).decode(z))
    assert model.config.objective.loss == "mse" and model.config.architecture.encoder_act == "gelu"
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 4, "--limit", 20)
    assert code == 0 and "NLL" in out, err[-1500:]
    code, _, err = run_main(generate.main, run_dir, "--n", 4, "--out", tmp_path / "g.png")
    assert code == 0 and (tmp_path / "g.png").is_file(), err[-1500:]
    assert train("--resume", run_dir, "--epochs", 3) == run_dir
    assert list(pd.read_csv(run_dir / "training.csv")["epoch"]) == [1, 2, 3]
    params = json.loads((run_dir / "params.json").read_text())
    assert params["status"] == "finished" and "architecture" not in params["model"]  # it keeps its own layout
