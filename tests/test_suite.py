"""run_experiments.py and utils/experiments/: statistics against hand-computed numbers, planning on fake run
folders, the pool shared by suites, and a real 2 variants x 2 seeds x 1 epoch suite on Fashion-MNIST (bad
input is in test_flags.py)."""

import json
import math
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import run_experiments
from conftest import SUITE, fake_run, params, run_dirs, run_main
from utils.analysis.stats import estimate, paired_difference, t975
from utils.errors import UserError
from utils.experiments.local import LocalBackend, slot_environments, train_command, visible_gpus
from utils.experiments.locks import RunLocks
from utils.experiments.suites import SUITES
from utils.experiments.report import summary_markdown
from utils.experiments.runner import run_suite
from utils.experiments.scoring import scores
from utils.experiments.suite import PASSED_ON, SuiteFolders, SuiteRequest, plan, plan_locked


# ---- statistics -------------------------------------------------------------------------------

@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042),
                                          (31, 2.040), (60, 2.000), (120, 1.980), (10**6, 1.960)])
def test_t975_matches_printed_tables(df, expected):
    assert t975(df) == pytest.approx(expected, abs=6e-4)


def test_estimate_mean_sd_and_t_interval():
    est = estimate([1, 2, 3, 4, 5])
    # sd = sqrt(10 / 4); half-width = t(0.975, 4) * sd / sqrt(5) = 2.776445 * 0.707107 = 1.963243
    assert (est.n, est.mean, est.sd) == (5, 3.0, pytest.approx(1.581139, abs=1e-6))
    assert (est.low, est.high) == (pytest.approx(3 - 1.963243, abs=1e-5), pytest.approx(3 + 1.963243, abs=1e-5))
    assert est.has_ci and est.excludes_zero


def test_estimate_with_one_or_no_value_has_no_interval():
    one, none = estimate([7.5]), estimate([float("nan")])
    assert one.n == 1 and one.mean == 7.5 and math.isnan(one.sd) and not one.has_ci and not one.excludes_zero
    assert none.n == 0 and math.isnan(none.mean)


def test_paired_difference_uses_common_seeds_only():
    ref = {0: 9.0, 1: 10.0, 2: 10.0, 3: 0.0}  # seed 3 has no partner and must be ignored
    wide = paired_difference({0: 10.0, 1: 12.0, 2: 11.0}, ref)  # differences 1, 2, 1
    assert wide.n == 3 and wide.mean == pytest.approx(4 / 3)
    assert wide.high - wide.mean == pytest.approx(4.302653 * 0.577350 / math.sqrt(3), abs=1e-5)
    assert not wide.excludes_zero  # [-0.10, 2.77]
    narrow = paired_difference({0: 10.0, 1: 11.1, 2: 10.9}, ref)  # 1.0, 1.1, 0.9: sd 0.1
    assert narrow.excludes_zero and narrow.low == pytest.approx(1 - 4.302653 * 0.1 / math.sqrt(3), abs=1e-5)


# ---- planning and devices, on fake run folders ----------------------------------------------------

def request(**changes):
    """The activations suite (gelu_full, base_lrelu; 2 seeds, 1 epoch on 300 images), with `changes` to it or to
    the training settings it passes on."""
    training = {"epochs": 1, "dataset": "fashion_mnist", "limit": 300}
    training.update({k: changes.pop(k) for k in list(changes) if k in PASSED_ON})
    return SuiteRequest(**{"suite": "activations", "seeds": 2, "variants": ("gelu_full", "base_lrelu"), **changes},
                        training=training)


def folders(tmp_path):
    return SuiteFolders(tmp_path / "activations", tmp_path / "pool")


def test_request_keeps_suite_order_and_picks_reference():
    assert request().variants == ("base_lrelu", "gelu_full") and request().reference == "base_lrelu"
    bn = SuiteRequest("batchnorm", 1)
    assert bn.reference == "gelu_full"  # base_lrelu is not in it: the first variant
    where = request(root="x").folders()
    assert where.suite == Path("x/activations_fashion_mnist_limit300_val").absolute()
    assert where.pool == Path("x/pool_fashion_mnist_limit300_val").absolute()
    assert SuiteRequest("dropout", 1, {"dataset": "fashion_mnist"}).folders().suite.name == "dropout_fashion_mnist_val"
    assert SuiteRequest("dropout", 1, out="y/mine", pool="z").folders() == SuiteFolders("y/mine", "z")


def test_plan_skips_resumes_extends_and_starts(tmp_path):
    where = folders(tmp_path)
    fake_run(where.pool, 1, "base_lrelu", 0)
    fake_run(where.pool, 2, "base_lrelu", 1, status="running")
    fake_run(where.suite / "runs", 3, "gelu_full", 0, status="failed: interrupted")  # the earlier layout
    fake_run(where.pool, 4, "gelu_full", 5)  # a seed outside the request is left alone
    actions = {(j.variant, j.seed): j.action for j in plan(request(), where)}
    assert actions == {("base_lrelu", 0): "skip", ("base_lrelu", 1): "resume",
                       ("gelu_full", 0): "resume", ("gelu_full", 1): "new"}
    assert plan(request(epochs=3), where)[0].action == "extend"


def test_after_suite_all_the_section_suites_train_nothing(tmp_path):
    pool = tmp_path / POOL  # as `--suite all --seeds 2 --epochs 1 --limit 300` leaves it
    for number, (variant, seed) in enumerate(SuiteRequest("all", 2).keys(), 1):
        fake_run(pool, number, variant, seed)
    for name in ("activations", "dropout", "batchnorm", "layernorm"):
        lines = []
        result = run_suite(SuiteRequest(name, 2, {"epochs": 1, "dataset": "fashion_mnist", "limit": 300,
                                                  "eval_samples": 0}, root=str(tmp_path)),
                           log=lines.append)  # fake runs have no models to score
        assert result.ok and result.suite_dir == tmp_path / f"{name}_fashion_mnist_limit300_val"
        assert "0 to resume, 0 to extend to 1 epoch, 0 new;" in lines[1]
        assert len(result.summary) == 2 * len(SuiteRequest(name, 2).variants)
        assert all((result.suite_dir / f).is_file() for f in ("summary.md", "losses.png", "total_loss.png"))
    assert len(run_dirs(pool)) == 18


def test_runs_being_trained_by_another_suite_are_refused_and_finished_ones_shared(tmp_path):
    where = folders(tmp_path)
    fake_run(where.pool, 1, "base_lrelu", 0)
    with RunLocks(where.pool) as other:
        other.take([("base_lrelu", 1)])  # another suite (here: this process) is training it
        with RunLocks(where.pool) as mine:
            with pytest.raises(UserError, match="another run_experiments.py is training base_lrelu seed 1"):
                plan_locked(request(variants=("base_lrelu",)), where, mine)
            todo = plan_locked(request(variants=("gelu_full",)), where, mine)  # other runs: no conflict
            assert [j.action for j in todo] == ["new", "new"] and ("gelu_full", 1) in mine
            assert ("base_lrelu", 0) not in mine  # finished: read by both, locked by neither


@pytest.mark.parametrize("run_settings, words", [
    ({"epochs": 5}, "set to 5 epochs, more than --epochs 1"),
    ({"limit": 600}, "with --limit 600, not fashion_mnist with --limit 300"),
    ({"dataset": "mnist"}, "trained on mnist"),
])
def test_plan_refuses_runs_made_with_other_settings(tmp_path, run_settings, words):
    fake_run(folders(tmp_path).pool, 1, "base_lrelu", 0, **run_settings)
    with pytest.raises(UserError, match=words):
        plan(request(), folders(tmp_path))


def test_train_command_is_decided_when_the_job_starts(tmp_path):
    where = folders(tmp_path)
    job = plan(request(), where)[0]
    assert job.action == "new" and train_command(job, request(), where)[2:] == [
        "--preset", "base_lrelu", "--seed", "0", "--run-root", str(where.pool), "--dataset", "fashion_mnist",
        "--epochs", "1", "--limit", "300", "--eval-samples", "100"]
    # A run folder made after planning (by an attempt on a node that was then lost) is resumed.
    run_dir = fake_run(where.pool, 7, "base_lrelu", 0, status="running")
    assert train_command(job, request(epochs=4, eval_samples=0), where)[2:] == [
        "--resume", str(run_dir), "--epochs", "4", "--eval-samples", "0"]


def test_a_step_budget_becomes_the_fewest_epochs_that_make_it(tmp_path, monkeypatch):
    # 270 fitted images in batches of 32: 9 steps an epoch, so 100 steps take 12 epochs (108 steps) and 99 take 11
    assert request(steps=100).with_step_budget(270).settings.epochs == 12
    assert request(steps=99, epochs=50).with_step_budget(270).settings.epochs == 11
    assert request(epochs=5).with_step_budget(270).settings.epochs == 5  # no budget: --epochs as given
    budget, where = request(steps=100).with_step_budget(270), folders(tmp_path)
    command = train_command(plan(budget, where)[0], budget, where)
    assert command[command.index("--epochs"):][:4] == ["--epochs", "12", "--steps", "100"]
    monkeypatch.setitem(SUITES, "mixed_batches", ["base_lrelu", "lvae_mnist"])  # batch 32 beside 256
    with pytest.raises(UserError, match=r"--steps needs one batch size.*\[32, 256\]"):
        SuiteRequest(suite="mixed_batches", training={"steps": 100}).with_step_budget(270)


def test_mixed_precision_runs_get_their_own_folder_and_flag(tmp_path):
    mixed, where = request(mixed_precision=True), folders(tmp_path)
    assert request(mixed_precision=True, root="x").folders().suite.name == "activations_fashion_mnist_limit300_val_mixed"
    assert request(mixed_precision=True, root="x").folders().pool.name == "pool_fashion_mnist_limit300_val_mixed"
    assert "--mixed-precision" in train_command(plan(mixed, where)[0], mixed, where)
    fake_run(where.pool, 1, "base_lrelu", 0)  # a float32 run in the pool: not mixed with bfloat16 ones
    with pytest.raises(UserError, match="trained without --mixed-precision"):
        plan(mixed, where)


def test_one_gpu_per_job_and_cpu_threads_shared(monkeypatch):
    envs = slot_environments(3, gpus=["0", "1"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    # two jobs share GPU 0: each takes the memory it uses, on TensorFlow and on JAX
    assert all(e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and e["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for e in envs)
    packed = LocalBackend(4, environments=slot_environments(4, gpus=["0"]))  # four trainings on one GPU
    assert {e["CUDA_VISIBLE_DEVICES"] for e in packed.environments} == {"0"}
    assert {e["TF_FORCE_GPU_ALLOW_GROWTH"] for e in packed.environments} == {"true"}
    assert packed.describe() == "4 at a time on GPU 0 (several to a GPU, memory growth on)"
    assert slot_environments(2, gpus=["0", "1"]) == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    assert {e["TF_NUM_INTRAOP_THREADS"] for e in slot_environments(2, gpus=[], cpus=2)} == {"1"}
    assert slot_environments(1, gpus=[]) == [{}]
    for listed, gpus in (("2,3", ["2", "3"]), ("", []), ("-1", [])):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
        assert visible_gpus() == gpus


def test_summary_says_when_the_interval_is_undefined():
    req = SuiteRequest("batchnorm", 1, {"epochs": 2, "dataset": "fashion_mnist"})
    frame = pd.DataFrame([{"variant": v, "seed": 0, "status": "finished", "best_val_loss": x,
                           "best_val_r_loss": x - 5, "best_val_kl_loss": 5.0}
                          for v, x in zip(req.variants, (60.0, 59.0, 61.0))])
    text = summary_markdown(frame, req)
    assert "undefined (1 seed)" in text and "first variant" in text and "one seed" in text
    assert "gelu_full_bn_after: best-epoch val_loss 1 (1.7%) lower than gelu_full in the single pair" in text


# ---- bad input (the rest is in test_flags.py) --------------------------------------------------------

def test_ray_not_installed_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    code, _, err = run_main(run_experiments.main, "--suite", "activations", "--backend", "ray",
                            "--out", tmp_path / "suite")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "Ray, which is not installed: pip install -r requirements-extras.txt" in err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = run_main(run_experiments.main, *SUITE, "--out", blocker / "suite")
    assert code == 1 and "is a file" in err and list(tmp_path.iterdir()) == [blocker]


# ---- a real suite: 2 variants x 2 seeds x 1 epoch on 300 images, two at a time -----------------------

POOL = "pool_fashion_mnist_limit300_val"


def run_cli(out, *extra):
    """run_experiments.py's main in this process (its trainings are processes of their own, as always)."""
    code, stdout, stderr = run_main(run_experiments.main, *SUITE, "--out", out, *extra)
    return SimpleNamespace(returncode=code, stdout=stdout, stderr=stderr)


@pytest.fixture
def suite(local_suite):
    return local_suite



def copy_of(suite_dir, tmp_path):
    """A copy of the suite folder and its pool; returns the copied suite folder."""
    shutil.copytree(suite_dir.parent, tmp_path / "copy")
    return tmp_path / "copy" / suite_dir.name


@pytest.mark.slow
def test_suite_writes_runs_logs_summary_and_figures(suite):
    out, stdout = suite
    found = run_dirs(out.parent / POOL)
    assert set(found) == {(v, s) for v in ("base_lrelu", "gelu_full") for s in (0, 1)}
    assert {params(d)["status"] for d in found.values()} == {"finished"}
    assert stdout.count("-> finished in") == 4 and "val_loss" in stdout
    assert sorted(p.name for p in (out / "logs").iterdir()) == [
        "base_lrelu_seed0.log", "base_lrelu_seed1.log", "gelu_full_seed0.log", "gelu_full_seed1.log"]
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"finished"} and (summary["epochs"] == 1).all()
    assert all(d.startswith(f"../{POOL}/") for d in summary["run_dir"])
    assert summary[["final_val_loss", "best_val_loss", "final_val_r_loss", "final_val_kl_loss",
                    "final_loss"]].notna().all().all()
    scored = summary[["test_pixel_mse", "test_nll", "test_elbo", "active_units", "test_kl_dim0", "test_kl_dim1"]]
    assert scored.notna().all().all() and (summary["test_nll"] > 0).all()
    np.testing.assert_allclose(summary["test_nll"], -summary["test_elbo"], rtol=0.2)  # NLL <= -ELBO, close
    assert (summary["test_nll"] <= -summary["test_elbo"] + 1e-3).all()
    assert all(scores(d, 20) for d in found.values())  # each run scored itself when it ended,
    assert "scored" not in stdout  # so the suite had none left to score
    text = (out / "summary.md").read_text()
    assert "## Paired differences against base_lrelu" in text and "| gelu_full | test_nll | 2 |" in text
    assert text.count("| gelu_full | val_") == 3 and "t(0.975, 1) = 12.7" in text
    for figure in ("losses.png", "total_loss.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_rerun_skips_every_finished_run(suite):
    out, _ = suite
    stamps = {p: p.stat().st_mtime_ns for p in (out.parent / POOL).rglob("*") if p.is_file()}
    again = run_cli(out)
    assert again.returncode == 0 and again.stdout.count(": skipped (") == 4 and "4 finished (skipped)" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in (out.parent / POOL).rglob("*") if p.is_file()} == stamps


@pytest.mark.slow
def test_other_suites_reuse_the_pool_and_write_their_own_summary(suite, tmp_path):
    out = copy_of(suite[0], tmp_path)
    for name, variants in (("all", "base_lrelu,gelu_full"), ("dropout", "base_lrelu,gelu_full"),
                           ("batchnorm", "gelu_full"), ("layernorm", "gelu_full")):
        other = out.parent / name
        done = run_cli(other, "--suite", name, "--variants", variants)
        assert done.returncode == 0 and "0 to resume, 0 to extend to 1 epoch, 0 new;" in done.stdout, done.stdout
        assert "-> finished" not in done.stdout and (other / "summary.md").is_file() and (other / "losses.png").is_file()
    assert len(run_dirs(out.parent / POOL)) == 4


@pytest.mark.slow
def test_runs_in_the_earlier_layout_are_still_found(suite, tmp_path):
    out = copy_of(suite[0], tmp_path)
    (out.parent / POOL).rename(out / "runs")  # the suite folder as run_experiments.py used to leave it
    again = run_cli(out)
    assert again.returncode == 0 and "4 finished (skipped)" in again.stdout, again.stdout + again.stderr
    assert set(pd.read_csv(out / "summary.csv")["status"]) == {"finished"}


@pytest.mark.slow
def test_unfinished_run_resumed_and_failed_run_reported(suite, tmp_path):
    out = copy_of(suite[0], tmp_path)
    pool = out.parent / POOL
    killed, broken = run_dirs(pool)[("base_lrelu", 0)], run_dirs(pool)[("gelu_full", 1)]
    for run_dir in (killed, broken):  # as a kill leaves them: status running
        (run_dir / "params.json").write_text(json.dumps({**params(run_dir), "status": "running"}))
    for run_dir in (killed, broken):  # killed before their first epoch ended
        shutil.rmtree(run_dir / "backup")
        shutil.rmtree(run_dir / "models")
        (run_dir / "training.csv").unlink()
    recorded = params(broken)  # and a learning rate that makes this one's loss diverge when it is resumed
    (broken / "params.json").write_text(json.dumps({**recorded, "training": {**recorded["training"], "lr": 1e30}}))

    again = run_cli(out, "--jobs", "2")
    assert again.returncode == 1, again.stdout + again.stderr
    assert again.stdout.count(": skipped (") == 2 and "base_lrelu seed 0: resume -> finished" in again.stdout, again.stdout
    assert "gelu_full seed 1: FAILED (resume, exit 1)" in again.stdout
    assert params(killed)["status"] == "finished" and params(killed)["resumes"][-1]["from_epoch"] == 0
    assert params(broken)["status"].startswith("failed")
    summary = pd.read_csv(out / "summary.csv").set_index(["variant", "seed"])
    assert summary.loc[("gelu_full", 1), "status"].startswith("failed")
    assert math.isnan(summary.loc[("gelu_full", 1), "final_val_loss"])
    assert "Runs: 3 of 4 finished." in (out / "summary.md").read_text()


@pytest.mark.slow
def test_more_epochs_extend_runs_and_fewer_are_refused(suite, tmp_path):
    out = copy_of(suite[0], tmp_path)
    longer = run_cli(out, "--variants", "gelu_full", "--seeds", "1", "--epochs", "2")
    assert longer.returncode == 0 and "gelu_full seed 0: extend -> finished" in longer.stdout
    assert list(pd.read_csv(run_dirs(out.parent / POOL)[("gelu_full", 0)] / "training.csv")["epoch"]) == [1, 2]
    shorter = run_cli(out)
    assert shorter.returncode == 1 and "more than --epochs 1" in shorter.stderr
