"""Copy a finished suite's results into the repository's `results/`, with a README saying how they were made.

    python -m scripts.publish_results run/experiments/all_mnist_5k results/all_mnist_5k \\
        --command "python run_experiments.py --suite all --dataset mnist_5k --seeds 5 --epochs 10 --jobs 2" \\
        --log suite.log

Copies summary.md, summary.csv and the suite's figures, per variant the seed-0 run's figures (shrunk
below 300 KB), `samples.png` (the variants' seed-0 samples side by side) and, where the runs' samples
were scored, the `info.json` of the judge that scored them (its accuracy and the distances' scale) as
`judge.json` and the feature network's (the DFC-VAE's; before the judge, the one that scored) as
`feature_network.json`. The README gives the command, seeds, epochs, data, wall time (from the
runner's log line "... s in all"), the CPU and software versions. Only what the suite folder measured
is written: nothing is estimated.
"""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

from benchmarks.machine import machine_info, machine_line  # noqa: E402

MAX_BYTES = 300_000
SUITE_FILES = ("summary.md", "summary.csv", "losses.png", "total_loss.png", "layers.png")  # layers.png: some suites
SKIPPED_RUN_FIGURES = ("losses.png",)  # the suite's loss figures show every seed


def copy_small_png(source, target, max_bytes=MAX_BYTES):
    """Copy a PNG, shrinking it step by step until it is under `max_bytes`."""
    image = Image.open(source)
    scale = 1.0
    while True:
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image.resize(size, Image.LANCZOS).save(target, optimize=True)
        if target.stat().st_size <= max_bytes or scale < 0.2:
            return
        scale *= 0.8


def samples_side_by_side(figures, target):
    """One row of the variants' sample grids ({variant: samples.png}), titled by variant."""
    fig, axes = plt.subplots(1, len(figures), figsize=(3.2 * len(figures), 3.5), squeeze=False)
    for ax, (variant, path) in zip(axes[0], figures.items()):
        ax.imshow(Image.open(path))
        ax.set_title(variant)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(target, dpi=150, bbox_inches="tight")
    plt.close(fig)
    copy_small_png(target, target)


def feature_network_info(feature_nets, params, prefix=""):
    """The `info.json` of the feature network (prefix "judge_": the judge, which scored the samples) of runs
    with these `params`, or None."""
    training = params["training"]
    name = prefix + Path(training["dataset"]).name + (f"_limit{training['limit']}" if training.get("limit") else "")
    path = Path(feature_nets) / name / "info.json"
    return path if path.is_file() else None


def judged_runs(run_dirs):
    """Whether the runs' samples were scored by the judge (an `eval.json` entry names it), not by the feature
    network, as runs scored before the judge were."""
    entries = [e for d in run_dirs if (Path(d) / "eval.json").is_file()
               for e in json.loads((Path(d) / "eval.json").read_text()).values()]
    return any("judge" in e for e in entries)


def wall_seconds(log):
    """The suite's wall time from the runner's last "N of M runs finished; S s in all" line, or None."""
    found = re.findall(r"runs finished; (\d+) s in all", Path(log).read_text(errors="replace")) if log else []
    return int(found[-1]) if found else None


def publish(suite_dir, out, command, log=None, feature_nets=Path("run") / "feature_nets"):
    """Write `out` from `suite_dir`; returns the README text."""
    suite_dir, out = Path(suite_dir), Path(out)
    summary = pd.read_csv(suite_dir / "summary.csv")
    finished = summary[summary["status"] == "finished"]
    if finished.empty:
        raise SystemExit(f"{suite_dir} has no finished run to publish")
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name in SUITE_FILES:
        if not (suite_dir / name).is_file() and name == "layers.png":
            continue
        if name.endswith(".png"):
            copy_small_png(suite_dir / name, out / name)
        else:
            shutil.copyfile(suite_dir / name, out / name)
    samples = {}
    for variant, rows in finished.groupby("variant", sort=False):
        run_dir = suite_dir / rows.sort_values("seed").iloc[0]["run_dir"]
        for figure in sorted((run_dir / "viz").glob("*.png")):
            if figure.name not in SKIPPED_RUN_FIGURES:
                copy_small_png(figure, out / "figures" / f"{variant}_{figure.name}")
        if (run_dir / "viz" / "samples.png").is_file():
            samples[variant] = run_dir / "viz" / "samples.png"
    if samples:
        samples_side_by_side(samples, out / "samples.png")
    run_params = [json.loads((suite_dir / d / "params.json").read_text()) for d in finished["run_dir"]]
    params = run_params[0]
    commits = sorted({p.get("git_commit") or "?" for p in run_params})
    resumed_with = sorted({r.get("git_commit") or "?" for p in run_params for r in p.get("resumes", [])
                           if "git_commit" in r} - set(commits))
    seconds = wall_seconds(log)
    training = params["training"]
    scored = "test_frechet_distance" in summary
    judged = scored and judged_runs([suite_dir / d for d in finished["run_dir"]])
    infos = {"feature_network.json": feature_network_info(feature_nets, params) if scored else None,
             "judge.json": feature_network_info(feature_nets, params, "judge_") if judged else None}
    for target, info in infos.items():
        if info:
            shutil.copyfile(info, out / target)
    text = "\n".join([
        f"# {out.name}: measured results", "",
        "```bash", command, "```", "",
        f"- Runs: {len(finished)} of {len(summary)} finished; variants {', '.join(finished['variant'].unique())}; "
        f"seeds {', '.join(map(str, sorted(finished['seed'].unique())))}.",
        f"- Epochs: {int(finished['epochs'].max())}; batch {training['batch_size']}, Adam at {training['lr']}.",
        f"- Data: `{training['dataset']}`" + (f" with `--limit {training['limit']}`" if training.get("limit") else "")
        + (f", {params.get('n_train')} training, {params['n_val']} validation (held out of the training images) and "
           if params.get("validation", {}).get("source") == "training images"
           else f", {params.get('n_train')} training (validated on the test images) and ")
        + f"{params.get('n_test')} test images.",
        f"- Wall time: {seconds} s for the whole command (training, scoring and figures)" if seconds is not None
        else f"- Training time (sum over runs, training steps only): {finished['train_seconds'].sum():.0f} s",
        f"- Machine: {machine_line(machine_info()).removeprefix('machine: ')}; no GPU.",
        "- Software: " + ", ".join(f"{k} {v}" for k, v in params.get("versions", {}).items()),
        f"- Code: git commit {', '.join(commits)}"
        + (f"; resumed or extended with {', '.join(resumed_with)}" if resumed_with else "") + ".", "",
        "Files: `summary.md` (statistics, paired differences, the study's claims), `summary.csv` (a row per run), "
        "`losses.png`, `total_loss.png` (means over seeds with min–max bands), "
        + ("`layers.png` (figures per latent layer, means over seeds with 95 % CIs), " if (out / "layers.png").is_file()
           else "")
        + ("`samples.png` (each variant's seed-0 samples), " if samples else "")
        + ("`judge.json` (the classifier that scored the samples: its test accuracy and the distances' scale), "
           if infos["judge.json"] else "")
        + ("`feature_network.json` (the classifier the DFC-VAE trains against" + ("" if judged else
           ", which also scored these runs' samples: its test accuracy and the Fréchet distance's scale")
           + "), " if infos["feature_network.json"] else "")
        + "and in `figures/` the seed-0 run's figures for each variant.", ""])
    (out / "README.md").write_text(text)
    return text


def main(argv=None):
    """Parse the arguments and publish."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("suite_dir")
    p.add_argument("out")
    p.add_argument("--command", required=True, help="the exact command that made the suite")
    p.add_argument("--log", help="the runner's output, for the wall time")
    p.add_argument("--feature-nets", default=Path("run") / "feature_nets",
                   help="where the feature networks that scored the runs are kept (default run/feature_nets)")
    args = p.parse_args(argv)
    print(publish(args.suite_dir, args.out, args.command, args.log, args.feature_nets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
