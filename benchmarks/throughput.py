"""Training throughput of the study's variants against a plain-Keras reference VAE, timed side by side.

    python -m benchmarks.throughput                     # batches 32 and 128, ~3 minutes on 2 CPU cores
    python -m benchmarks.throughput --batch-size 32 --contenders reference base_lrelu base_lrelu:jit --no-memory

A contender is `reference` (benchmarks/reference_vae.py) or a preset of models/presets.py,
optionally with `:`-separated options: `tfdata` (TensorFlow only: feed a cached, shuffled, prefetched tf.data
pipeline instead of the NumPy arrays a run feeds), `jit` / `nojit` (XLA for the whole step), `spe<N>` (steps
per execution), `mixed` (mixed precision: bfloat16 on CPU, float16 on GPU), `FIELD=VALUE` (a model setting
field, e.g. `norm=batch`).
Contenders take turns (A B C, then C B A, ...) for --rounds
rounds after a warm-up; every figure is a median over rounds, and every ratio the median of per-round
ratios, because the machines are shared and noisy. The race runs on the Keras backend of the process
(`KERAS_BACKEND`); `--backends tensorflow jax torch` runs one process per backend and adds a table of
their images/s side by side.

How steps are timed: `model.fit` on the full training set for --steps steps (the same train_function,
data adapter and callbacks path as a real run), with a callback that reads the clock at the end of
each executed step; the rate counts the steps after the first one (which holds tracing and the data
pipeline's start; that start is reported on its own as `start s`). FLOPs are counted analytically
from layer shapes (Conv2D, Conv2DTranspose, Dense; elementwise work not counted); a training step
counts 3x the forward pass (forward, input gradient, weight gradient).
"""

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from utils import startup  # noqa: E402

startup.start()  # as the commands start: the XLA vector width, a quiet start

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from keras import layers  # noqa: E402

from benchmarks.machine import CpuMeter, machine_info, machine_line  # noqa: E402
from benchmarks.reference_vae import build_reference  # noqa: E402
from models import model_config  # noqa: E402
from models.architectures import ConvArchitecture  # noqa: E402
from models.VAE import VAEObjective  # noqa: E402
from utils.data.loaders import load_dataset  # noqa: E402
from models.presets import PRESETS, preset_settings  # noqa: E402
from utils.runs import layout, provenance  # noqa: E402
from utils.training import callbacks as cb  # noqa: E402
from utils.training import device  # noqa: E402
from utils.training.figures import draw_figures  # noqa: E402
from utils.training.run import build_model, compile_model  # noqa: E402
from utils.runs.settings import TrainSettings  # noqa: E402
from utils.training.device import resolve_settings  # noqa: E402

DEFAULT_CONTENDERS = ["reference", "base_lrelu", "gelu_full", "gelu_full_bn_before", "base_lrelu:tfdata"]
EPOCH_IMAGES = 60_000


@dataclass
class Contender:
    """One model and way of training it: `reference` or a preset, with the speed options of its name."""

    name: str
    preset: str | None  # None: the plain-Keras reference
    feed: str = "numpy"
    jit: bool | None = None  # None: utils/training.py's per-device default
    steps_per_execution: int | None = None
    mixed_precision: bool = False
    overrides: dict = field(default_factory=dict)  # model settings on top of the preset


CONFIG_FIELDS = {f.name: type(f.default) for cls in (ConvArchitecture, VAEObjective) for f in dataclasses.fields(cls)
                 if not isinstance(f.default, tuple)}


def parse_contender(name):
    """`reference`, `PRESET` or `PRESET:opt:...` (tfdata, jit, nojit, spe<N>, mixed, FIELD=VALUE) as a Contender."""
    head, *options = name.split(":")
    if head != "reference" and head not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown contender {head!r}: use reference or one of {', '.join(PRESETS)}")
    contender = Contender(name, None if head == "reference" else head)
    for option in options:
        if option == "tfdata":
            contender.feed = "tfdata"
        elif option in ("jit", "nojit") and contender.preset:
            contender.jit = option == "jit"
        elif option.startswith("spe") and option[3:].isdigit() and int(option[3:]) > 0 and contender.preset:
            contender.steps_per_execution = int(option[3:])
        elif option == "mixed" and contender.preset:
            contender.mixed_precision = True
        elif option.partition("=")[0] in CONFIG_FIELDS and contender.preset:
            key, _, value = option.partition("=")
            contender.overrides[key] = CONFIG_FIELDS[key](value)
        else:
            raise argparse.ArgumentTypeError(f"unknown option {option!r} in {name!r} (the reference takes tfdata only)")
    return contender


def build(contender, batch_size, image_shape):
    """The contender's model, compiled as a real run compiles it (utils/training.py's `_train`)."""
    if contender.preset is None:
        return build_reference(image_shape)
    settings = resolve_settings(TrainSettings(
        dataset="fashion_mnist", batch_size=batch_size, seed=0, jit=contender.jit,
        mixed_precision=contender.mixed_precision, steps_per_execution=contender.steps_per_execution))
    config = model_config(**{**preset_settings(contender.preset), **contender.overrides}).for_images(image_shape)
    model = build_model(config, settings)
    keras.config.set_dtype_policy("float32")  # build_model sets it globally; the next contender starts clean
    compile_model(model, settings)
    return model


def feed(kind, x, batch_size):
    """`fit`'s data arguments: NumPy arrays shuffled by fit (what a run does), or a tf.data pipeline."""
    if kind == "numpy":
        return {"x": x, "batch_size": batch_size, "shuffle": True}
    import tensorflow as tf  # the tfdata option is TensorFlow's

    dataset = (tf.data.Dataset.from_tensor_slices(x).cache().shuffle(len(x), seed=0)
               .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return {"x": dataset, "shuffle": False}  # the pipeline shuffles itself


class StepClock(keras.callbacks.Callback):
    """The clock and step index at the end of every executed step (or group of steps)."""

    def on_train_begin(self, logs=None):
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        self.marks.append((time.perf_counter(), batch))


def time_fit(model, data_args, steps, batch_size):
    """Images/s over all steps after the first, and seconds from `fit` to the end of the first step."""
    clock = StepClock()
    start = time.perf_counter()
    model.fit(**data_args, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    (t0, b0), (t1, b1) = clock.marks[0], clock.marks[-1]
    return (b1 - b0) * batch_size / (t1 - t0), t0 - start


def race(contenders, x, batch_size, steps, rounds):
    """Per contender: images/s and start seconds of each round; warm-up first, then alternating turns."""
    entrants = {}
    for c in contenders:
        model = build(c, batch_size, x.shape[1:])
        data_args = feed(c.feed, x, batch_size)
        spe = c.steps_per_execution or getattr(model, "steps_per_execution", 1) or 1
        time_fit(model, data_args, 3 * spe, batch_size)  # traces the step; oneDNN primitives get cached
        entrants[c.name] = (model, data_args, max(steps // spe, 3) * spe)
    results = {c.name: {"rate": [], "start": []} for c in contenders}
    for r in range(rounds):
        for c in (contenders if r % 2 == 0 else contenders[::-1]):
            rate, start_s = time_fit(*entrants[c.name], batch_size)
            results[c.name]["rate"].append(rate)
            results[c.name]["start"].append(start_s)
    return results, {name: model for name, (model, _, _) in entrants.items()}


def leaf_layers(model):
    """Every layer of a model, nested models opened up."""
    for layer in model.layers:
        yield from leaf_layers(layer) if isinstance(layer, keras.Model) else [layer]


def forward_flops(model):
    """FLOPs (2 per multiply-add) of one image's forward pass through the Conv2D(Transpose)/Dense layers."""
    total = 0
    for layer in leaf_layers(model):
        if isinstance(layer, layers.Conv2DTranspose):  # every input pixel meets every weight once
            total += 2 * np.prod(layer.input.shape[1:3]) * np.prod(layer.kernel.shape)
        elif isinstance(layer, layers.Conv2D):  # every output pixel meets every weight once
            total += 2 * np.prod(layer.output.shape[1:3]) * np.prod(layer.kernel.shape)
        elif isinstance(layer, layers.Dense):
            total += 2 * np.prod(layer.kernel.shape)
    return int(total)


def matmul_peak_gflops(n=2048, repeats=10):
    """The best fp32 GFLOP/s of an n x n matmul on the backend: the machine's practical peak for this work."""
    rng = np.random.default_rng(0)
    a, b = (keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype="float32")) for _ in range(2))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])  # waits for the result, on every backend
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def summarize(results, flops, peak, reference="reference", base="base_lrelu"):
    """Rows of the table: median images/s, per-round ratios to the reference and to base_lrelu, % of peak."""
    rows = []
    for name, r in results.items():
        rate = float(np.median(r["rate"]))
        row = {"contender": name, "images_s": rate, "spread_pct": 100 * (max(r["rate"]) - min(r["rate"])) / rate,
               "start_s": float(np.median(r["start"]))}
        for key, other in (("vs_reference", reference), ("vs_base_lrelu", base)):
            if other in results:
                row[key] = float(np.median(np.divide(r["rate"], results[other]["rate"])))
        row["gflop_s"] = rate * 3 * flops[name] / 1e9
        row["pct_peak"] = 100 * row["gflop_s"] / peak
        rows.append(row)
    return rows


def print_table(batch_size, rows, steps, rounds):
    """The race's table, one line per contender."""
    print(f"\nbatch {batch_size}: median of {rounds} rounds x {steps} steps")
    print(f"{'contender':28s} {'images/s':>9s} {'spread':>7s} {'vs ref':>7s} {'vs base':>8s} "
          f"{'GFLOP/s':>8s} {'% peak':>7s} {'start s':>8s}")
    for r in rows:
        ratio = lambda k: f"{r[k]:.2f}x" if k in r else "-"  # noqa: E731
        print(f"{r['contender']:28s} {r['images_s']:9.0f} {r['spread_pct']:6.0f}% {ratio('vs_reference'):>7s} "
              f"{ratio('vs_base_lrelu'):>8s} {r['gflop_s']:8.1f} {r['pct_peak']:6.0f}% {r['start_s']:8.2f}")


def time_run_end(model, data):
    """Seconds to encode the test set (evaluation), and for a run's end: draw_figures + save_models."""
    start = time.perf_counter()
    model.latent_means(data.x_test)
    evaluation = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        for sub in (layout.VIZ, layout.MODELS):
            (Path(tmp) / sub).mkdir()
        epochs = np.arange(1, 201)  # a 200-epoch history, so the loss figure is drawn too
        pd.DataFrame({c: epochs if c == "epoch" else 50 + 10 / epochs for c in cb.history_columns(model.term_names())}).to_csv(
            Path(tmp) / layout.HISTORY, index=False)
        start = time.perf_counter()
        draw_figures(model, data, tmp)
        cb.export_models(model, tmp)
        run_end = time.perf_counter() - start
    return evaluation, run_end


def training_peak_rss():
    """Peak RSS (MiB), train seconds and wall seconds of `train_vae.py` for 1 epoch of Fashion-MNIST."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "train_vae.py"), "--dataset", "fashion_mnist",
                               "--epochs", "1", "--seed", "0", "--run-root", tmp],
                              cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(f"train_vae.py failed:\n{proc.stderr[-2000:]}")
        run_dir = Path(proc.stdout.strip().splitlines()[-1])
        train_seconds = float(cb.read_history(run_dir / layout.HISTORY)["train_seconds"].iloc[0])
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "train_seconds": train_seconds, "images_s": EPOCH_IMAGES / train_seconds, "wall_seconds": wall}


def machine():
    """The machine (benchmarks/machine.py: CPU vendor, model, ISA flags), GPUs and versions."""
    return {**machine_info(), "gpus": device.gpu_names(), **provenance.versions()}


def check_targets(tables, run_end):
    """The issue's targets as (description, measured value or None where not run, met)."""
    def cell(batch, name, key):
        row = next((r for r in tables.get(batch, []) if r["contender"] == name), None)
        return None if row is None else row.get(key)

    floors = [(f"base_lrelu >= 1.0x reference at batch {b}", cell(b, "base_lrelu", "vs_reference"), 1.0)
              for b in tables]
    gelu = sorted({r["contender"] for rows in tables.values() for r in rows
                   if r["contender"] in PRESETS and "gelu" in r["contender"]})
    floors += [(f"{name} >= 0.9x base_lrelu at batch {b}", cell(b, name, "vs_base_lrelu"), 0.9)
               for name in gelu for b in (32, 128) if b in tables]
    floors.append(("base_lrelu >= 55% of matmul peak at batch 32", cell(32, "base_lrelu", "pct_peak"), 55.0))
    checks = [(text, value, None if value is None else value >= floor) for text, value, floor in floors]
    if run_end:
        worst = max(r["run_end_pct_epoch"] for r in run_end)
        checks.append(("end-of-run work < 10% of an epoch (worst %)", worst, worst < 10))
    return checks


BACKENDS = ("tensorflow", "jax", "torch")


def race_backends(args):
    """The same race in one process per backend (a backend is chosen once per process); then their
    images/s side by side. Ratios between backends come from different processes, run one after another."""
    import os
    import tempfile

    child = ["--batch-size", *map(str, args.batch_size), "--steps", str(args.steps), "--rounds", str(args.rounds),
             "--contenders", *(c.name for c in args.contenders), "--no-memory"]
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            print(f"\n=== KERAS_BACKEND={backend}", flush=True)
            out = Path(tmp) / f"{backend}.json"
            done = subprocess.run([sys.executable, "-m", "benchmarks.throughput", *child, "--json", str(out)],
                                  cwd=ROOT, env={**os.environ, "KERAS_BACKEND": backend})
            if done.returncode == 0:
                tables[backend] = json.loads(out.read_text())["tables"]
    print("\nimages/s by backend (median of rounds; each backend in its own process):")
    for batch in map(str, args.batch_size):
        print(f"batch {batch}: " + "  ".join(f"{b:>10s}" for b in tables))
        for c in args.contenders:
            cells = [next((r["images_s"] for r in t[batch] if r["contender"] == c.name), float("nan"))
                     for t in tables.values()]
            print(f"  {c.name:26s} " + "  ".join(f"{v:10.0f}" for v in cells))
    if args.json:
        args.json.write_text(json.dumps({"by_backend": tables}, indent=2) + "\n")
    return 0 if len(tables) == len(args.backends) else 1


def main(argv=None):
    """Race the contenders at each batch size, time a run's end and peak memory, print and save it all."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, nargs="+", default=[32, 128], help="one race per size (default 32 128)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per turn (default 30)")
    p.add_argument("--rounds", type=int, default=5, help="turns per contender (default 5)")
    p.add_argument("--contenders", type=parse_contender, nargs="+", metavar="NAME",
                   default=[parse_contender(c) for c in DEFAULT_CONTENDERS],
                   help=f"reference or PRESET[:option...] (default {' '.join(DEFAULT_CONTENDERS)})")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                   help="also train 1 epoch of train_vae.py in a child process for its peak RSS (default on)")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, help="race in one process per Keras backend")
    args = p.parse_args(argv)
    if args.backends:
        return race_backends(args)
    data = load_dataset("fashion_mnist")
    report = {"machine": machine(), "args": {**vars(args), "contenders": [asdict(c) for c in args.contenders],
                                            "json": str(args.json)}}
    matmul_n = 8192 if report["machine"]["gpus"] else 2048  # big enough to keep a GPU busy
    peaks = [matmul_peak_gflops(matmul_n)]
    box = report["machine"]
    backend = box["backend"]
    print(f"{machine_line(box)}; GPUs: {', '.join(box['gpus']) or 'none'}; Keras {box['keras']} on {backend} "
          f"{box.get(backend, '')}")
    tables, models, report["cpu_during_race"] = {}, {}, {}
    for batch_size in args.batch_size:
        with CpuMeter() as meter:  # steal and other processes' load make a race's figures less trustworthy
            results, models = race(args.contenders, data.x_train, batch_size, args.steps, args.rounds)
        report["cpu_during_race"][str(batch_size)] = meter.result
        peaks.append(matmul_peak_gflops(matmul_n))
        flops = {name: forward_flops(model) for name, model in models.items()}
        tables[batch_size] = summarize(results, flops, max(peaks))
        report.setdefault("forward_mflops_per_image", {k: v / 1e6 for k, v in flops.items()})
        print_table(batch_size, tables[batch_size], args.steps, args.rounds)
        print(f"during the race: {meter.summary()} (busy counts every process on the machine)")
    report["matmul_peak_gflops"] = max(peaks)
    print(f"\nmatmul peak (fp32, {matmul_n}^3, best of {len(peaks)} x 10): {max(peaks):.0f} GFLOP/s; "
          "forward MFLOP per image: "
          + ", ".join(f"{k} {v:.1f}" for k, v in report["forward_mflops_per_image"].items()))
    first = tables[args.batch_size[0]]
    run_end = []
    for c in args.contenders:
        if c.preset and c.name == c.preset:  # one per plain preset; the model is the last batch size's
            evaluation, end = time_run_end(models[c.name], data)
            epoch_s = EPOCH_IMAGES / next(r["images_s"] for r in first if r["contender"] == c.name)
            run_end.append({"contender": c.name, "eval_s": evaluation, "run_end_s": end, "epoch_s": epoch_s,
                            "eval_pct_epoch": 100 * evaluation / epoch_s, "run_end_pct_epoch": 100 * end / epoch_s})
            print(f"{c.name}: encode 10k test images {evaluation:.2f} s ({run_end[-1]['eval_pct_epoch']:.1f}% of an "
                  f"epoch of {epoch_s:.1f} s at batch {args.batch_size[0]}); figures + model files {end:.2f} s "
                  f"({run_end[-1]['run_end_pct_epoch']:.1f}%)")
    report.update(tables={str(k): v for k, v in tables.items()}, run_end=run_end)
    if args.memory:
        report["train_vae_1_epoch"] = mem = training_peak_rss()
        print(f"train_vae.py --dataset fashion_mnist --epochs 1: peak RSS {mem['peak_rss_mib']:.0f} MiB, "
              f"{mem['train_seconds']:.1f} s of training ({mem['images_s']:.0f} images/s), "
              f"{mem['wall_seconds']:.0f} s in all")
    report["targets"] = check_targets(tables, run_end)
    print("\ntargets:")
    for text, value, met in report["targets"]:
        print(f"  {'not run' if met is None else 'met    ' if met else 'MISSED '}  {text}"
              + ("" if value is None else f": {value:.2f}"))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
