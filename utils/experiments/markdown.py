"""How summary.md words its numbers: values, 95 % intervals, p-values, their units, and what the runs
were validated on."""

import math

from utils.experiments.suite import plural


def num(x, signed=False):
    """`x` to 4 significant digits (with its sign where `signed`), "—" when not finite."""
    return "—" if not math.isfinite(x) else f"{x:+.4g}" if signed else f"{x:.4g}"


def ci(est):
    """An estimate's 95 % interval as `[low, high]`, or why it has none."""
    if est.n < 2:
        return f"undefined ({plural(est.n, 'seed')})"
    return f"[{num(est.low)}, {num(est.high)}]"


def pvalue(p):
    """A p-value to 2 significant digits ("<0.0001" below that, "—" when undefined)."""
    if not math.isfinite(p):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"


def p_is(p):
    """A p-value in a sentence: `p = 0.03`, `p < 0.0001`."""
    text = pvalue(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def validation_note(finished):
    """Which finished runs were validated on the test images: their best epoch, and so every test figure,
    was chosen on the images that score them."""
    if finished.empty:
        return ""
    if "validated_on" not in finished or finished["validated_on"].isna().all():
        return "What the runs were validated on is not recorded."
    on_test = finished[finished["validated_on"] == "test images"]
    if on_test.empty:
        return "Every run was validated on images held out of its training images; the test images only scored it."
    if len(on_test) == len(finished):
        return ("**Every run was validated on the test images** (run folders made before the validation split): "
                "their best epoch was chosen on the test images that score them, so their selection saw the test set.")
    runs = "; ".join(f"{variant} seed{'s' if len(rows) > 1 else ''} {', '.join(map(str, sorted(rows['seed'])))}"
                     for variant, rows in on_test.groupby("variant", sort=False))
    return (f"**Validated on the test images** (made before the validation split, so their selection saw the test "
            f"set): {runs}. The other runs were validated on images held out of their training images.")


def units_sentence(finished):
    """The units of the likelihood columns, the likelihood's name and the judge network's, once."""
    has = [c for c in ("test_bpd", "test_nll", "test_elbo") if c in finished and finished[c].notna().any()]
    text = []
    if has:
        units = {"test_bpd": "test_bpd in bits per dimension", "test_nll": "test_nll in nats per image",
                 "test_elbo": "test_elbo in nats per image"}
        text.append("Likelihood figures: " + ", ".join(units[c] for c in has)
                    + f", all of {_names(finished, 'likelihood', 'the likelihood')}.")
    if "judge" in finished and finished["judge"].notna().any():
        text.append(f"Samples are scored on {_names(finished, 'judge', 'the judge network')}.")
    return " ".join(text)


def _names(finished, column, what):
    names = list(dict.fromkeys(finished[column].dropna())) if column in finished else []
    if not names:
        return f"{what} the runs' eval.json did not name (scored before it was recorded)"
    if len(names) == 1:
        return f"{what} `{names[0]}`"
    return f"{what} of each run (summary.csv's `{column}` column; {len(names)} differ, e.g. `{names[0]}`)"
