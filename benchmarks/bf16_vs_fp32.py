"""Does mixed bfloat16 change a suite's conclusions? Compares a float32 suite folder with a `--mixed-precision` one.

    python run_experiments.py --suite activations --seeds 5 --epochs 5 --limit 10000 --dataset fashion_mnist --jobs 2
    python run_experiments.py --suite activations --seeds 5 --epochs 5 --limit 10000 --dataset fashion_mnist --jobs 2 \
        --mixed-precision
    python -m benchmarks.bf16_vs_fp32 run/experiments/activations_fashion_mnist_limit10000 \
        run/experiments/activations_fashion_mnist_limit10000_mixed --out results/bf16_vs_fp32

Reads each folder's finished runs (their params.json and training.csv) and prints two Markdown tables:
1. per variant, the paired difference bf16 − fp32 of the final val_loss, seed by seed, with its 95 % CI;
2. per variant, its paired difference from the reference variant (base_lrelu) in fp32 and in bf16, and
   the change between them (bf16 difference − fp32 difference, seed by seed) with its 95 % CI: if that
   interval holds zero and is narrow against the differences themselves, bf16 leaves the comparison as it was.
With --out the tables also go to comparison.md and comparison.csv there.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd


from utils.errors import UserError  # noqa: E402
from utils.analysis.stats import estimate, paired_difference  # noqa: E402
from models.presets import PRESETS  # noqa: E402
from utils.runs.layout import HISTORY  # noqa: E402
from utils.experiments.suite import REFERENCE_VARIANT, RUNS, find_runs  # noqa: E402

def read_suite(folder):
    """{variant: {seed: final val_loss}} and {variant: {seed: training seconds}} of a suite's finished runs.

    Read from the run folders (params.json and training.csv), so a suite still running can be looked at.
    """
    found = find_runs(Path(folder) / RUNS)
    if not found:
        raise UserError(f"no run folders in {Path(folder) / RUNS}: run run_experiments.py there first")
    losses, seconds = {}, {}
    order = list(PRESETS)  # the suites' order, so tables read base_lrelu first
    for (variant, seed), (run_dir, params) in sorted(found.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        if params.get("status") != "finished":
            continue
        history = pd.read_csv(run_dir / HISTORY)
        losses.setdefault(variant, {})[seed] = float(history["val_loss"].iloc[-1])
        seconds.setdefault(variant, {})[seed] = float(history["train_seconds"].sum())
    return losses, seconds


def _ci(low, high):
    return "undefined" if pd.isna(low) else f"[{low:+.3f}, {high:+.3f}]"


def compare(fp32, bf16, reference=REFERENCE_VARIANT):
    """Rows of both tables (dicts) from two `read_suite` loss mappings."""
    variants = [v for v in fp32 if v in bf16 and set(fp32[v]) & set(bf16[v])]
    if not variants:
        raise UserError("the two suites have no finished (variant, seed) in common")
    rows = []
    for v in variants:
        seeds = set(fp32[v]) & set(bf16[v])  # means over the pairs only, so they match the difference
        shift = paired_difference(bf16[v], fp32[v])
        row = {"variant": v, "pairs": shift.n, "fp32_mean": estimate([fp32[v][s] for s in seeds]).mean,
               "bf16_mean": estimate([bf16[v][s] for s in seeds]).mean, "bf16_minus_fp32": shift.mean,
               "bf16_minus_fp32_low": shift.low, "bf16_minus_fp32_high": shift.high}
        if reference in fp32 and reference in bf16 and v != reference:
            both = set(fp32[v]) & set(bf16[v]) & set(fp32[reference]) & set(bf16[reference])  # the same seeds for all
            diff32 = estimate([fp32[v][s] - fp32[reference][s] for s in both])
            diff16 = estimate([bf16[v][s] - bf16[reference][s] for s in both])
            change = estimate([(bf16[v][s] - bf16[reference][s]) - (fp32[v][s] - fp32[reference][s]) for s in both])
            row.update(vs_ref_fp32=diff32.mean, vs_ref_fp32_low=diff32.low, vs_ref_fp32_high=diff32.high,
                       vs_ref_bf16=diff16.mean, vs_ref_bf16_low=diff16.low, vs_ref_bf16_high=diff16.high,
                       change=change.mean, change_low=change.low, change_high=change.high, change_pairs=change.n)
        rows.append(row)
    return rows


def markdown(rows, seconds32, seconds16, reference=REFERENCE_VARIANT):
    """The two tables and the training-time ratio, as Markdown."""
    lines = ["| variant | seeds | fp32 val_loss | bf16 val_loss | bf16 − fp32 (paired) | 95 % CI |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['pairs']} | {r['fp32_mean']:.3f} | {r['bf16_mean']:.3f} | "
                     f"{r['bf16_minus_fp32']:+.3f} | {_ci(r['bf16_minus_fp32_low'], r['bf16_minus_fp32_high'])} |")
    lines += ["", f"| variant | − {reference}, fp32 [95 % CI] | − {reference}, bf16 [95 % CI] | "
                  "change (bf16 − fp32) | 95 % CI of the change |", "|---|---|---|---:|---|"]
    for r in rows:
        if "change" in r:
            lines.append(f"| {r['variant']} | {r['vs_ref_fp32']:+.3f} {_ci(r['vs_ref_fp32_low'], r['vs_ref_fp32_high'])} | "
                         f"{r['vs_ref_bf16']:+.3f} {_ci(r['vs_ref_bf16_low'], r['vs_ref_bf16_high'])} | "
                         f"{r['change']:+.3f} | {_ci(r['change_low'], r['change_high'])} |")
    pairs = [(v, s) for v in seconds32 if v in seconds16 for s in set(seconds32[v]) & set(seconds16[v])]
    total32, total16 = sum(seconds32[v][s] for v, s in pairs), sum(seconds16[v][s] for v, s in pairs)
    lines += ["", f"Training seconds summed over the {len(pairs)} paired runs (train_seconds of training.csv): "
                  f"fp32 {total32:.0f} s, bf16 {total16:.0f} s ({total32 / total16:.2f}x; a speed figure only "
                  "if the machine was equally loaded during both suites)."]
    return "\n".join(lines)


def main(argv=None):
    """Read both suite folders, print the comparison, optionally write it to --out."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("fp32", type=Path, help="the float32 suite folder")
    p.add_argument("bf16", type=Path, help="the --mixed-precision suite folder")
    p.add_argument("--out", type=Path, help="also write comparison.md and comparison.csv here")
    args = p.parse_args(argv)
    try:
        (fp32, seconds32), (bf16, seconds16) = read_suite(args.fp32), read_suite(args.bf16)
        rows = compare(fp32, bf16)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = markdown(rows, seconds32, seconds16)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "comparison.md").write_text(text + "\n")
        pd.DataFrame(rows).to_csv(args.out / "comparison.csv", index=False, float_format="%.5f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
