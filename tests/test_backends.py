"""Keras 3 on every backend. Under `KERAS_BACKEND=jax` or `torch` every preset of every family trains, resumes,
evaluates and generates, and a run killed mid-training resumes (the TensorFlow runs of the same are in
test_families.py, test_suite.py and test_resume.py). Under any backend, models saved on one backend load
and decode the same on the others."""

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import keras
import numpy as np
import pytest

import evaluate
import generate
from conftest import REPO, kill_after_first_epoch, last_line, preset_as_recorded, run_main, train
from models.presets import PRESETS, preset_config
from utils.runs.loading import load_model

BACKEND = keras.backend.backend()
OTHER_BACKENDS = [b for b in ("tensorflow", "jax", "torch") if b != BACKEND]
SMALL = ["--dataset", "fashion_mnist", "--limit", "100", "--batch-size", "50"]  # strings: also for subprocesses
on_other_backends = pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow's runs are in the other files")


def installed(backend):
    return find_spec(backend) is not None


@pytest.mark.slow
@on_other_backends
# The hierarchy's paper-sized presets share lvae_small's code (tests/test_lvae.py fits a step of each).
@pytest.mark.parametrize("preset", [p for p in PRESETS if preset_config(p).family != "lvae" or p == "lvae_small"])
def test_every_preset_trains_resumes_evaluates_and_generates(preset, tmp_path):
    run_dir = train("--preset", preset, "--epochs", 1, "--seed", 0, "--run-root", tmp_path, *SMALL)
    assert train("--resume", run_dir, "--epochs", 2) == run_dir
    params = json.loads((run_dir / "params.json").read_text())
    assert params["status"] == "finished" and params["versions"]["backend"] == BACKEND
    model = load_model(run_dir)
    assert model.config == preset_as_recorded(preset, model, epochs=1)
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 4, "--limit", 20)
    assert code == 0 and np.isfinite(json.loads((run_dir / "eval.json").read_text())["k4_n20"]["pixel_mse"]), err
    code, out, err = run_main(generate.main, run_dir, "--n", 4, "--out", tmp_path / "g.png", "--seed", 0)
    assert code == 0 and (tmp_path / "g.png").is_file(), err


@pytest.mark.slow
@on_other_backends
def test_a_run_killed_mid_training_resumes_on_its_backend(tmp_path):
    run_dir = kill_after_first_epoch("gelu_full_bn_before", tmp_path, "0001_fashion_mnist_gelu_full_bn_before", *SMALL)
    assert train("--resume", run_dir) == run_dir
    params = json.loads((run_dir / "params.json").read_text())
    assert params["status"] == "finished" and params["resumes"][0]["from_epoch"] >= 1


def test_a_run_is_resumed_on_the_backend_it_was_made_with(trained_run, tmp_path):
    import shutil

    import train as train_command

    copy = tmp_path / trained_run.name
    shutil.copytree(trained_run, copy)
    params = json.loads((copy / "params.json").read_text())
    params["versions"]["backend"] = OTHER_BACKENDS[0]
    (copy / "params.json").write_text(json.dumps(params))
    code, _, err = run_main(train_command.main, "--resume", copy, "--epochs", 3)
    assert code == 1 and f"trained on the {OTHER_BACKENDS[0]} backend" in err and f"KERAS_BACKEND={OTHER_BACKENDS[0]}" in err


# Decode fixed codes with a run's decoder.h5 (plain Keras) and its encoder.h5 (plain Keras + Sampling) on the
# backend of this process; save both results.
DECODE = """
import sys, numpy as np, keras
import models  # the Sampling layer of a VAE's encoder.h5
models_dir, out = sys.argv[1], sys.argv[2]
z = np.random.default_rng(0).standard_normal((6, 2)).astype("float32")
x = np.linspace(0, 1, 2 * 28 * 28, dtype="float32").reshape(2, 28, 28, 1)
decoder = keras.models.load_model(models_dir + "/decoder.h5", compile=False)
encoder = keras.models.load_model(models_dir + "/encoder.h5", compile=False)
np.savez(out, images=keras.ops.convert_to_numpy(decoder(z)), mean=keras.ops.convert_to_numpy(encoder(x)[0]),
         backend=keras.backend.backend())
"""


def decoded_on(backend, models_dir, out):
    """DECODE's results for `models_dir` on `backend`: in a fresh process, or in this one where it is this
    process's backend (what matters is the other side's fresh process)."""
    if backend == BACKEND:
        namespace = {"__name__": "decode"}
        argv, sys.argv = sys.argv, ["-c", str(models_dir), str(out)]
        try:
            exec(DECODE, namespace)
        finally:
            sys.argv = argv
        return np.load(out)
    done = subprocess.run([sys.executable, "-c", DECODE, str(models_dir), str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": backend})
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("other", OTHER_BACKENDS)
def test_saved_models_load_and_decode_the_same_across_backends(other, trained_run, tmp_path):
    if not installed(other):
        pytest.skip(f"{other} is not installed (pip install -r requirements-backends.txt)")
    here = decoded_on(BACKEND, trained_run / "models", tmp_path / "here.npz")
    there = decoded_on(other, trained_run / "models", tmp_path / "there.npz")  # made on this backend
    assert str(there["backend"]) == other
    np.testing.assert_allclose(there["images"], here["images"], atol=1e-5)
    np.testing.assert_allclose(there["mean"], here["mean"], atol=1e-5)
    made = subprocess.run([sys.executable, str(REPO / "train.py"), "--preset", "gelu_full_bn_before", "--epochs", "1",
                           "--seed", "0", "--run-root", str(tmp_path / "runs"), *SMALL], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "KERAS_BACKEND": other})
    assert made.returncode == 0, made.stderr[-2000:]
    run_dir = tmp_path / "runs" / last_line(made.stdout).split("/")[-1]
    theirs = decoded_on(other, run_dir / "models", tmp_path / "theirs.npz")
    ours = decoded_on(BACKEND, run_dir / "models", tmp_path / "ours.npz")  # made on the other backend
    np.testing.assert_allclose(ours["images"], theirs["images"], atol=1e-5)
    np.testing.assert_allclose(ours["mean"], theirs["mean"], atol=1e-5)
    assert json.loads((run_dir / "params.json").read_text())["versions"]["backend"] == other


@on_other_backends
@pytest.mark.parametrize("term", ["kl_loss", "feature_loss", "decoder_feature_loss", "gan_loss", "dis_loss"])
def test_each_vae_gan_term_moves_only_its_own_network_on_this_backend(term):
    from test_vae_gan import OWNER, moved_by

    assert moved_by(term) == {OWNER[term]}
