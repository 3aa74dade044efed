"""The study's claims table: the verdict rules on made-up paired differences, Holm's adjustment of the
comparisons that decide them, the best epoch's values, and the tables of summary.md."""

import math

import pandas as pd
import pytest

from utils.analysis.stats import paired_difference
from utils.experiments.claims import CLAIMS, TRAINING_LOSS, claims_rows, family, family_size, rules_out, verdict
from utils.experiments.claims_report import claims_section
from utils.experiments.report import by_seed, summary_markdown
from utils.experiments.suite import SuiteRequest


def _diff(*differences):
    """A paired-difference estimate whose per-seed differences are `differences`."""
    return paired_difference({s: d for s, d in enumerate(differences)}, {s: 0.0 for s in range(len(differences))})


def test_one_verdict_each():
    below, above, straddling = _diff(-1.0, -1.2, -0.9), _diff(1.0, 1.1, 0.9), _diff(-1.0, 0.8, 0.1)
    alone = lambda est: (est, est.p_value)  # noqa: E731  (a family of one: Holm changes nothing)
    assert verdict([alone(below)], 3) == "supported"
    assert verdict([alone(below), alone(below)], 3) == "supported"
    assert verdict([alone(above)], 3) == "contradicted"
    assert verdict([alone(below), alone(above)], 3) == "contradicted"  # one comparison against the claim is enough
    assert verdict([alone(straddling)], 3) == "not resolved by 3 seeds"
    assert verdict([alone(below), alone(straddling)], 3) == "not resolved by 3 seeds"
    assert verdict([alone(_diff(-1.0))], 1) == "not resolved by 1 seed"  # one pair: no interval, no p


def test_holm_can_leave_a_claim_an_unadjusted_interval_supports_not_resolved():
    below = _diff(-1.0, -1.5, -0.2)  # mean -0.9, sd 0.6557: t = -2.377 on 2 df, p = 0.1405: not significant
    clear = _diff(-1.0, -1.1, -0.9)  # mean -1, sd 0.1: t = -17.32, p = 0.003317
    assert clear.excludes_zero and clear.p_value == pytest.approx(0.003317, abs=1e-6)
    modest = _diff(-1.0, -1.6, -0.5)  # mean -1.0333, sd 0.5508: t = -3.249, p = 0.08308
    barely = _diff(-1.0, -1.3, -0.8)  # mean -1.0333, sd 0.2517: t = -7.112, p = 0.01920
    assert barely.excludes_zero  # its 95 % interval lies below zero: alone it would be "supported"
    assert verdict([(barely, barely.p_value)], 3) == "supported"
    # In a family of four, Holm multiplies the smallest p by 4, the next by 3: 0.0192 becomes 0.0576.
    from utils.analysis.stats import holm
    adjusted = holm([clear.p_value, barely.p_value, modest.p_value, below.p_value])
    assert adjusted[1] == pytest.approx(3 * barely.p_value)
    assert verdict([(barely, adjusted[1])], 3) == "not resolved by 3 seeds"
    assert verdict([(clear, adjusted[0])], 3) == "supported"


def test_rules_out_says_what_the_interval_excludes():
    est = _diff(-1.0, 0.8, 0.1)  # mean -0.0333, 95 % CI [-2.27, 2.20]
    text = rules_out(est, "gelu_full", "base_lrelu")
    assert text == (f"gelu_full − base_lrelu: rules out a gain larger than {-est.low:.4g} and a loss larger than "
                    f"{est.high:.4g}")
    assert rules_out(_diff(1.0, 1.1, 0.9), "a", "b").endswith("rules out any gain and a loss larger than 1.248")
    assert rules_out(_diff(-1.0, -1.1, -0.9), "a", TRAINING_LOSS) == (
        "a − its training loss: rules out a gain larger than 1.248 and any loss")
    assert rules_out(_diff(-1.0), "a", "b") == ""


def _frame(values):
    """A summary frame: values[variant] = [(best val_loss, training loss at that epoch, nll) per seed]; the
    last epoch's columns hold other numbers, which the claims must not read."""
    rows = [{"variant": v, "seed": s, "status": "finished", "validated_on": "training images",
             "best_val_loss": vl, "best_loss": tl, "test_nll": nll, "final_val_loss": vl + 100, "final_loss": tl - 100}
            for v, per_seed in values.items() for s, (vl, tl, nll) in enumerate(per_seed)]
    return pd.DataFrame(rows)


def _rows(frame, variants, seeds=3):
    seeded = lambda v, m: by_seed(frame, v, m)  # noqa: E731
    return {r["claim"]: r for r in claims_rows(seeded, variants, seeds)}


BASE = [(40.0, 41.0, 150.0), (40.5, 41.2, 151.0), (39.8, 40.9, 149.0)]


def _shift(d, n=0.0, noise=(0.0, 0.05, -0.04)):
    return [(v + d + e, t + d, x + n + e) for (v, t, x), e in zip(BASE, noise)]


def test_claims_table_on_made_up_runs():
    frame = _frame({"base_lrelu": BASE, "gelu_encoder": _shift(-1.0, -2.0), "gelu_decoder": _shift(+1.0, +1.5),
                    "gelu_full": _shift(-0.5, -0.3, noise=(0.0, 0.06, -0.03))})
    request = SuiteRequest("activations", 3)
    rows = _rows(frame, request.variants)
    assert set(rows) == {"GELU in the encoder helps", "GELU in the decoder helps", "GELU in both helps most"}
    assert list(rows["GELU in the encoder helps"]["measures"]) == ["val_loss", "test_nll"]  # the measures it has
    assert rows["GELU in the encoder helps"]["measures"]["val_loss"][1] == "supported"
    assert rows["GELU in the encoder helps"]["measures"]["test_nll"][1] == "supported"
    assert rows["GELU in the decoder helps"]["measures"]["val_loss"][1] == "contradicted"
    assert rows["GELU in both helps most"]["measures"]["val_loss"][1] == "contradicted"  # worse than gelu_encoder
    text = summary_markdown(frame, request)
    section = text[text.index("## The study's claims"):]
    assert "Holm-adjusted p-values of the 10 comparisons" in section  # 5 comparisons x 2 measures
    assert section.count("**supported**") == 2 and "**contradicted**" in section
    family_part = section[section.index("## The comparisons that decide the claims"):]
    assert family_part.count("\n| ") == 11  # header and 10 comparisons
    assert "| gelu_encoder − base_lrelu | val_loss (best epoch) | 3 |" in family_part


def test_family_holds_every_deciding_interval_once_and_adjusts_them_together():
    frame = _frame({"base_lrelu": BASE, "gelu_encoder": _shift(-1.0, -2.0), "gelu_decoder": _shift(+1.0, +1.5),
                    "gelu_full": _shift(-0.5, -0.3)})
    seeded = lambda v, m: by_seed(frame, v, m)  # noqa: E731
    tested = family(seeded, SuiteRequest("activations", 3).variants)
    assert len(tested) == family_size(tested) == 10
    raw = sorted(est.p_value for est, _ in tested.values())
    adjusted = sorted(p for _, p in tested.values())
    assert adjusted[0] == pytest.approx(min(1.0, 10 * raw[0]))  # the smallest p times the family's size
    assert all(a >= r for a, r in zip(adjusted, raw))
    with_bpd = frame.assign(test_bpd=frame["test_nll"] / 1000)  # the same likelihood in bits/dim
    tested = family(lambda v, m: by_seed(with_bpd, v, m), SuiteRequest("activations", 3).variants)
    assert {m for _, _, m in tested} == {"val_loss", "test_bpd"}  # test_nll only where test_bpd is missing


def test_claims_compare_the_best_epoch_not_the_last():
    # At the best epoch gelu_encoder is clearly lower; at the last epoch it is 9 higher: the verdict and the
    # tables follow the best epoch.
    frame = _frame({"base_lrelu": BASE, "gelu_encoder": _shift(-1.0, -2.0)})
    frame.loc[frame["variant"] == "gelu_encoder", "final_val_loss"] += 10
    rows = _rows(frame, ("base_lrelu", "gelu_encoder"))
    assert rows["GELU in the encoder helps"]["measures"]["val_loss"][1] == "supported"
    text = summary_markdown(frame, SuiteRequest("activations", 3, variants=("base_lrelu", "gelu_encoder")))
    assert "best-epoch val_loss 0.997 (2.5%) lower than base_lrelu" in text
    assert "| gelu_encoder | val_loss | 3 | -0.9967 | [-1.109, -0.8847] | 0.00068 | yes |" in text
    assert "best epoch" in text and "`final_*`" in text


def test_dropout_claim_compares_validation_with_training_of_the_same_epoch():
    frame = _frame({"base_lrelu": [(40.0, 41.0, 1.0)] * 3, "gelu_full": [(39.0, 40.0, 1.0)] * 3,
                    "gelu_full_dropout": [(44.0, 46.0, 1.0), (44.5, 46.1, 1.0), (43.9, 46.3, 1.0)]})
    dropout = _rows(frame, ("base_lrelu", "gelu_full", "gelu_full_dropout"))[
        "dropout 0.25 lowers validation loss below training loss"]
    assert list(dropout["measures"]) == ["val_loss"]
    (est, _), = dropout["measures"]["val_loss"][0]
    assert est.mean == pytest.approx(-2.0)  # best val_loss − best_loss: -2, -1.6, -2.4 (the final ones: +198)
    assert dropout["measures"]["val_loss"][1] == "supported"
    assert {c.text for c in CLAIMS} >= {"batch norm before GELU is best", "layer norm helps"}


def test_not_resolved_verdict_says_what_the_interval_rules_out():
    frame = _frame({"base_lrelu": BASE, "gelu_encoder": [(40.3, 41.0, 150.0), (40.1, 41.0, 151.2),
                                                         (39.9, 41.0, 148.7)]})
    request = SuiteRequest("activations", 3, variants=("base_lrelu", "gelu_encoder"))
    parts = claims_section(lambda v, m: by_seed(frame, v, m), request)
    table = parts[2]
    assert "**not resolved by 3 seeds**<br>gelu_encoder − base_lrelu: rules out a gain larger than" in table
    assert "includes zero: no difference detected at these seeds; the interval rules out differences beyond" \
        in summary_markdown(frame, request)


def test_a_suite_without_claims_has_no_claims_section():
    frame = _frame({"gelu_full": BASE, "gelu_full_bn_after": _shift(-1.0)})
    request = SuiteRequest("batchnorm", 3, variants=("gelu_full", "gelu_full_bn_after"))
    assert claims_section(lambda v, m: by_seed(frame, v, m), request) == []
    assert not math.isnan(by_seed(frame, "gelu_full", "val_loss")[0])
