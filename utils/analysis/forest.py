"""The findings figure: each variant's paired difference from the reference variant, seed by seed, with its
95 % interval, one panel per measure and one group of rows per suite (data set and length of training),
drawn from the suites' `summary.csv`. A reader sees at a glance which intervals clear zero."""

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter
import pandas as pd

from utils.analysis.stats import paired_difference

# panel title -> the summary.csv columns it draws (the first one a suite has)
MEASURES = {
    "the study's loss (1000 × MSE + KL), test images": ("test_loss",),
    "bits per dimension (the scoring likelihood)": ("test_bpd",),
    "KID of samples (judge network)": ("test_kid",),
}


def differences(frame, reference, columns):
    """{variant: (column, Estimate)} of each variant's paired difference from `reference` in the first of
    `columns` that the frame has values for."""
    found = {}
    for column in columns:
        if column not in frame or frame[column].isna().all():
            continue
        values = {v: dict(zip(rows["seed"], rows[column])) for v, rows in frame.dropna(subset=[column]).groupby("variant")}
        for variant in frame["variant"].drop_duplicates():
            if variant != reference and variant in values and reference in values:
                found[variant] = (column, paired_difference(values[variant], values[reference]))
        return found
    return found


def plot_forest(suites, reference="base_lrelu", measures=MEASURES):
    """`suites`: [(label, summary frame)]. One panel per measure; rows are (suite, variant) with the mean
    paired difference and its 95 % CI; intervals that exclude zero are drawn solid, the others hollow."""
    rows = [(label, v) for label, frame in suites for v in frame["variant"].drop_duplicates() if v != reference]
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 0.42 * len(rows) + 1.6), sharey=True,
                             squeeze=False)
    colours = plt.get_cmap("tab10")
    palette = sorted({v for _, v in rows})
    for ax, (title, columns) in zip(axes[0], measures.items()):
        found = {label: differences(frame, reference, columns) for label, frame in suites}
        for y, (label, variant) in enumerate(rows):
            est = found[label].get(variant, (None, None))[1]
            if est is None or not est.has_ci:
                continue
            colour = colours(palette.index(variant) % 10)
            ax.errorbar(est.mean, y, xerr=[[est.mean - est.low], [est.high - est.mean]], fmt="o", capsize=3,
                        color=colour, markerfacecolor=colour if est.excludes_zero else "white")
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"difference from {reference} (lower is better)", fontsize=8)
    axes[0][0].set_yticks(range(len(rows)), [f"{variant}  ·  {label}" for label, variant in rows], fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle(f"Paired differences from {reference}, mean and 95 % CI over seeds (solid: the interval "
                 "excludes zero, before any correction for multiple comparisons)", fontsize=9)
    fig.tight_layout()
    return fig


def read_summary(folder):
    """A suite's `summary.csv`, finished runs only."""
    frame = pd.read_csv(f"{folder}/summary.csv")
    return frame[frame["status"] == "finished"]


def plot_against_steps(groups, reference="base_lrelu", column="test_bpd"):
    """`groups`: [(line label, [summary frames])], one line per amount of data, one point per suite (its
    optimizer steps). One panel per variant: its paired difference from `reference` in `column`, mean and
    95 % CI over seeds, against steps on a log axis; solid markers where the interval excludes zero."""
    variants = list(dict.fromkeys(v for _, frames in groups for f in frames for v in f["variant"] if v != reference))
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.6), sharey=True, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, variant in zip(axes[0], variants):
        for i, (label, frames) in enumerate(groups):
            points = sorted((frame["optimizer_steps"].median(), est) for frame in frames
                            for v, (_, est) in differences(frame, reference, (column,)).items()
                            if v == variant and est.has_ci)
            if not points:
                continue
            steps, ests = zip(*points)
            colour = colours(i % 10)
            ax.plot(steps, [e.mean for e in ests], color=colour, label=label, linewidth=1)
            for x, e in points:
                ax.errorbar(x, e.mean, yerr=[[e.mean - e.low], [e.high - e.mean]], fmt="o", capsize=3, color=colour,
                            markerfacecolor=colour if e.excludes_zero else "white")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{variant} − {reference}", fontsize=9)
        ax.set_xlabel("optimizer steps", fontsize=8)
    axes[0][0].set_ylabel(f"paired difference, {column} (below 0: the variant is better)", fontsize=8)
    axes[0][-1].legend(fontsize=8, title="training images", title_fontsize=8)
    fig.suptitle(f"Paired differences from {reference} against training length, mean and 95 % CI over seeds "
                 "(solid: the interval excludes zero, before correction for multiple comparisons)", fontsize=9)
    fig.tight_layout()
    return fig
