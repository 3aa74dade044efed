"""Score a finished run in nats: the test-set ELBO and the importance-sampled NLL (Bernoulli pixels).

    python evaluate.py run/vae/0001_mnist_gelu_both --samples 100 [--binarize] [--limit N]

Results are added to the run folder's `eval.json`, one entry per setting, and printed.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from utils import cli  # noqa: E402
from utils.errors import UserError  # noqa: E402


def evaluate_run(run_dir, samples=100, binarize=False, limit=None):
    """Likelihood figures of a run's saved models on its dataset's test images; updates `eval.json`."""
    import json

    import keras

    import models  # noqa: F401  (registers the encoder's Sampling layer)
    from utils import runs
    from utils.atomic import write_json
    from utils.loaders import load_dataset
    from utils.metrics import likelihood_figures

    run_dir = Path(run_dir)
    params = runs.read_params(run_dir)
    folder = run_dir / runs.MODELS
    if not (folder / "encoder.h5").is_file() or not (folder / "decoder.h5").is_file():
        raise UserError(f"{run_dir} has no saved models yet (no epoch has finished); train or --resume it first")
    encoder = keras.models.load_model(folder / "encoder.h5", compile=False)
    decoder = keras.models.load_model(folder / "decoder.h5", compile=False)
    data = load_dataset(params["training"]["dataset"], params["training"].get("limit"))
    x_test = data.x_test[:limit] if limit else data.x_test
    figures = likelihood_figures(encoder, decoder, x_test, samples=samples, binarize=binarize)
    key = f"bernoulli{'_binarized' if binarize else ''}_k{samples}_n{len(x_test)}"
    path = run_dir / "eval.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[key] = {**figures, "samples": samples, "binarize": binarize, "n_test": len(x_test),
                    "time": runs.now()}
    write_json(path, results)
    return key, figures


def main(argv=None):
    """Parse the flags, evaluate and print one line of figures."""
    p = cli.OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", help="a run folder made by train_vae.py")
    p.add_argument("--samples", type=cli.positive_int, default=100, help="importance samples per image (default 100)")
    p.add_argument("--binarize", action="store_true", help="threshold test images at 0.5 first")
    p.add_argument("--limit", type=cli.positive_int, help="only the first N test images")
    args = p.parse_args(argv)
    try:
        key, figures = evaluate_run(args.run_dir, args.samples, args.binarize, args.limit)
    except UserError as e:
        cli.fail(str(e))
    print(f"{key}: ELBO {figures['elbo']:.2f} nats, NLL {figures['nll']:.2f} nats "
          f"(importance-sampled, {args.samples} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
