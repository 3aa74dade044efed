"""Every notebook runs end to end under nbclient with tiny parameters (1 epoch, 300 Fashion-MNIST images),
injected after its `parameters` cell as papermill does, and shows its figures; committed without outputs."""

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

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


@pytest.mark.parametrize("name, seeds", [("01_activations.ipynb", 2), ("02_dropout.ipynb", 1),
                                         ("03_batchnorm.ipynb", 1), ("04_layernorm.ipynb", 1)])
def test_suite_notebook_runs_and_shows_figures_and_summary(tmp_path, name, seeds):
    out = tmp_path / "suite"
    nb = execute(name, {**TINY_SUITE, "SEEDS": seeds, "OUT_DIR": str(out)})
    assert len(outputs(nb, "image/png")) == 2  # losses.png and total_loss.png
    summary = "".join(outputs(nb, "text/markdown"))
    assert "Paired differences against" in summary and "What these runs can show" in summary
    assert (out / "summary.csv").is_file() and (out / "losses.png").is_file()


def test_analysis_notebook_finds_the_newest_run_and_draws_five_figures(trained_run):  # conftest's shared run
    nb = execute("05_analysis.ipynb", {"RUN_ROOT": str(trained_run.parent), "N_IMAGES": 300})
    # latent scatter, reconstructions, manifold, KL per dimension, loss curves
    assert len(outputs(nb, "image/png")) == 5
    assert str(trained_run) in "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                                       for out in cell.outputs)


def test_generate_notebook_draws_grid_interpolation_and_axis_walk(trained_run):
    nb = execute("06_generate.ipynb", {"RUN_DIR": str(trained_run), "N_SAMPLES": 16, "STEPS": 5, "AXIS": 1})
    assert len(outputs(nb, "image/png")) == 3


def printed(nb):
    """Everything the executed notebook's code cells printed."""
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def what_happened(nb):
    """07's "<preset> trained|reused <folder>" lines: the middle words, in order."""
    return [line.split()[1] for line in printed(nb).splitlines()
            if line.split()[:1] in (["conv_ae"], ["conv_vae"], ["dae_gaussian"], ["sae_l1"])]


def test_autoencoders_notebook_trains_four_runs_draws_five_figures_and_reuses_its_runs(tmp_path):
    root = tmp_path / "runs"
    values = {"RUN_ROOT": str(root), "DATASET": "fashion_mnist", "EPOCHS": 1, "LIMIT": 300, "SEED": 0,
              "N_SAMPLES": 16}
    nb = execute("07_autoencoders.ipynb", values)
    # AE vs VAE latent spaces, where the random points fall, their decoded grids, denoising, code histogram
    assert len(outputs(nb, "image/png")) == 5
    folders = sorted(p.parent for p in root.glob("*/params.json"))
    assert [f.name.split("_", 1)[1] for f in folders] == [f"fashion_mnist_{preset}" for preset in
                                                          ("conv_ae", "conv_vae", "dae_gaussian", "sae_l1")]
    assert all(str(f) in printed(nb) for f in folders) and what_happened(nb) == ["trained"] * 4
    again = execute("07_autoencoders.ipynb", values)  # the finished runs are found, not trained again
    assert what_happened(again) == ["reused"] * 4 and sorted(p.parent for p in root.glob("*/params.json")) == folders
    assert len(outputs(again, "image/png")) == 5
