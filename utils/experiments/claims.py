"""The study's claims, one by one, against a suite's measured paired differences: where what the
study says, and what counts as evidence for or against it, are decided.

Each claim is a list of comparisons "A is lower than B", seed by seed, judged on each measure the suite
has (MEASURES, in that order). Every (comparison, measure) interval that decides a verdict belongs to one
family, whose two-sided paired t-test p-values are adjusted together by Holm's step-down method (a claims
table of many intervals would otherwise find some "supported" by chance). Per claim and measure:
- supported: every comparison lies in the claimed direction (A − B < 0) with adjusted p < ALPHA;
- contradicted: some comparison lies in the opposite direction with adjusted p < ALPHA;
- not resolved by N seeds: otherwise; the 95 % intervals then say which differences these runs rule out.
"""

import math
from dataclasses import dataclass

from utils.analysis.stats import estimate, holm, paired_difference

ALPHA = 0.05
# The study's loss at the best epoch on the validation images, then on the test images, then a likelihood
# of the data in bits/dim, the NLL of suites scored before bits/dim, then the scores of samples.
MEASURES = ("val_loss", "test_loss", "test_bpd", "test_nll", "test_frechet_distance", "test_kid")
# test_nll is judged only where test_bpd is missing (suites scored before bits/dim): where both are, they are
# one likelihood in two units, and counting it twice would only make the adjustment stricter.
FALLBACK_OF = {"test_nll": "test_bpd"}
TRAINING_LOSS = "train_loss"  # stands for "the same run's training loss at the same epoch"
NO_ESTIMATE = estimate([])


@dataclass(frozen=True)
class Claim:
    """A claim of the study: `text`, comparisons (lower, higher) that it says hold, the measures judged."""

    text: str
    comparisons: tuple
    measures: tuple = MEASURES


CLAIMS = (
    Claim("GELU in the encoder helps", (("gelu_encoder", "base_lrelu"),)),
    Claim("GELU in the decoder helps", (("gelu_decoder", "base_lrelu"),)),
    Claim("GELU in both helps most", (("gelu_full", "gelu_encoder"), ("gelu_full", "gelu_decoder"),
                                      ("gelu_full", "base_lrelu"))),
    Claim("dropout 0.25 lowers validation loss below training loss", (("gelu_full_dropout", TRAINING_LOSS),),
          ("val_loss",)),
    Claim("batch norm before GELU is best", (("gelu_full_bn_before", "gelu_full_bn_after"),
                                             ("gelu_full_bn_before", "gelu_full"))),
    Claim("layer norm helps", (("gelu_full_ln_after", "gelu_full"), ("gelu_full_ln_before", "gelu_full"))),
)


def applicable(claim, variants):
    """Whether a suite with `variants` has every variant the claim compares."""
    return all(v in variants for pair in claim.comparisons for v in pair if v != TRAINING_LOSS)


def comparison_label(lower, higher):
    """`lower − higher` in words."""
    return f"{lower} − {'its training loss' if higher == TRAINING_LOSS else higher}"


def comparison_estimate(by_seed, lower, higher, measure):
    """Paired difference lower − higher of `measure` (by_seed(variant, measure) -> {seed: value}); against
    TRAINING_LOSS, the run's training loss `loss` of the same (best) epoch."""
    if higher == TRAINING_LOSS:
        return paired_difference(by_seed(lower, measure), by_seed(lower, "loss"))
    return paired_difference(by_seed(lower, measure), by_seed(higher, measure))


def family(by_seed, variants):
    """{(lower, higher, measure): (estimate, Holm-adjusted p)} of every interval that decides a claim the
    suite can test, on the measures it has; intervals without a p-value (one pair) get NaN and no share."""
    keys = dict.fromkeys((lower, higher, measure) for claim in CLAIMS if applicable(claim, variants)
                         for measure in claim.measures for lower, higher in claim.comparisons)
    found = {key: comparison_estimate(by_seed, *key) for key in keys}
    found = {key: est for key, est in found.items() if est.n}
    found = {(lower, higher, measure): est for (lower, higher, measure), est in found.items()
             if (lower, higher, FALLBACK_OF.get(measure)) not in found}
    adjusted = holm([est.p_value for est in found.values()])
    return {key: (est, p) for (key, est), p in zip(found.items(), adjusted)}


def family_size(tested):
    """How many intervals of a `family` the adjustment counted."""
    return sum(1 for _, p in tested.values() if math.isfinite(p))


def verdict(tests, seeds, alpha=ALPHA):
    """The verdict on a claim from its comparisons' (estimate, Holm-adjusted p) pairs."""
    decided = [est.mean for est, p in tests if p < alpha]  # NaN (no interval) never decides
    if any(mean > 0 for mean in decided):
        return "contradicted"
    if tests and len(decided) == len(tests) and all(mean < 0 for mean in decided):
        return "supported"
    return f"not resolved by {seeds} seed{'s' if seeds != 1 else ''}"


def rules_out(est, lower, higher):
    """What the 95 % interval of lower − higher rules out, in words ("" without an interval): a gain is a
    difference in the claim's direction (lower below higher), a loss one against it."""
    if not est.has_ci:
        return ""
    gain = f"a gain larger than {-est.low:.4g}" if est.low < 0 else "any gain"
    loss = f"a loss larger than {est.high:.4g}" if est.high > 0 else "any loss"
    return f"{comparison_label(lower, higher)}: rules out {gain} and {loss}"


def claims_rows(by_seed, variants, seeds, tested=None):
    """One row per applicable claim: its text, comparisons, and {measure: (tests, verdict)} for each
    measure the suite has, tests being the comparisons' (estimate, Holm-adjusted p) from `family`."""
    tested = family(by_seed, variants) if tested is None else tested
    rows = []
    for claim in CLAIMS:
        if not applicable(claim, variants):
            continue
        row = {"claim": claim.text, "comparisons": claim.comparisons, "measures": {}}
        for measure in claim.measures:
            keys = [(lower, higher, measure) for lower, higher in claim.comparisons]
            tests = [tested.get(key, (NO_ESTIMATE, math.nan)) for key in keys]
            if any(key in tested for key in keys):
                row["measures"][measure] = (tests, verdict(tests, seeds))
        rows.append(row)
    return rows
