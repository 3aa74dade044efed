"""Nothing lost: kills and resumes, the best epoch's models at the end, non-finite losses, unwritable or full
disks, concurrent starts."""

import json
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pandas as pd
import pytest

import train
from conftest import REPO, TINY, last_line, numpy_of, run_main, run_script
from utils.startup import STARTUP_NOISE
from conftest import train as train_here
from scripts.kill_resume_soak import check_run
from utils.data.binarize import load_data
from utils.runs.loading import load_model
from utils.runs.settings import TrainSettings
from utils.training import callbacks as cb


def _start(*args):
    return subprocess.Popen([sys.executable, str(REPO / "train_vae.py"), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(proc, condition, timeout=180):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, "training ended before the moment to kill it"
        assert time.time() < deadline, "timed out waiting for the moment to kill"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _rows(path):
    try:
        return len(pd.read_csv(path))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


@pytest.mark.slow
def test_kill_after_an_epoch_then_resume_and_extend(tmp_path):
    proc = _start("--epochs", 4, "--seed", 5, "--run-root", tmp_path, *TINY)
    run_dir = tmp_path / "0001_fashion_mnist_lrelu"
    _kill_when(proc, lambda: (run_dir / "backup" / "training_metadata.json").is_file())
    result = run_script("train_vae.py", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming" in result.stdout and last_line(result.stdout) == str(run_dir)
    assert not [line for line in result.stderr.splitlines() if STARTUP_NOISE.search(line)]  # a quiet start
    params = check_run(run_dir, 4)
    assert params["resumes"][0]["from_epoch"] >= 1 and params["training"]["seed"] == 5
    assert "git_commit" in params["resumes"][0] and "tensorflow" in params["resumes"][0]["versions"]
    with h5py.File(run_dir / "backup" / "latest.weights.h5") as f:  # Adam's step count went on, not restarted
        steps = -(-params["n_train"] // 32)  # 300 images less the validation split, batch 32: 9 batches
        assert f["optimizer/vars/0"][()] == 4 * steps  # 4 epochs

    again = run_script("train_vae.py", "--resume", run_dir)
    assert again.returncode == 0 and "already finished" in again.stdout

    extended = run_script("train_vae.py", "--resume", run_dir, "--epochs", 5)
    assert extended.returncode == 0, extended.stderr[-2000:]
    params = check_run(run_dir, 5)
    assert params["resumes"][-1]["from_epoch"] == 4 and params["result"]["epochs"] == 5


@pytest.mark.slow
def test_kill_during_the_end_of_run_leaves_only_loadable_files(tmp_path):
    proc = _start("--epochs", 2, "--run-root", tmp_path, *TINY)
    run_dir = tmp_path / "0001_fashion_mnist_lrelu"
    _kill_when(proc, lambda: _rows(run_dir / "training.csv") == 2)  # figures and saving under way
    for path in run_dir.rglob("*"):  # what is there (old or new, never half) must load
        if path.is_file() and not path.name.startswith(".tmp-") and path.suffix in (".json", ".csv"):
            json.loads(path.read_text()) if path.suffix == ".json" else pd.read_csv(path)
    result = run_script("train_vae.py", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    check_run(run_dir, 2)


def test_best_weights_are_chosen_only_once_the_warm_up_is_over(tmp_path):
    """While beta warms up the KL weighs less, so early val_losses look best: before epoch `first` the latest
    weights are kept, from it on the best."""
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    keeper = cb.BestWeights(tmp_path, first=3)
    keeper.set_model(model)
    (tmp_path / "models").mkdir()
    keeper.on_train_begin()
    kept = []
    for epoch, val_loss in enumerate([1.0, 2.0, 3.0, 2.5, 2.8]):  # epochs 1..5; 1 and 2 in the warm-up
        model.layers[0].kernel.assign([[epoch + 1.0]])
        keeper.on_epoch_end(epoch, {"val_loss": val_loss})
        model.load_weights(tmp_path / "models" / "model.weights.h5")
        kept.append(float(model.layers[0].kernel.numpy()[0, 0]))
    assert kept == [1, 2, 3, 4, 4]


@pytest.mark.slow
def test_a_warm_up_run_records_where_its_best_epoch_may_start(tmp_path):
    run_dir = train_here("--preset", "conv_vae", "--epochs", 3, "--warmup-epochs", 2, "--seed", 0,
                         "--run-root", tmp_path, *TINY)
    params = json.loads((run_dir / "params.json").read_text())
    assert params["best_from_epoch"] == 3 and params["result"]["best_epoch"] == 3


@pytest.mark.parametrize("warmup", [{"warmup_epochs": 3}, {"warmup_fraction": 0.6}])
def test_beta_is_full_from_the_warm_ups_end_on_also_when_the_run_is_extended(warmup):
    """A warm-up of 3 epochs (given as such, or as 0.6 of a 5-epoch run, fixed when the run starts) raises beta
    over epochs 0, 1, 2 and keeps it full from epoch 3 on, also once the run is extended to 20 epochs (a fraction
    stretched over 20 epochs would put beta back at 5/12 of full in epoch 5)."""
    from models import build_model, model_config

    config = model_config("vae", "dense", encoder_widths=[8], decoder_widths=[8], beta=2.0, **warmup).for_run(5)
    model = build_model(config)
    betas = []
    for epoch in range(20):
        model.on_epoch_start(epoch, 5 if epoch < 5 else 20)
        betas.append(float(numpy_of(model.kl_beta)))
    np.testing.assert_allclose(betas, [0.0, 2 / 3, 4 / 3] + [2.0] * 17, rtol=1e-6)
    assert model.first_comparable_epoch(5) == model.first_comparable_epoch(20) == 4  # epoch 3 counted from 0
    old_folder = model_config("vae", "dense", warmup_fraction=0.6)  # recorded before for_run: stretches as it did
    assert old_folder.objective.warmup_length(20) == pytest.approx(12.0)


@pytest.mark.slow
def test_an_extended_run_keeps_the_warm_up_it_started_with(tmp_path):
    """Half of a 2-epoch run is 1 epoch of warm-up, recorded in params.json; extended to 5 epochs, beta stays full
    after it (stretched over the new length it would fall back to 0.8 in epoch 3). Beta of each epoch is read
    from the validation losses: val_loss = val_r_loss + beta * val_kl_loss."""
    tiny_vae = ["--family", "vae", "--arch", "dense", "--encoder-widths", 8, "--decoder-widths", 8, "--loss", "bce",
                "--seed", 0, "--run-root", tmp_path, *TINY]
    run_dir = train_here(*tiny_vae, "--warmup-fraction", "1/2", "--epochs", 2)
    assert train_here("--resume", run_dir, "--epochs", 5) == run_dir
    params = json.loads((run_dir / "params.json").read_text())
    assert params["model"]["objective"]["warmup_fraction_epochs"] == 1.0 and params["best_from_epoch"] == 2
    history = pd.read_csv(run_dir / "training.csv")
    beta = (history["val_loss"] - history["val_r_loss"]) / history["val_kl_loss"]
    np.testing.assert_allclose(beta, [0, 1, 1, 1, 1], atol=1e-4)


def test_the_finished_run_holds_its_best_epochs_models(tmp_path):
    """Models are exported once, at the end, from the best epoch's weights (not the last epoch's)."""
    run_dir = train_here("--preset", "conv_ae", "--epochs", 4, "--lr", 0.02, "--seed", 2, "--run-root", tmp_path,
                         *TINY)
    history = pd.read_csv(run_dir / "training.csv")
    best = history.loc[history["val_loss"].idxmin()]
    assert best["epoch"] < 4, "the last epoch was the best: pick another seed so the test can fail"
    model = load_model(run_dir)
    model.compile(optimizer="adam")
    data = load_data(TrainSettings(**json.loads((run_dir / "params.json").read_text())["training"]))
    val_loss = model.evaluate(data.x_val, batch_size=256, verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(best["val_loss"], rel=1e-5)  # an AE's validation is deterministic
    test_loss = model.evaluate(data.x_test, batch_size=256, verbose=0, return_dict=True)["loss"]
    assert test_loss != pytest.approx(val_loss, rel=1e-3)  # validated on the split, not on the test images
    import keras

    decoder = keras.models.load_model(run_dir / "models" / "decoder.h5", compile=False)
    codes = model.latent_means(data.x_test[:8])
    np.testing.assert_allclose(numpy_of(decoder(codes)), model.decode(codes), atol=1e-5)


def test_non_finite_loss_stops_with_epoch_and_batch(tmp_path):
    code, _, err = run_main(train.main, "--lr", 10, "--epochs", 3, "--run-root", tmp_path, *TINY)
    assert code == 1 and len(err.strip().splitlines()) == 1
    line = last_line(err)
    assert "non-finite loss at epoch" in line and "batch" in line
    run_dir = next(tmp_path.glob("0001_*"))
    status = json.loads((run_dir / "params.json").read_text())["status"]
    assert status.startswith("failed: non-finite loss at epoch ")
    if (run_dir / "training.csv").is_file():  # any epoch that was logged was a good one
        assert pd.read_csv(run_dir / "training.csv")["loss"].notna().all()


def test_unwritable_run_root(tmp_path):
    (tmp_path / "a_file").write_text("")
    code, _, err = run_main(train.main, "--epochs", 1, "--run-root", tmp_path / "a_file" / "runs", *TINY)
    assert code == 1 and "cannot create a run folder" in last_line(err)


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", str(mount)])


@pytest.mark.slow
def test_disk_full_while_saving(tiny_disk):
    """In a real process: what the user sees (the failed file's h5py handle is freed quietly, not at exit with
    two tracebacks after the error line)."""
    result = run_script("train_vae.py", "--epochs", 2, "--run-root", tiny_disk / "runs", *TINY)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "No space left on device" in last_line(result.stderr) and "--resume" in last_line(result.stderr)
    run_dir = next((tiny_disk / "runs").glob("0001_*"))
    assert json.loads((run_dir / "params.json").read_text())["status"].startswith("failed: cannot write")
    assert not list(run_dir.rglob(".tmp-*"))
    assert not (run_dir / "models" / "encoder.h5").exists() or (run_dir / "models" / "decoder.h5").exists()


CLAIM = """
import sys, time
from utils.runs.layout import create_run_dir
while time.time() < float(sys.argv[3]):
    pass
print(create_run_dir(sys.argv[2], f"data_variant{sys.argv[4]}").name)
"""


def test_processes_started_together_get_different_folders(tmp_path):
    start = time.time() + 2
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, str(REPO), str(tmp_path), str(start), str(i)],
                              stdout=subprocess.PIPE, text=True, cwd=REPO) for i in range(6)]
    names = [p.communicate(timeout=60)[0].strip() for p in procs]
    numbers = sorted(name.split("_")[0] for name in names)
    assert numbers == [f"{i:04d}" for i in range(1, 7)], names
