"""Score a finished run: pixel MSE of reconstructions (every family) and, for a model with a likelihood,
the test-set ELBO, the importance-sampled NLL in nats and its latent summary (e.g. active units).

    python evaluate.py run/vae/0001_mnist_gelu_both [MORE_RUN_DIRS ...] --samples 100 [--binarize] [--limit N]

Results are added to the run folder's `eval.json`, one entry per setting, and printed.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from utils import cli  # noqa: E402
from utils.errors import UserError  # noqa: E402


def eval_key(samples, binarize, n_test):
    """The `eval.json` entry of one setting."""
    return f"k{samples}{'_binarized' if binarize else ''}_n{n_test}"


def evaluate_run(run_dir, samples=100, binarize=False, limit=None):
    """Figures of a run's model (its best epoch) on its dataset's test images; updates `eval.json`.
    Returns (key, figures)."""
    import json
    import time
    from pathlib import Path

    from utils.analysis import metrics
    from utils.atomic import write_json
    from utils.data.binarize import load_data
    from utils.runs import layout, provenance
    from utils.runs.loading import load_model
    from utils.training.settings import TrainSettings

    params = layout.read_params(run_dir)
    start = time.perf_counter()
    model = load_model(run_dir)
    data = load_data(TrainSettings(**params["training"]))
    x_test = data.x_test[:limit] if limit else data.x_test
    if binarize:
        x_test = (x_test > 0.5).astype("float32")
    figures = {"family": model.config.family, "pixel_mse": metrics.reconstruction_mse(model, x_test)}
    if model.has_likelihood:
        figures.update(likelihood=model.likelihood_name,
                       **metrics.likelihood_figures(model, x_test, samples=samples))
        figures.update(model.latent_summary(x_test))
    figures.update(samples=samples, binarize=binarize, n_test=len(x_test), seconds=time.perf_counter() - start,
                   time=provenance.now())
    key = eval_key(samples, binarize, len(x_test))
    path = Path(run_dir) / layout.EVAL
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[key] = figures
    write_json(path, results)
    return key, figures


def describe(key, figures):
    """One line of figures."""
    text = f"{key}: pixel MSE {figures['pixel_mse']:.5f}"
    if "nll" in figures:
        text += (f", ELBO {figures['elbo']:.2f} nats, NLL {figures['nll']:.2f} nats ({figures['likelihood']}, "
                 f"importance-sampled, {figures['samples']} samples)")
    if "active_units" in figures:
        text += f", {figures['active_units']} active units"
    return text


def main(argv=None):
    """Parse the flags, evaluate and print one line of figures."""
    p = cli.OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dirs", nargs="+", metavar="run_dir", help="run folders made by train.py or train_vae.py")
    p.add_argument("--samples", type=cli.positive_int, default=100, help="importance samples per image (default 100)")
    p.add_argument("--binarize", action="store_true", help="threshold test images at 0.5 first")
    p.add_argument("--limit", type=cli.positive_int, help="only the first N test images")
    args = p.parse_args(argv)
    for run_dir in args.run_dirs:  # one process for many runs: the backend starts once
        try:
            key, figures = evaluate_run(run_dir, args.samples, args.binarize, args.limit)
        except UserError as e:
            cli.fail(f"{run_dir}: {e}" if len(args.run_dirs) > 1 else str(e))
        print(f"{run_dir} {describe(key, figures)}" if len(args.run_dirs) > 1 else describe(key, figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
