"""Score a finished run: pixel MSE of reconstructions (every family) and, for a model with a likelihood,
the test-set ELBO, the importance-sampled NLL in nats and its latent summary (e.g. active units).

    python evaluate.py run/vae/0001_mnist_gelu_both [MORE_RUN_DIRS ...] --samples 100 [--binarize] [--limit N]
    python evaluate.py --check run/experiments/pool_mnist_val [RUN_DIR ...]     # which runs are sound

Results are added to the run folder's `eval.json`, one entry per setting, and printed. `--check` scores
nothing: it lists every run folder given (or in a pool given) with its state (finished, resumable, damaged:
which file, and how) and exits 1 if any is damaged.
"""

import os
import sys

from utils import startup  # noqa: E402

startup.start()  # before Keras loads: the process settings, a quiet start

from utils import cli  # noqa: E402
from utils.analysis.evaluation import describe, evaluate_run  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.runs import health  # noqa: E402


def main(argv=None):
    """Parse the flags, evaluate and print one line of figures."""
    p = cli.OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dirs", nargs="+", metavar="run_dir", help="run folders made by train.py or train_vae.py")
    p.add_argument("--samples", type=cli.positive_int, default=100, help="importance samples per image (default 100)")
    p.add_argument("--binarize", action="store_true", help="threshold test images at 0.5 first")
    p.add_argument("--limit", type=cli.positive_int, help="only the first N test images")
    p.add_argument("--check", action="store_true", help="list each run's state (finished, resumable, damaged: which "
                                                         "file) instead of scoring; folders of runs are searched")
    args = p.parse_args(argv)
    if args.check:
        return check(args.run_dirs)
    for run_dir in args.run_dirs:  # one process for many runs: the backend starts once
        try:
            key, figures = evaluate_run(run_dir, args.samples, args.binarize, args.limit)
        except UserError as e:
            cli.fail(f"{run_dir}: {e}" if len(args.run_dirs) > 1 else str(e))
        print(f"{run_dir} {describe(key, figures)}" if len(args.run_dirs) > 1 else describe(key, figures), flush=True)
    return 0


def check(paths):
    """Print one line per run folder among `paths` with its health; 1 if any is damaged or none was found."""
    folders = health.run_folders(paths)
    if not folders:
        cli.fail(f"no run folders in {' '.join(paths)}; give run folders or the pools that hold them")
    found = [health.check_run(folder) for folder in folders]
    width = max(len(str(h.run_dir)) for h in found)
    for h in found:
        print(f"{str(h.run_dir):<{width}}  {h.describe()}", flush=True)
    damaged = [h for h in found if h.state == "damaged"]
    print(f"{len(found)} runs: " + ", ".join(f"{sum(h.state == s for h in found)} {s}"
                                             for s in ("finished", "resumable", "running", "damaged")))
    return 1 if damaged else 0


if __name__ == "__main__":
    sys.exit(main())
