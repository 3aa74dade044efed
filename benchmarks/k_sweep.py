"""How the importance-sampled NLL moves with the number of samples K, for run folders of families with a
likelihood: the estimate at each K of --ks on the first --images test images, in nats per image and bits
per dimension, with the seconds each took: how far the default K of evaluate.py and of suites (100) is from
a larger one, measured (docs/training.md, "How many importance samples").

    python -m benchmarks.k_sweep RUN_DIR [RUN_DIR ...] --ks 100,1000,5000 --images 200
"""

import argparse
import os
import time

from utils import startup  # noqa: E402

startup.start()  # as the commands start: the XLA vector width, a quiet start

from benchmarks.machine import machine_info, machine_line  # noqa: E402
from models.likelihoods import is_binary  # noqa: E402
from utils.analysis.metrics import likelihood_figures  # noqa: E402
from utils.data.binarize import load_data  # noqa: E402
from utils.runs import layout  # noqa: E402
from utils.runs.loading import load_model  # noqa: E402
from utils.runs.settings import recorded_settings  # noqa: E402


def sweep(run_dir, ks, images):
    """Rows of (run, family, likelihood, K, nll nats, bpd, seconds) for one run folder."""
    model = load_model(run_dir)
    params = layout.read_params(run_dir)
    data = load_data(recorded_settings(params))
    x = data.x_test[:images]
    likelihood = model.scoring_likelihood(is_binary(x), data.x_val)
    rows = []
    for k in ks:
        start = time.perf_counter()
        figures = likelihood_figures(model, x, k, likelihood)
        rows.append({"run": params.get("variant"), "family": model.config.family, "likelihood": likelihood.name,
                     "K": k, "nll": figures["nll"], "bpd": figures["bpd"], "seconds": time.perf_counter() - start})
    return rows


def main():
    """Print one markdown table of every run's sweep, and the machine."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--ks", default="100,1000,5000", help="comma-separated numbers of importance samples")
    p.add_argument("--images", type=int, default=200, help="test images scored (the first N)")
    args = p.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    print(f"{machine_line(machine_info())}\n\n| run | family | likelihood | K | NLL (nats) | change from the largest K | bits/dim | "
          "seconds |\n|---|---|---|---:|---:|---:|---:|---:|")
    for run_dir in args.run_dirs:
        rows = sweep(run_dir, ks, args.images)
        best = rows[-1]["nll"]
        for r in rows:
            print(f"| {r['run']} | {r['family']} | {r['likelihood']} | {r['K']} | {r['nll']:.3f} | "
                  f"{r['nll'] - best:+.3f} | {r['bpd']:.5f} | {r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
