"""The model contract carries a new family: one defined in a file of its own outside the project
(tests/families/learned_prior_vae.py, a VAE with a learned prior scale), registered through
VAE_FAMILY_MODULES, trains, resumes, evaluates (ELBO and NLL), generates and runs in a suite through the
project's commands, with nothing in the project naming it; and one with a resource of its own
(tests/families/projected_vae.py, a frozen principal-component network it computes from the data), which it
resolves through the contract (`with_resources`)."""

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evaluate
import generate
import run_experiments
from conftest import REPO, TINY, numpy_of, run_main, train

FAMILIES = REPO / "tests" / "families"


@pytest.fixture
def plugin(monkeypatch):
    """The family's module on the path and in VAE_FAMILY_MODULES, for this process and the ones it starts."""
    monkeypatch.syspath_prepend(str(FAMILIES))
    monkeypatch.setenv("PYTHONPATH", f"{FAMILIES}:{REPO}")
    monkeypatch.setenv("VAE_FAMILY_MODULES", "learned_prior_vae,projected_vae")


def test_no_code_of_the_project_names_the_family():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    code = [f for f in tracked if f.endswith((".py", ".ipynb", ".toml", ".txt")) and not f.startswith("tests/")
            and (REPO / f).is_file()]  # tracked, not deleted in the work tree
    assert code and [f for f in code if any(name in (REPO / f).read_text(errors="ignore")
                                            for name in ("learned_prior", "projected_vae", "ProjectedVAE"))] == []


def test_its_prior_terms_match_the_closed_forms(plugin):
    from learned_prior_vae import LearnedPriorVAE

    from models import model_config

    model = LearnedPriorVAE(model_config("learned_prior_vae", z_dim=2))
    model.prior_log_scale.assign([0.5, -0.2])
    s = np.exp([0.5, -0.2])
    mean, log_var = np.array([[0.3, -1.0]], "float32"), np.array([[-0.4, 0.1]], "float32")
    var = np.exp(log_var)
    kl = np.sum(np.log(s) - 0.5 * log_var + (var + mean**2) / (2 * s**2) - 0.5)
    np.testing.assert_allclose(numpy_of(model.prior_kl(mean, log_var)), [kl], rtol=1e-5)
    z = np.array([[0.7, 0.2]], "float32")
    log_p = np.sum(-0.5 * math.log(2 * math.pi) - np.log(s) - 0.5 * (z / s) ** 2)
    np.testing.assert_allclose(numpy_of(model.log_prior(z)), [log_p], rtol=1e-5)


@pytest.mark.slow
def test_it_trains_resumes_evaluates_generates_and_runs_in_a_suite(plugin, tmp_path):
    run_dir = train("--family", "learned_prior_vae", "--epochs", 1, "--seed", 0, "--run-root", tmp_path / "runs",
                    *TINY)
    assert train("--resume", run_dir, "--epochs", 2) == run_dir
    params = json.loads((run_dir / "params.json").read_text())
    assert params["model"]["family"] == "learned_prior_vae" and params["model"]["family_module"] == "learned_prior_vae"
    assert list(pd.read_csv(run_dir / "training.csv")["epoch"]) == [1, 2]
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 8, "--limit", 60)
    assert code == 0, err
    entry = json.loads((run_dir / "eval.json").read_text())["k8_n60"]
    assert entry["nll"] > 0 and entry["log_likelihood"] >= entry["elbo"] and entry["active_units"] >= 0
    code, out, err = run_main(generate.main, run_dir, "--n", 4, "--out", tmp_path / "g.png", "--seed", 0)
    assert code == 0 and "the learned prior" in out, err
    code, out, err = run_main(run_experiments.main, "--suite", "learned_prior", "--seeds", 1, "--epochs", 1,
                              "--eval-samples", 8, "--jobs", 2, "--out", tmp_path / "suite", *TINY)
    assert code == 0, out + err
    summary = pd.read_csv(tmp_path / "suite" / "summary.csv")
    assert list(summary["variant"]) == ["conv_vae", "learned_prior_vae"] and summary["test_nll"].notna().all()


@pytest.mark.slow
def test_a_family_with_a_frozen_network_of_its_own_resolves_it_and_needs_it_no_more(plugin, tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_FEATURE_NETS", str(tmp_path / "cache"))  # the cache the house offers families
    run_dir = train("--family", "projected_vae", "--projection-dims", 4, "--epochs", 1, "--seed", 0,
                    "--run-root", tmp_path / "runs", *TINY)
    recorded = json.loads((run_dir / "params.json").read_text())["model"]["objective"]
    components = Path(recorded["projection"])
    assert components.parent == tmp_path / "cache" and np.load(components).shape == (784, 4)
    assert "projection_loss" in pd.read_csv(run_dir / "training.csv")
    frozen = np.load(components)
    components.unlink()  # the run needs its resource no more: its weights hold the network
    assert train("--resume", run_dir, "--epochs", 2) == run_dir
    from utils.runs.loading import load_model

    np.testing.assert_array_equal(numpy_of(load_model(run_dir).projection.kernel), frozen)  # trained, yet frozen
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 4, "--limit", 30)
    assert code == 0 and json.loads((run_dir / "eval.json").read_text())["k4_n30"]["nll"] > 0, err
    code, out, err = run_main(generate.main, run_dir, "--n", 4, "--out", tmp_path / "g.png", "--seed", 0)
    assert code == 0 and (tmp_path / "g.png").is_file(), err
