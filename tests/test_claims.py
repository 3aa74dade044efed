"""The study's claims table: the verdict rules on made-up paired differences, and the table itself."""

import pandas as pd

from utils.experiments.claims import CLAIMS, claims_rows, verdict
from utils.analysis.stats import paired_difference
from utils.experiments.suite import SuiteRequest
from utils.experiments.report import claims_table, summary_markdown


def _diff(*differences):
    """A paired-difference estimate whose per-seed differences are `differences`."""
    return paired_difference({s: d for s, d in enumerate(differences)}, {s: 0.0 for s in range(len(differences))})


def test_one_verdict_each():
    below, above, straddling = _diff(-1.0, -1.2, -0.9), _diff(1.0, 1.1, 0.9), _diff(-1.0, 0.8, 0.1)
    assert verdict([below], 3) == "supported"
    assert verdict([below, below], 3) == "supported"
    assert verdict([above], 3) == "contradicted"
    assert verdict([below, above], 3) == "contradicted"  # one comparison against the claim is enough
    assert verdict([straddling], 3) == "not resolved by 3 seeds"
    assert verdict([below, straddling], 3) == "not resolved by 3 seeds"
    assert verdict([_diff(-1.0)], 1) == "not resolved by 1 seed"  # one pair: no interval


def _frame(values):
    """A summary frame: values[variant] = [(val_loss, train loss, nll) per seed]."""
    rows = [{"variant": v, "seed": s, "final_val_loss": vl, "final_loss": tl, "test_nll": nll}
            for v, per_seed in values.items() for s, (vl, tl, nll) in enumerate(per_seed)]
    return pd.DataFrame(rows)


def test_claims_table_on_made_up_runs():
    base = [(40.0, 41.0, 150.0), (40.5, 41.2, 151.0), (39.8, 40.9, 149.0)]
    shift = lambda d, n=0.0: [(v + d, t + d, x + n) for v, t, x in base]  # noqa: E731
    frame = _frame({"base_lrelu": base, "gelu_encoder": shift(-1.0, -2.0), "gelu_decoder": shift(+1.0, +1.5),
                    "gelu_full": [(v - 0.5 + 0.4 * (s % 2), t, x) for s, (v, t, x) in enumerate(base)]})
    request = SuiteRequest("activations", 3)
    rows = {r["claim"]: r for r in claims_rows(lambda v, m: _by_seed(frame, v, m), request.variants, 3)}
    assert set(rows) == {"GELU in the encoder helps", "GELU in the decoder helps", "GELU in both helps most"}
    assert rows["GELU in the encoder helps"]["val_loss"][1] == "supported"
    assert rows["GELU in the encoder helps"]["test_nll"][1] == "supported"
    assert rows["GELU in the decoder helps"]["val_loss"][1] == "contradicted"
    assert rows["GELU in both helps most"]["val_loss"][1] == "contradicted"  # worse than gelu_encoder
    table = claims_table(frame, request)
    assert table.count("\n") == 4 and "**supported**" in table and "**contradicted**" in table
    assert "## The study's claims" in summary_markdown(frame.assign(status="finished"), request)


def test_dropout_claim_compares_validation_with_training_of_the_same_run():
    frame = _frame({"base_lrelu": [(40.0, 41.0, 1.0)] * 3, "gelu_full": [(39.0, 40.0, 1.0)] * 3,
                    "gelu_full_dropout": [(44.0, 46.0, 1.0), (44.5, 46.1, 1.0), (43.9, 46.3, 1.0)]})
    rows = claims_rows(lambda v, m: _by_seed(frame, v, m), ("base_lrelu", "gelu_full", "gelu_full_dropout"), 3)
    dropout = next(r for r in rows if r["claim"].startswith("dropout"))
    assert dropout["val_loss"][1] == "supported" and "test_nll" not in dropout
    assert {c.text for c in CLAIMS} >= {"batch norm before GELU is best", "layer norm helps"}


def _by_seed(frame, variant, metric):
    column = metric if metric.startswith("test_") else f"final_{metric}"
    rows = frame[frame["variant"] == variant]
    return dict(zip(rows["seed"], rows[column]))
