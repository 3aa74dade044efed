"""The study's claims, one by one, against a suite's measured paired differences: where what the
study says, and what counts as evidence for or against it, are decided.

Each claim is a list of comparisons "A is lower than B", seed by seed. For each unit (the study's
loss, and the importance-sampled NLL where it applies) the verdict is:
- supported: every comparison's 95 % interval lies below zero;
- contradicted: some comparison's interval lies above zero;
- not resolved by N seeds: otherwise (an interval includes zero, or there is no interval).
"""

from dataclasses import dataclass

from utils.analysis.stats import paired_difference


@dataclass(frozen=True)
class Claim:
    """A claim of the study: `text`, and comparisons (lower, higher) that it says hold."""

    text: str
    comparisons: tuple
    metrics: tuple = ("val_loss", "test_nll")


CLAIMS = (
    Claim("GELU in the encoder helps", (("gelu_encoder", "base_lrelu"),)),
    Claim("GELU in the decoder helps", (("gelu_decoder", "base_lrelu"),)),
    Claim("GELU in both helps most", (("gelu_full", "gelu_encoder"), ("gelu_full", "gelu_decoder"),
                                      ("gelu_full", "base_lrelu"))),
    # Validation against training loss of the same run: "train_loss" is that run's final training loss.
    Claim("dropout 0.25 lowers validation loss below training loss", (("gelu_full_dropout", "train_loss"),),
          ("val_loss",)),
    Claim("batch norm before GELU is best", (("gelu_full_bn_before", "gelu_full_bn_after"),
                                             ("gelu_full_bn_before", "gelu_full"))),
    Claim("layer norm helps", (("gelu_full_ln_after", "gelu_full"), ("gelu_full_ln_before", "gelu_full"))),
)


def verdict(estimates, seeds):
    """The verdict on a claim from the paired-difference estimates of its comparisons."""
    if any(e.has_ci and e.low > 0 for e in estimates):
        return "contradicted"
    if estimates and all(e.has_ci and e.high < 0 for e in estimates):
        return "supported"
    return f"not resolved by {seeds} seed{'s' if seeds != 1 else ''}"


def comparison_estimate(by_seed, lower, higher, metric):
    """Paired difference lower - higher of `metric` (by_seed(variant, metric) -> {seed: value})."""
    if higher == "train_loss":
        return paired_difference(by_seed(lower, metric), by_seed(lower, "loss"))
    return paired_difference(by_seed(lower, metric), by_seed(higher, metric))


def applicable(claim, variants):
    """Whether a suite with `variants` has every variant the claim compares."""
    return all(v in variants for pair in claim.comparisons for v in pair if v != "train_loss")


def claims_rows(by_seed, variants, seeds):
    """One row per applicable claim: its text, comparisons, and per unit the estimates and verdict."""
    rows = []
    for claim in CLAIMS:
        if not applicable(claim, variants):
            continue
        row = {"claim": claim.text, "comparisons": claim.comparisons}
        for metric in ("val_loss", "test_nll"):
            if metric not in claim.metrics:
                continue
            estimates = [comparison_estimate(by_seed, lo, hi, metric) for lo, hi in claim.comparisons]
            if any(e.n for e in estimates):
                row[metric] = (estimates, verdict(estimates, seeds))
        rows.append(row)
    return rows
