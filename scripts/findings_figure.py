"""Draw the README's findings figure from published suites: paired differences from base_lrelu with 95 %
intervals, one panel per measure, one group of rows per suite.

    python -m scripts.findings_figure results/findings.png \\
        "mnist_5k, 30 epochs=results/activations_mnist_5k_e30_val" "Fashion-MNIST, 10 epochs=results/..."
"""

import argparse

import matplotlib

matplotlib.use("Agg")

from utils.analysis.forest import plot_forest, read_summary  # noqa: E402
from utils.analysis.plots import save_figure  # noqa: E402


def main(argv=None):
    """Parse `OUT LABEL=FOLDER...` and write the figure."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="the PNG to write")
    p.add_argument("suites", nargs="+", metavar="LABEL=FOLDER", help="a row group's label and its results folder")
    args = p.parse_args(argv)
    suites = []
    for item in args.suites:
        label, _, folder = item.partition("=")
        if not folder:
            p.error(f"{item!r}: give LABEL=FOLDER")
        suites.append((label, read_summary(folder)))
    save_figure(plot_forest(suites), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
