"""Shared test helpers: small real data, real runs trained in this process (the backend starts once), and a
runner for the tests whose point is a fresh process (loading a saved model, a kill, the suite's workers)."""

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from utils import startup

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the tests are CPU-sized
# One thread per pytest worker (two run side by side, pyproject.toml): two workers of two threads each on two
# cores spent their time waiting on each other. Processes a test starts inherit it, as a suite's slots have it.
for _threads in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")
startup.start()  # as every command starts (the XLA vector width, a quiet start), before Keras loads

import keras  # noqa: E402

# Small, real data: the first few hundred Fashion-MNIST images from Debian's package.
TINY = ["--dataset", "fashion_mnist", "--limit", "300"]
# A real suite of 2 variants x 2 seeds x 1 epoch, for run_experiments.py, scored with 20 importance samples (the
# default 100, with its K check of 400 draws, made the suite's scoring the test run's longest path)
SUITE = ["--suite", "activations", "--variants", "base_lrelu,gelu_full", "--seeds", "2", "--epochs", "1", *TINY,
         "--eval-samples", "20"]


def run_script(script, *args, timeout=300, env=None, cwd=None):
    """Run one of the repo's scripts in a fresh Python process; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or REPO, env={**os.environ, **(env or {})})


def run_main(main, *args):
    """Call a command's `main(argv)` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args]) or 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def train(*args):
    """Train (or resume) with train.py's `main` in this process; returns the run folder (its last line)."""
    import train as train_command

    code, out, err = run_main(train_command.main, *args)
    assert code == 0, err[-3000:]
    return Path(last_line(out))


def numpy_of(tensor):
    """A backend tensor (or variable, or array) as NumPy, on every backend (PyTorch's need detaching)."""
    return keras.ops.convert_to_numpy(tensor)


def params(run_dir):
    """A run folder's params.json."""
    return json.loads((Path(run_dir) / "params.json").read_text())


def run_dirs(runs_dir):
    """{(variant, seed): run folder} of a pool (or an earlier layout's `<suite>/runs`)."""
    return {(params(d)["variant"], params(d)["training"]["seed"]): d for d in Path(runs_dir).glob("*/")
            if (d / "params.json").is_file()}


def last_line(text):
    """The last non-empty line of `text`."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(autouse=True, scope="session")
def feature_networks(tmp_path_factory):
    """Feature networks trained by the tests go to a folder of the session (inherited by the processes they
    start), not into the repository's run/."""
    folder = tmp_path_factory.mktemp("feature_nets")
    os.environ["VAE_FEATURE_NETS"] = str(folder)
    return folder


@pytest.fixture(autouse=True)
def float32_policy():
    """Each test starts in float32, whatever a mixed-precision run before it set."""
    keras.config.set_dtype_policy("float32")
    yield


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One short real run (2 epochs of the Full-GELU VAE on 300 Fashion-MNIST images), shared by the read-only
    tests."""
    return train("--act", "gelu", "--where", "both", "--epochs", 2, "--seed", 1,
                 "--run-root", tmp_path_factory.mktemp("runs"), *TINY)


@pytest.fixture(scope="session")
def local_suite(tmp_path_factory):
    """(suite folder, stdout) of SUITE trained by the local backend, two at a time; its pool of four
    runs is beside it. Read-only: tests that change it work on a copy. The Ray tests compare with it."""
    out = tmp_path_factory.mktemp("suite") / "activations"
    done = run_script("run_experiments.py", *SUITE, "--out", out, "--jobs", "2", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


SHARED_BY_ONE_WORKER = {"local_suite", "cluster"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`-n 2 --dist loadgroup`, pyproject.toml), the tests of the real suite and of the Ray
    cluster run on one worker, so that each session fixture they share is made once."""
    for item in items:
        if SHARED_BY_ONE_WORKER & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("suite"))


def fake_run(runs_dir, number, variant, seed, status="finished", epochs=1, dataset="fashion_mnist", limit=300):
    """A run folder with params.json, training.csv and sound HDF5 files in place of its weights and models (no
    real model): what suites plan and summarise from, and what utils/runs/health.py checks."""
    run_dir = Path(runs_dir) / f"{number:04d}_{dataset}_{variant}"
    run_dir.mkdir(parents=True)
    (run_dir / "params.json").write_text(json.dumps({
        "variant": variant, "status": status, "n_train": limit, "n_test": 100,
        "training": {"dataset": dataset, "epochs": epochs, "seed": seed, "limit": limit, "val_fraction": 0.1},
        "validation": {"source": "training images", "fraction": 0.1},
        "result": {"epochs": epochs, "final_val_loss": 50.0}}))
    losses = {"loss": 60.0, "r_loss": 55.0, "kl_loss": 5.0, "val_loss": 50.0 + seed, "val_r_loss": 45.0,
              "val_kl_loss": 5.0}
    pd.DataFrame([{"epoch": e + 1, **losses, "lr": 5e-4, "train_seconds": 1.0} for e in range(epochs)]).to_csv(
        run_dir / "training.csv", index=False)
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": epochs, "batch": 0}))
    for name in ("backup/latest.weights.h5", "models/model.weights.h5", "models/encoder.h5", "models/decoder.h5"):
        (run_dir / name).parent.mkdir(exist_ok=True)
        with h5py.File(run_dir / name, "w") as f:
            f["vars/0"] = np.zeros(3, "float32")
            f.attrs["epoch"] = epochs
    return run_dir


def preset_as_recorded(preset, model, epochs):
    """The preset's config as a run of it that started with `epochs` records it (28x28x1 images; a warm-up's
    fraction fixed in epochs; an `auto` feature network becomes the file the run used, which must exist)."""
    from models.presets import preset_config

    expected = preset_config(preset).for_images((28, 28, 1)).for_run(epochs)
    if getattr(expected.objective, "feature_network", None) == "auto":
        used = model.config.objective.feature_network
        assert Path(used).is_file(), used
        expected = replace(expected, objective=replace(expected.objective, feature_network=used))
    return expected


def kill_after_first_epoch(preset, run_root, folder, *args):
    """Start `train.py --preset preset --epochs 3` in a process, SIGKILL it once its first epoch's backup is
    written, and return the run folder (`run_root / folder`)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--preset", preset, "--epochs", "3",
                             "--seed", "0", "--run-root", str(run_root), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backup = Path(run_root) / folder / "backup" / "training_metadata.json"
    deadline = time.time() + 300
    while not backup.is_file():
        assert proc.poll() is None and time.time() < deadline, "no epoch finished before the kill"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return backup.parent.parent
