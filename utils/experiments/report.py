"""What a suite's runs say: `summary.csv` (one row per run), `summary.md` (statistics over seeds and
paired differences, with a plain reading), the study's loss figures, `losses.png` and `total_loss.png`,
and, where the runs score each latent layer, `layers.png`. Every compared figure of a row comes from the
run's best epoch, the checkpoint its test figures score; the last epoch's values stay in summary.csv."""

import math
import os
import re

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import pandas as pd

from utils.runs import health, layout
from utils.atomic import write_text
from utils.analysis.plots import TERM_LABELS, TRAIN_STYLE, VAL_STYLE, loss_terms, save_figure
from utils.analysis.stats import estimate, paired_difference, t975
from utils.experiments.claims_report import claims_section
from utils.experiments.markdown import ci as _ci, num as _num, p_is, pvalue, units_sentence, validation_note
from utils.experiments.suite import plural
from utils.experiments.scoring import scores
from utils.runs.settings import TrainSettings, steps_per_epoch

COLUMNS = ["variant", "seed", "status", "validated_on", "epochs", "final_val_loss", "best_val_loss", "best_epoch"]
TAIL_COLUMNS = ["train_seconds", "run_dir"]
# The test figures compared in summary.md, from eval.json (utils/experiments/scoring.py): pixel error, the
# model's own objective, a likelihood (bits/dim; nats per image), and the scores of samples on a judge network.
SCORES = ("test_pixel_mse", "test_loss", "test_bpd", "test_nll", "test_elbo", "active_units",
          "test_frechet_distance", "test_kid", "test_reconstruction_accuracy", "test_class_entropy")
OBJECTIVES = ("test_loss",)  # test figures in the model's own loss: comparable only between runs of one loss
LEGACY_VALIDATION = {"source": "test images"}  # run folders made before the validation split
STUDY_LOSS = "1000 × pixel MSE + KL"  # what run folders made before `loss_formula` was recorded used
STUDY_EPOCHS = 200
BAND = "min–max over seeds"


def collect(request, folders):
    """(summary frame with a row per requested run, {variant: {seed: history}} of the finished ones).

    Unfinished, damaged (utils/runs/health.py) or missing runs get a row with their status and no numbers; `run_dir` is relative to the
    suite folder (`../pool_…/NNNN_…`), so a tree of suites and pools can be moved as a whole.
    """
    existing = folders.runs()
    rows, histories = [], {}
    for variant, seed in request.keys():
        row = {"variant": variant, "seed": seed, "status": "missing"}
        if (variant, seed) in existing:
            run_dir, params = existing[(variant, seed)]
            row.update(status=params.get("status"), validated_on=validation_source(params),
                       run_dir=os.path.relpath(run_dir, folders.suite))
            found = health.check_run(run_dir)
            if found.state == "damaged":
                row["status"] = "damaged: " + "; ".join(map(str, found.damage))
                rows.append(row)
                continue
            history = _read_history(run_dir / layout.HISTORY)
            if params.get("status") == "finished" and len(history):
                histories.setdefault(variant, {})[seed] = history
                row.update(_figures(history, params), **scores(run_dir))
        rows.append(row)
    extra = [c for row in rows for c in row if c not in COLUMNS + TAIL_COLUMNS]
    return pd.DataFrame(rows, columns=COLUMNS + list(dict.fromkeys(extra)) + TAIL_COLUMNS), histories


def _read_history(path):
    # Not utils.callbacks.read_history: that module imports Keras, whose TensorFlow start-up chatter
    # would land in the output of a process that trains nothing.
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def validation_source(params):
    """What a run was validated on (its best epoch chosen on): params.json's `validation` source."""
    return (params.get("validation") or LEGACY_VALIDATION).get("source", LEGACY_VALIDATION["source"])


def _figures(history, params):
    last, best = history.iloc[-1], layout.best_row(history, params)
    terms = ["loss", *loss_terms(history)]
    keys = [k for k in [f"val_{t}" for t in terms] + terms if k in history]
    return {"epochs": int(last["epoch"]), "best_epoch": int(best["epoch"]),
            "optimizer_steps": optimizer_steps(int(last["epoch"]), params),
            "train_seconds": float(history["train_seconds"].sum()),
            **{f"final_{k}": float(last[k]) for k in keys}, **{f"best_{k}": float(best[k]) for k in keys}}


def optimizer_steps(epochs, params):
    """Optimizer steps in `epochs` epochs of a run (None for folders that did not record their image count)."""
    n_train = params.get("n_train")
    if not n_train:
        return None
    return epochs * steps_per_epoch(n_train, params["training"].get("batch_size", TrainSettings.batch_size))


def metrics_of(frame):
    """The compared figures: the best epoch's val_loss and each validation loss term, then the test scores."""
    terms = [c.removeprefix("best_") for c in frame.columns if c.startswith("best_val_") and c != "best_val_loss"]
    return ["val_loss", *terms, *(s for s in SCORES if s in frame and frame[s].notna().any())]


def _column(metric):
    return metric if metric in SCORES else f"best_{metric}"


def _is_objective(metric):
    return metric not in SCORES or metric in OBJECTIVES


def by_seed(frame, variant, metric):
    """{seed: value of `metric`} of a variant's finished runs: the best epoch's for losses."""
    column = _column(metric)
    if column not in frame:
        return {}
    rows = frame[(frame["variant"] == variant) & frame[column].notna()]
    return dict(zip(rows["seed"], rows[column]))


def variant_table(frame, request):
    """Markdown: per variant, mean ± sd and 95 % CI over seeds of each best-epoch validation loss and test score."""
    metrics = metrics_of(frame)
    lines = ["| variant | seeds | " + " | ".join(f"{m} mean ± sd | 95 % CI" for m in metrics) + " |",
             "|---|---:|" + "---:|---|" * len(metrics)]
    for variant in request.variants:
        cells = []
        for metric in metrics:
            est = estimate(by_seed(frame, variant, metric).values())
            cells += [f"{_num(est.mean)} ± {_num(est.sd)}" if est.n > 1 else _num(est.mean), _ci(est)]
        n = len(by_seed(frame, variant, "val_loss"))
        lines.append(f"| {variant} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(frame, request, losses=None):
    """Markdown: each variant minus the reference variant, seed by seed, with its 95 % CI and paired t-test
    p; losses of variants whose loss differs from the reference's (`losses`: variant -> description) are
    left out."""
    ref = request.reference
    lines = [f"| variant | metric | pairs | mean difference (variant − {ref}) | 95 % CI | p | excludes 0 |",
             "|---|---|---:|---:|---|---:|---|"]
    for variant in request.variants:
        if variant == ref:
            continue
        same_loss = not losses or losses.get(variant) == losses.get(ref)
        for metric in metrics_of(frame):
            est = paired_difference(by_seed(frame, variant, metric), by_seed(frame, ref, metric))
            if est.n == 0 or (_is_objective(metric) and not same_loss):
                continue
            verdict = ("yes" if est.excludes_zero else "no") if est.has_ci else "—"
            lines.append(f"| {variant} | {metric} | {est.n} | {_num(est.mean, signed=True)} | {_ci(est)} | "
                         f"{pvalue(est.p_value)} | {verdict} |")
    return "\n".join(lines)


def reading(frame, request, losses=None):
    """A plain-language reading of the summary, honest about what runs this short or few can show."""
    ref, notes, settings = request.reference, [], request.settings
    if settings.epochs < STUDY_EPOCHS:
        notes.append(f"These runs are {plural(settings.epochs, 'epoch')} long; the study "
                     f"trains {STUDY_EPOCHS}. They describe early training, and the order of the variants "
                     "can change as training goes on.")
    if settings.dataset != "mnist" or settings.limit:
        data = f"the first {settings.limit} training images of " if settings.limit else ""
        notes.append(f"They use {data}{settings.dataset}, not the study's full MNIST, so the loss values are "
                     "not comparable with the study's numbers; only the comparison between variants is.")
    if request.seeds == 1:
        notes.append("With one seed per variant there is no estimate of seed-to-seed noise, so no difference "
                     "below can be told apart from chance (the study has the same limitation).")
    else:
        notes.append(f"With {request.seeds} seeds the 95 % intervals use t(0.975, {request.seeds - 1}) = "
                     f"{t975(request.seeds - 1):.3g}, so they are wide; an interval that includes zero means "
                     f"no difference from {ref} was detected at these seeds, not that the two are equal: "
                     "differences inside the interval remain possible.")
        comparisons = len(metrics_of(frame)) * (len(request.variants) - 1)
        if comparisons > 1:
            notes.append(f"The paired table makes {comparisons} comparisons, its p-values not adjusted for their "
                         "number; at 95 % about one in 20 intervals excludes zero by chance alone, so one such "
                         "interval among many is weak evidence (the claims' verdicts, where the suite tests any, "
                         "adjust for theirs).")
    # Losses of different objectives are not comparable; what every family shares is the pixel error.
    metric = "val_loss" if len(set((losses or {}).values())) <= 1 else "test_pixel_mse"
    for variant in request.variants:
        if variant != ref:
            notes.append(_compare(frame, variant, ref, metric))
    means = {v: estimate(by_seed(frame, v, metric).values()).mean for v in request.variants}
    means = {v: m for v, m in means.items() if math.isfinite(m)}
    if means:
        notes.append(f"Lowest mean {_metric_name(metric)}: {min(means, key=means.get)}"
                     + (" (see above whether that is more than noise)." if len(means) > 1 else "."))
    return "\n".join(f"- {note}" for note in notes)


def _metric_name(metric):
    return metric if metric in SCORES else f"best-epoch {metric}"


def _compare(frame, variant, ref, metric="val_loss"):
    est = paired_difference(by_seed(frame, variant, metric), by_seed(frame, ref, metric))
    if est.n == 0:
        return f"{variant}: no finished pair of runs with {ref} to compare on {metric}."
    ref_mean = estimate(by_seed(frame, ref, metric).values()).mean
    direction = "lower" if est.mean < 0 else "higher"
    size = f"{abs(est.mean):.3g} ({abs(est.mean) / ref_mean:.1%})"
    if not est.has_ci:
        return (f"{variant}: {_metric_name(metric)} {size} {direction} than {ref} in the single pair of runs; "
                "no interval can be computed from one pair.")
    interval = f"[{_num(est.low, True)}, {_num(est.high, True)}]"
    verdict = (f"95 % CI {interval} excludes zero ({p_is(est.p_value)}, not adjusted): at these settings the "
               "difference is larger than the seed noise" if est.excludes_zero else
               "95 % CI includes zero: no difference detected at these seeds; the interval rules out differences "
               f"beyond {interval}")
    return (f"{variant}: {_metric_name(metric)} {size} {direction} than {ref} on average over {est.n} paired "
            f"seeds; {verdict}.")


def loss_description(params):
    """What a run's loss is, as its params.json records it (`loss_formula`, written by the model)."""
    return params.get("loss_formula") or (STUDY_LOSS if params.get("model", {}).get("loss", "mse") == "mse"
                                          else f"{params['model']['loss']} + KL")


def _budget(request):
    steps = request.settings.steps
    return f" (the fewest that make {steps} optimizer steps, `--steps {steps}`)" if steps else ""


def summary_markdown(frame, request, n_images=None, losses=()):
    """The whole `summary.md`: settings, the tables, the reading and the claims; `n_images`: (training,
    validation or None where the test images validated, test); `losses`: each variant's loss."""
    finished = frame["best_val_loss"].notna()
    not_done = frame[~finished]
    limit = f" --limit {request.settings.limit}" if request.settings.limit else ""
    ref_note = "" if request.reference == "base_lrelu" else " (base_lrelu is not in this suite, so the first variant)"
    parts = [
        f"# Suite `{request.suite}` on {request.settings.dataset}",
        f"Settings: {plural(len(request.variants), 'variant')} × {plural(request.seeds, 'seed')} "
        f"(0–{request.seeds - 1}), {plural(request.settings.epochs, 'epoch')}{_budget(request)}{_images(n_images)} "
        f"(`--dataset {request.settings.dataset}{limit}`).",
        f"Runs: {int(finished.sum())} of {len(frame)} finished."
        + "".join(f"\n- {r.variant} seed {r.seed}: {r.status}" for r in not_done.itertuples()),
        validation_note(frame[finished]),
        "Every compared value of a run comes from its best epoch (lowest validation loss, counted from "
        "`best_from_epoch`), the checkpoint whose weights the test figures score; summary.csv keeps the last "
        "epoch's values too (`final_*`), for reference. Mean ± sample standard deviation over seeds; 95 % CI = "
        "mean ± t(0.975, n − 1) · sd / √n (Student t), undefined with one seed; p: two-sided paired t-test. "
        + " ".join(x for x in (_losses_sentence(losses), units_sentence(frame[finished])) if x),
        "## Best-epoch validation losses and test scores per variant", variant_table(frame, request),
        f"## Paired differences against {request.reference}{ref_note}",
        "Each variant minus the reference, seed by seed (same seeds, same data order), then the "
        "mean and 95 % CI of those differences. Negative means lower loss than the reference.",
        paired_table(frame, request, losses) if len(request.variants) > 1 else "(only one variant: nothing to compare)",
        "## What these runs can show", reading(frame, request, losses),
        f"Figures: `losses.png` (log reconstruction and KL loss) and `total_loss.png`; lines are means over "
        f"seeds, bands {BAND}.",
        *claims_section(lambda v, m: by_seed(frame, v, m), request),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _images(n_images):
    if not n_images:
        return ""
    train, val, test = n_images
    return (f", {train} training / {test} test images" if val is None
            else f", {train} training / {val} validation (held out of the training images) / {test} test images")


def _losses_sentence(losses):
    kinds = sorted(set(losses.values())) if losses else []
    if len(kinds) == 1:
        return f"Every run's loss is {kinds[0]}."
    if not kinds:
        return ""
    return ("The variants' losses differ, so their loss values are not comparable with each other: "
            + "; ".join(f"{v}: {d}" for v, d in losses.items())
            + ". Compare them on `test_pixel_mse` (and, for VAEs, `test_nll`).")


def plot_suite_curves(histories, panels, title):
    """Per variant (one colour) the mean over seeds of each panel's loss, training thick and validation
    thin and light, with a min–max band over seeds; log scale."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.3), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (key, label) in zip(axes[0], panels):
        for i, (variant, seeds) in enumerate(histories.items()):
            for prefix, style, alpha in (("", TRAIN_STYLE, 0.2), ("val_", VAL_STYLE, 0.08)):
                table = pd.concat({s: h.set_index("epoch")[prefix + key] for s, h in seeds.items()}, axis=1)
                ax.plot(table.index, table.mean(axis=1), color=colours(i % 10), label=None if prefix else variant,
                        marker="o" if len(table) == 1 else None, **style)
                if table.shape[1] > 1 and len(table) > 1:
                    ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=colours(i % 10),
                                    alpha=alpha, linewidth=0)
                elif table.shape[1] > 1:  # one epoch: a band has no width, so a vertical bar instead
                    ax.vlines(table.index, table.min(axis=1), table.max(axis=1), color=colours(i % 10),
                              alpha=2 * alpha, linewidth=6)
        ax.set(yscale="log", xlabel="epoch", ylabel=f"{label} (log scale)", title=label)
        epochs = sorted({e for seeds in histories.values() for h in seeds.values() for e in h["epoch"]})
        if len(epochs) < 10:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="grey", **TRAIN_STYLE), plt.Line2D([], [], color="grey", **VAL_STYLE)]
    labels += ["training (thick)", "validation (thin, light)"]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    counts = sorted({len(seeds) for seeds in histories.values()})
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    fig.suptitle(f"{title}: mean of {n} seed{'s' if counts[-1] > 1 else ''}"
                 + (f", band = {BAND}" if counts[-1] > 1 else ""))
    fig.tight_layout()
    return fig


LAYER_COLUMN = re.compile(r"^(?:test_)?(.+)_layer(\d+)$")  # e.g. test_kl_layer2: a figure of latent layer 2


LAYER_TITLES = {"active_units": "active units (posterior-mean variance > 0.01)",
                "active_units_kl": "active units (mean KL > 0.01 nats)", "kl": "KL of the layer (nats)"}


def layer_figures(frame):
    """{figure name: {layer: column}} of the summary's per-layer columns (`<name>_layer<i>`)."""
    found = {}
    for column in frame.columns:
        match = LAYER_COLUMN.match(column)
        if match and frame[column].notna().any():
            found.setdefault(match[1], {})[int(match[2])] = column
    return {name: dict(sorted(layers.items())) for name, layers in found.items()}


def plot_layer_bars(frame, request, title):
    """One panel per per-layer figure (active units, KL, ...): a group of bars per latent layer, one bar
    per variant, the mean over seeds with its 95 % CI; None when no run scores its layers."""
    figures = layer_figures(frame)
    if not figures:
        return None
    fig, axes = plt.subplots(1, len(figures), figsize=(5 * len(figures), 3.6), squeeze=False)
    width = 0.8 / len(request.variants)
    for ax, (name, layers) in zip(axes[0], figures.items()):
        for k, variant in enumerate(request.variants):
            rows = frame[frame["variant"] == variant]
            ests = {layer: estimate(rows[column]) for layer, column in layers.items()}
            ests = {layer: e for layer, e in ests.items() if e.n}
            if not ests:
                continue
            x = [layer + (k - (len(request.variants) - 1) / 2) * width for layer in ests]
            err = [[e.mean - e.low if e.has_ci else 0 for e in ests.values()],
                   [e.high - e.mean if e.has_ci else 0 for e in ests.values()]]
            ax.bar(x, [e.mean for e in ests.values()], width, yerr=err, capsize=2, label=variant)
        ax.set_xticks(list(layers), [f"z_{layer}" for layer in layers])
        ax.set_title(LAYER_TITLES.get(name, name.replace("_", " ")))
        ax.set_xlabel("latent layer (1: next to the data)")
    axes[0][0].legend(frameon=False)
    fig.suptitle(f"{title}: mean over seeds, 95 % CI")
    fig.tight_layout()
    return fig


def write_report(request, folders):
    """Write summary.csv, summary.md, losses.png, total_loss.png (and layers.png) into the suite folder;
    returns the summary frame. Figures are left out while no run has finished."""
    suite_dir = folders.suite
    frame, histories = collect(request, folders)
    write_text(suite_dir / "summary.csv", frame.to_csv(index=False))
    n_images, losses = None, {}
    finished = frame[frame["best_val_loss"].notna()]
    for row in finished.itertuples():
        params = layout.read_params(suite_dir / row.run_dir)
        validation = params.get("n_val") if "validation" in params else None  # earlier runs: the test images
        n_images = (params.get("n_train"), validation, params.get("n_test"))
        losses.setdefault(row.variant, loss_description(params))
    write_text(suite_dir / "summary.md", summary_markdown(frame, request, n_images, losses))
    if histories:
        title = f"{request.suite} on {request.settings.dataset}"
        first = next(iter(next(iter(histories.values())).values()))
        terms = [t for t in loss_terms(first) if all(t in h for seeds in histories.values() for h in seeds.values())]
        save_figure(plot_suite_curves(histories, [(t, TERM_LABELS.get(t, t)) for t in terms or ["loss"]], title),
                    suite_dir / "losses.png")
        save_figure(plot_suite_curves(histories, [("loss", "total loss")], title), suite_dir / "total_loss.png")
        layers = plot_layer_bars(frame, request, title)
        if layers is not None:
            save_figure(layers, suite_dir / "layers.png")
    return frame
