"""The findings figure: paired differences from the reference variant per suite and measure, against a hand
computation, and the figure it draws (solid markers only where the interval excludes zero)."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from utils.analysis.forest import differences, plot_against_steps, plot_forest  # noqa: E402


def _frame():
    rows = []
    for seed, (base, better, same) in enumerate([(3.0, 2.0, 3.1), (3.2, 2.1, 3.0), (2.9, 1.8, 3.0)]):
        rows += [{"variant": "base_lrelu", "seed": seed, "test_bpd": base, "test_loss": 50.0 + seed},
                 {"variant": "gelu_full", "seed": seed, "test_bpd": better, "test_loss": 50.0 + seed},
                 {"variant": "gelu_encoder", "seed": seed, "test_bpd": same, "test_loss": np.nan}]
    return pd.DataFrame(rows)


def test_differences_are_the_paired_mean_and_t_interval():
    found = differences(_frame(), "base_lrelu", ("test_bpd",))
    column, est = found["gelu_full"]
    diffs = np.array([2.0 - 3.0, 2.1 - 3.2, 1.8 - 2.9])
    half = 4.302653 * diffs.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert column == "test_bpd" and est.mean == pytest.approx(diffs.mean())
    assert (est.low, est.high) == pytest.approx((diffs.mean() - half, diffs.mean() + half), rel=1e-5)
    assert est.excludes_zero and not found["gelu_encoder"][1].excludes_zero
    assert "gelu_encoder" not in differences(_frame(), "base_lrelu", ("test_loss",))  # no values: no row


def test_the_figure_draws_one_row_per_variant_and_suite():
    fig = plot_forest([("a", _frame()), ("b", _frame())], measures={"bits": ("test_bpd",)})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["gelu_full  ·  a", "gelu_encoder  ·  a", "gelu_full  ·  b", "gelu_encoder  ·  b"]
    faces = [line.get_markerfacecolor() for line in ax.lines if line.get_marker() == "o"]
    assert len(faces) == 4 and sum(face == "white" for face in faces) == 2  # gelu_encoder's intervals hold 0


def _at_steps(frame, steps, shift=0.0):
    """`frame` as a suite of `steps` optimizer steps, gelu_full's difference moved by `shift`."""
    frame = frame.assign(optimizer_steps=steps)
    frame.loc[frame["variant"] == "gelu_full", "test_bpd"] += shift
    return frame


def test_the_steps_figure_draws_a_line_per_amount_of_data_at_each_suites_steps():
    groups = [("small", [_at_steps(_frame(), 9_000, shift=0.5), _at_steps(_frame(), 3_000)]),
              ("large", [_at_steps(_frame(), 17_000)])]
    fig = plot_against_steps(groups)
    full = fig.axes[[ax.get_title() for ax in fig.axes].index("gelu_full − base_lrelu")]
    lines = {line.get_label(): line for line in full.lines if line.get_label() in ("small", "large")}
    np.testing.assert_allclose(lines["small"].get_xdata(), [3_000, 9_000])  # sorted by steps
    np.testing.assert_allclose(lines["small"].get_ydata(), [-1.0667, -0.5667], atol=1e-4)  # the paired means
    np.testing.assert_allclose(lines["large"].get_xdata(), [17_000])
    assert full.get_xscale() == "log"
