"""summary.md's claims: the study's claims table (a verdict per claim and measure from Holm-adjusted
p-values, decided in utils/experiments/claims.py) and the table of the comparisons that decide it."""

from utils.experiments.claims import ALPHA, claims_rows, comparison_label, family, family_size, rules_out
from utils.experiments.markdown import ci, num, p_is, pvalue

MEASURE_NAMES = {"val_loss": "val_loss (best epoch)", "test_loss": "test_loss", "test_bpd": "test_bpd (bits/dim)",
                 "test_nll": "test_nll (nats per image)", "test_frechet_distance": "Fréchet distance",
                 "test_kid": "KID"}
MEASURE_MEANINGS = {
    "val_loss": "the study's loss on the validation images at the best epoch, the checkpoint every test figure "
                "scores (the dropout claim compares it with the training loss of that same epoch)",
    "test_loss": "the same loss on the test images", "test_bpd": "the likelihood of the test images named above",
    "test_nll": "the likelihood of the test images named above", "test_frechet_distance": "of samples",
    "test_kid": "of samples"}


def claims_section(by_seed, request):
    """The claims' part of summary.md (headings, text and two tables); empty when the suite tests no claim."""
    tested = family(by_seed, request.variants)
    rows = claims_rows(by_seed, request.variants, request.seeds, tested)
    if not rows:
        return []
    measures = list(dict.fromkeys(m for row in rows for m in row["measures"]))
    size = family_size(tested)
    return [
        "## The study's claims",
        "Each claim as paired differences, seed by seed (negative: the first variant is lower, as the claim "
        "says), on " + "; ".join(f"{MEASURE_NAMES[m]}: {MEASURE_MEANINGS[m]}" for m in measures) + ". "
        f"Verdicts use the Holm-adjusted p-values of the {size} comparisons listed below, at {ALPHA}: supported "
        "when every difference of the claim lies in its direction, contradicted when one lies in the opposite "
        "direction, otherwise not resolved, with what the (unadjusted) 95 % intervals rule out: a gain is a "
        "difference in the claim's direction, a loss one against it.",
        claims_table(rows),
        "## The comparisons that decide the claims",
        f"The family is the {size} intervals below: every comparison of a claim on every measure this suite has "
        "(intervals of one pair, which have no p-value, are listed but not counted). p: two-sided paired t-test "
        f"of a zero mean difference; Holm: its step-down adjustment over the family of {size}, which keeps the "
        "chance of any false verdict among them at or below 5 %. The claims table's verdicts use the adjusted "
        "p-values, so an interval can exclude zero (p < 0.05) and still leave its claim not resolved.",
        family_table(tested)]


def claims_table(rows):
    """Markdown: per claim and measure the paired differences with their 95 % CI and Holm-adjusted p, and
    the verdict (with what the intervals rule out when not resolved)."""
    lines = ["| claim | measure | difference [95 % CI], Holm-adjusted p | verdict |", "|---|---|---|---|"]
    for row in rows:
        claim = row["claim"]
        for measure, (tests, verdict) in row["measures"].items():
            pairs = list(zip(row["comparisons"], tests))
            cells = [f"{comparison_label(lo, hi)}: {num(est.mean, signed=True)} {ci(est)}, Holm {p_is(p)}"
                     for (lo, hi), (est, p) in pairs]
            if verdict.startswith("not resolved"):
                limits = [rules_out(est, lo, hi) for (lo, hi), (est, p) in pairs if not p < ALPHA]
                verdict = "<br>".join([f"**{verdict}**", *(x for x in limits if x)])
            else:
                verdict = f"**{verdict}**"
            lines.append(f"| {claim} | {MEASURE_NAMES[measure]} | {'<br>'.join(cells)} | {verdict} |")
            claim = ""
    return "\n".join(lines)


def family_table(tested):
    """Markdown: each comparison that decides a claim, with its raw and Holm-adjusted p-values."""
    lines = ["| comparison | measure | pairs | mean difference | 95 % CI | p | Holm-adjusted p |",
             "|---|---|---:|---:|---|---:|---:|"]
    for (lower, higher, measure), (est, adjusted) in tested.items():
        lines.append(f"| {comparison_label(lower, higher)} | {MEASURE_NAMES[measure]} | {est.n} | "
                     f"{num(est.mean, signed=True)} | {ci(est)} | {pvalue(est.p_value)} | {pvalue(adjusted)} |")
    return "\n".join(lines)
