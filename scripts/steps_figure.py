"""Draw the figure that separates the amount of data from the length of training: each GELU variant's paired
difference from base_lrelu in bits per dimension against optimizer steps, one line per amount of data.

    python -m scripts.steps_figure results/data_vs_steps.png \\
        "3,600 MNIST digits=results/activations_mnist_5k_e30_val@113,results/activations_mnist_5k_e100_val" \\
        "9,000 Fashion-MNIST images=results/...,results/..." "54,000 Fashion-MNIST images=results/..."

`FOLDER@N` takes a summary written before `optimizer_steps` was one of its columns: its epochs times N steps.
"""

import argparse

import matplotlib

matplotlib.use("Agg")

from utils.analysis.forest import plot_against_steps, read_summary  # noqa: E402
from utils.analysis.plots import save_figure  # noqa: E402


def main(argv=None):
    """Parse `OUT LABEL=FOLDER[,FOLDER...]...` and write the figure."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="the PNG to write")
    p.add_argument("lines", nargs="+", metavar="LABEL=FOLDER[,FOLDER...]",
                   help="a line's label (the amount of data) and the results folders of its points")
    p.add_argument("--column", default="test_bpd", help="the summary.csv column compared (default test_bpd)")
    args = p.parse_args(argv)
    groups = []
    for item in args.lines:
        label, _, folders = item.partition("=")
        if not folders:
            p.error(f"{item!r}: give LABEL=FOLDER[,FOLDER...]")
        frames = []
        for entry in folders.split(","):
            folder, _, per_epoch = entry.partition("@")
            frame = read_summary(folder)
            if per_epoch:  # a summary written before optimizer_steps was a column: its epochs times this
                frame = frame.assign(optimizer_steps=frame["epochs"] * int(per_epoch))
            elif "optimizer_steps" not in frame:
                p.error(f"{folder}/summary.csv has no optimizer_steps column; give {folder}@STEPS_PER_EPOCH "
                        "(the training images over the batch size, rounded up) or run its suite command again")
            frames.append(frame)
        groups.append((label, frames))
    save_figure(plot_against_steps(groups, column=args.column), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
