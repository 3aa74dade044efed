"""Every notebook runs end to end under nbclient with tiny parameters (1 epoch, 300 Fashion-MNIST images),
injected after its `parameters` cell as papermill does, and shows the figures and tables it promises (the
files a suite wrote, the pictures a model draws); committed without outputs."""

import base64
import io
import json
import re

import matplotlib.image
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from conftest import REPO, fake_run
from utils.experiments.suite import SuiteRequest

NOTEBOOKS = REPO / "notebooks"
TINY_SUITE = {"EPOCHS": 1, "SEEDS": 1, "DATASET": "fashion_mnist", "LIMIT": 300, "JOBS": 2}


def inject(nb, values):
    """Put `NAME = value` lines in a cell tagged `injected-parameters` right after the `parameters` cell,
    replacing an earlier injected cell (papermill's convention)."""
    tags = [cell.metadata.get("tags", []) for cell in nb.cells]
    nb.cells = [cell for cell, t in zip(nb.cells, tags) if "injected-parameters" not in t]
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell("\n".join(f"{name} = {value!r}" for name, value in values.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)
    return nb


def execute(name, values):
    """Run notebook `name` with `values` injected; returns the executed notebook."""
    nb = inject(nbformat.read(NOTEBOOKS / name, as_version=4), values)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def outputs(nb, kind):
    """Every output of `kind` (e.g. image/png, text/markdown) in the executed notebook."""
    return [out["data"][kind] for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if kind in out.get("data", {})]


def all_notebooks():
    return sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def test_the_seven_notebooks_are_there():
    assert all_notebooks() == ["01_activations.ipynb", "02_dropout.ipynb", "03_batchnorm.ipynb",
                               "04_layernorm.ipynb", "05_analysis.ipynb", "06_generate.ipynb",
                               "07_autoencoders.ipynb"]


@pytest.mark.parametrize("name", all_notebooks())
def test_committed_without_outputs_and_with_one_parameters_cell(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in nb.cells) == 1


def test_injection_replaces_an_earlier_injected_cell():
    nb = nbformat.read(NOTEBOOKS / "01_activations.ipynb", as_version=4)
    nb = inject(inject(nb, {"EPOCHS": 3}), {"EPOCHS": 1})
    sources = [cell.source for cell in nb.cells]
    injected = sources.index("EPOCHS = 1")
    assert "parameters" in nb.cells[injected - 1].metadata["tags"] and "EPOCHS = 3" not in sources


def pictures(nb):
    """The notebook's PNG outputs, decoded to arrays."""
    return [matplotlib.image.imread(io.BytesIO(base64.b64decode(png))) for png in outputs(nb, "image/png")]


def shown(fig):
    """A figure as utils.analysis.latent.show_figure puts it into a notebook, decoded."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    return matplotlib.image.imread(buffer)


def same_picture(a, b):
    return a.shape == b.shape and np.abs(a - b).max() <= 2 / 255


@pytest.fixture(scope="module")
def study_pool(tmp_path_factory):
    """A pool holding every study variant's seed 0 (run folders with their settings and loss logs, as
    `--suite all --seeds 1 --epochs 1 --limit 300` leaves them), which suite folders beside it share: the
    suite notebooks then find their runs there and train nothing. tests/test_suite.py trains real suites."""
    root = tmp_path_factory.mktemp("notebook_suites")
    for number, (variant, seed) in enumerate(SuiteRequest("all", 1).keys(), 1):
        fake_run(root / "pool_fashion_mnist_limit300_val", number, variant, seed)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_activations.ipynb", "02_dropout.ipynb", "03_batchnorm.ipynb",
                                  "04_layernorm.ipynb"])
def test_suite_notebook_shows_the_suites_figures_and_summary(study_pool, name):
    out = study_pool / name.split("_")[1].removesuffix(".ipynb")
    nb = execute(name, {**TINY_SUITE, "SEEDS": 1, "OUT_DIR": str(out), "EVAL_SAMPLES": 0})
    assert "0 new;" in printed(nb) and "-> finished" not in printed(nb)  # the runs came from the shared pool
    assert outputs(nb, "image/png") == [base64.b64encode((out / f).read_bytes()).decode()
                                        for f in ("losses.png", "total_loss.png")]
    assert "".join(outputs(nb, "text/markdown")).strip() == (out / "summary.md").read_text().strip()
    table = "".join(outputs(nb, "text/html"))
    assert table.count("<tr") == 1 + len(pd.read_csv(out / "summary.csv"))  # the header, then a row per run


@pytest.mark.slow
def test_analysis_notebook_shows_what_the_newest_runs_model_draws(trained_run):  # conftest's shared run
    from utils.analysis.plots import plot_latent_space, plot_manifold, plot_reconstructions
    from utils.data.binarize import load_data
    from utils.runs.loading import load_model
    from utils.runs.settings import TrainSettings

    nb = execute("05_analysis.ipynb", {"RUN_ROOT": str(trained_run.parent), "N_IMAGES": 300})
    assert str(trained_run) in printed(nb)
    model = load_model(trained_run)
    data = load_data(TrainSettings(**json.loads((trained_run / "params.json").read_text())["training"]))
    images, codes = data.x_test[:300], model.latent_means(data.x_test[:300])
    expected = [plot_latent_space(codes, data.y_test[:300], data.class_names),
                plot_reconstructions(images[:10], model.decode(codes[:10])),
                plot_manifold(model.decode(model.latent_grid(20)), 20)]
    got = pictures(nb)
    assert len(got) == 5  # then KL per dimension and the loss curves
    assert all(same_picture(a, shown(b)) for a, b in zip(got, expected))
    assert f"active units: {model.latent_summary(images)['active_units']} of 2" in printed(nb)


@pytest.mark.slow
def test_generate_notebook_draws_grid_interpolation_and_axis_walk(trained_run):
    nb = execute("06_generate.ipynb", {"RUN_DIR": str(trained_run), "N_SAMPLES": 16, "STEPS": 5, "AXIS": 1})
    grid, path, walk = pictures(nb)
    assert grid.std() > 0.05 and path.shape[1] > path.shape[0] and walk.shape[1] > walk.shape[0]
    difference = float(printed(nb).split("largest difference from the model's own decoder ")[1].split()[0])
    assert difference <= 1e-5  # decoder.h5 in plain Keras draws what the model draws


def printed(nb):
    """Everything the executed notebook's code cells printed."""
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def what_happened(nb):
    """07's "<preset> trained|reused <folder>" lines: the middle words, in order."""
    return [line.split()[1] for line in printed(nb).splitlines()
            if line.split()[:1] in (["conv_ae"], ["conv_vae"], ["dae_gaussian"], ["sae_l1"])]


@pytest.mark.slow
def test_autoencoders_notebook_trains_four_runs_draws_five_figures_and_reuses_its_runs(tmp_path):
    root = tmp_path / "runs"
    values = {"RUN_ROOT": str(root), "DATASET": "fashion_mnist", "EPOCHS": 1, "LIMIT": 300, "SEED": 0,
              "N_SAMPLES": 16}
    nb = execute("07_autoencoders.ipynb", values)
    # AE vs VAE latent spaces, where the random points fall, their decoded grids, denoising, code histogram
    assert len(outputs(nb, "image/png")) == 5
    noisy, output = map(float, re.search(r"noisy input ([\d.]+), output ([\d.]+)", printed(nb)).groups())
    assert 0 < output and 0 < noisy  # the denoising figure's numbers come from the model's own diagnostics
    folders = sorted(p.parent for p in root.glob("*/params.json"))
    assert [f.name.split("_", 1)[1] for f in folders] == [f"fashion_mnist_{preset}" for preset in
                                                          ("conv_ae", "conv_vae", "dae_gaussian", "sae_l1")]
    assert all(str(f) in printed(nb) for f in folders) and what_happened(nb) == ["trained"] * 4
    again = execute("07_autoencoders.ipynb", values)  # the finished runs are found, not trained again
    assert what_happened(again) == ["reused"] * 4 and sorted(p.parent for p in root.glob("*/params.json")) == folders
    assert len(outputs(again, "image/png")) == 5
