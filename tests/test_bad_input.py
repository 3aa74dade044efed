"""Every bad input ends in one clear line on stderr, a non-zero exit, no traceback and no run folder."""

import numpy as np
import pytest

from conftest import TINY, last_line, run_script


def _npz_without_x_train(tmp_path):
    np.savez(tmp_path / "no_x.npz", x_test=np.zeros((4, 8, 8), np.uint8))
    return tmp_path / "no_x.npz"


def _npz_with_flat_images(tmp_path):
    np.savez(tmp_path / "flat.npz", x_train=np.zeros(64, np.uint8), x_test=np.zeros(64, np.uint8))
    return tmp_path / "flat.npz"


def _npz_with_nan(tmp_path):
    x = np.full((8, 8, 8), 0.5, "float32")
    x[0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=x, x_test=x)
    return tmp_path / "nan.npz"


def _not_hdf5(tmp_path):
    (tmp_path / "notes.h5").write_text("hello")
    return tmp_path / "notes.h5"


# (script, arguments (callables get tmp_path), words the error line must contain)
CASES = [
    ("train_vae.py", ["--epochs", "0"], "--epochs: must be a positive integer"),
    ("train_vae.py", ["--batch-size", "0"], "--batch-size: must be a positive integer"),
    ("train_vae.py", ["--lr", "-1"], "--lr: must be a positive number"),
    ("train_vae.py", ["--dropout", "1.5"], "--dropout: must be a rate in [0, 1)"),
    ("train_vae.py", ["--z-dim", "0"], "--z-dim: must be a positive integer"),
    ("train_vae.py", ["--act", "foo"], "invalid choice: 'foo'"),
    ("train_vae.py", ["--where", "middle"], "invalid choice: 'middle'"),
    ("train_vae.py", ["--norm-pos", "sideways"], "invalid choice: 'sideways'"),
    ("train_vae.py", ["--preset", "nope"], "invalid choice: 'nope'"),
    ("train_vae.py", ["--dataset", "missing.npz"], "missing.npz does not exist"),
    ("train_vae.py", ["--dataset", _npz_without_x_train], "has no x_train"),
    ("train_vae.py", ["--dataset", _npz_with_flat_images], "images must be N x H x W"),
    ("train_vae.py", ["--resume", "."], "not a run folder"),
    ("train_vae.py", ["--preset", "sae_l1"], "is a sae, not a VAE; train it with train.py"),
    ("train.py", ["--family", "dae"], "a denoising autoencoder needs input noise"),
    ("train.py", ["--family", "sae"], "a sparse autoencoder needs a penalty"),
    ("train.py", ["--family", "dae", "--noise", "salt:0.1"], "noise must be none, gaussian:SIGMA"),
    ("train.py", ["--family", "sae", "--sparsity", "kl:2:1", "--code-activation", "sigmoid"], "sparsity must be none"),
    ("train.py", ["--family", "sae", "--sparsity", "kl:0.05:1"], "set code_activation to sigmoid"),
    ("train.py", ["--noise", "gaussian:0.3"], "noise: not a setting of a conv vae"),
    ("train.py", ["--family", "ae", "--beta", "2"], "beta: not a setting of a conv ae"),
    ("train.py", ["--warmup", "3/2"], "--warmup: must be epochs >= 0 or a fraction in [0, 1]"),
    ("train.py", ["--arch", "dense", "--encoder-widths", "0,4"], "--encoder-widths: must be comma-separated"),
    ("train.py", ["--binarize", "sometimes"], "invalid choice: 'sometimes'"),
    ("train.py", ["--dataset", "weights.pkl"], "pickle"),
    ("train.py", ["--dataset", _npz_with_nan], "NaN or infinite"),
    ("generate.py", ["missing/decoder.h5"], "does not exist"),
    ("generate.py", [_not_hdf5], "is not an HDF5 model file"),
    ("generate.py", ["ENCODER"], "is not a decoder"),
    ("evaluate.py", ["."], "not a run folder"),
]


@pytest.mark.parametrize("script,args,words", CASES, ids=[f"{s}:{' '.join(map(str, a))[:30]}" for s, a, _ in CASES])
def test_bad_input_is_one_clear_line(script, args, words, tmp_path, trained_run):
    args = [trained_run / "models" / "encoder.h5" if a == "ENCODER" else a(tmp_path) if callable(a) else a
            for a in args]
    root = tmp_path / "runs"
    extra = []  # keep any run a bad input wrongly started short, and inside tmp_path
    if script in ("train.py", "train_vae.py") and "--resume" not in args:
        extra = ["--run-root", root] + ([] if "--epochs" in args else ["--epochs", "1"])
    elif script == "generate.py":
        extra = ["--out", tmp_path / "o.png"]
    result = run_script(script, *args, *extra)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert words in last_line(result.stderr), result.stderr[-1500:]
    assert not root.exists() or not any(root.iterdir())
    assert not (tmp_path / "o.png").exists()


def test_resume_refuses_other_flags(trained_run):
    result = run_script("train_vae.py", "--resume", trained_run, "--lr", "0.1")
    assert result.returncode != 0 and "drop --lr" in last_line(result.stderr)


@pytest.mark.parametrize("env,words", [
    ({"VAE_GELU_KERNEL": "fast"}, "VAE_GELU_KERNEL must be one of auto, op, xla; got 'fast'"),
    ({"VAE_GELU_KERNEL": "op", "CXX": "no-such-c++"}, "no C++ compiler 'no-such-c++' on PATH"),
], ids=["unknown kernel", "op without a compiler"])
def test_bad_gelu_kernel_setting_is_one_clear_line(env, words, tmp_path):
    root = tmp_path / "runs"
    result = run_script("train_vae.py", "--act", "gelu", "--epochs", "1", "--run-root", root, *TINY, env=env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert words in last_line(result.stderr), result.stderr[-1500:]
    assert not root.exists() or not any(root.iterdir())
