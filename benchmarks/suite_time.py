"""Where a suite's time goes: a real suite of any checkout, its processes timed phase by phase.

    python -m benchmarks.suite_time                                   # this checkout
    python -m benchmarks.suite_time --repo ../old-checkout            # another one, measured the same way
    python -m benchmarks.suite_time --epochs 10 --seeds 2 --json out.json

Runs `run_experiments.py --suite activations --variants base_lrelu,gelu_full --dataset mnist_5k --jobs 2`
(by default 2 seeds x 3 epochs) of the checkout in a fresh folder, with a `sitecustomize` module on
PYTHONPATH that every Python process of the suite imports at start. It times, without a change to the
code it measures:
- in each training process (train.py): start-up (interpreter, imports, data, model, compile) up to
  `fit`, then per epoch the training steps, validation and the epoch-end callbacks (CSV, best weights,
  backups, the model's exports where the code writes them there), then the end of the run (best
  weights, exports, figures, params.json) up to exit;
- the scoring process (evaluate.py) from start to exit, and the suite's wall time.
It prints those as seconds per run-epoch and the share of the suite's slot time (jobs × wall) spent in
training steps: the figure the suite runner is judged by (≥ 70 % on mnist_5k at --jobs 2).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import machine_info, machine_line

REPO = Path(__file__).resolve().parents[1]

# Imported by every Python process of the suite (PYTHONPATH); writes one JSON file per process at exit.
SITECUSTOMIZE = '''
import atexit, json, os, sys, time
_start = time.time()
_record = {"pid": os.getpid(), "argv": sys.argv[:], "start": _start, "epochs": []}
_folder = os.environ["SUITE_TIME_DIR"]


def _write():
    _record["exit"] = time.time()
    with open(os.path.join(_folder, f"{os.getpid()}.json"), "w") as f:
        json.dump(_record, f)


atexit.register(_write)
if sys.argv and sys.argv[0].endswith("train.py"):
    import keras

    class _First(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            _record["epochs"].append({"begin": time.time()})

        def on_test_begin(self, logs=None):
            _record["epochs"][-1].setdefault("test_begin", time.time())

        def on_test_end(self, logs=None):
            _record["epochs"][-1]["test_end"] = time.time()

        def on_epoch_end(self, epoch, logs=None):
            _record["epochs"][-1]["end_begin"] = time.time()

    class _Last(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            _record["epochs"][-1]["end_end"] = time.time()

    _fit = keras.Model.fit

    def fit(self, *args, **kwargs):
        kwargs["callbacks"] = [_First(), *(kwargs.get("callbacks") or []), _Last()]
        _record["fit_start"] = time.time()
        try:
            return _fit(self, *args, **kwargs)
        finally:
            _record["fit_end"] = time.time()

    keras.Model.fit = fit
'''


def run_suite(repo, folder, seeds, epochs, jobs):
    """Run the suite with the timing hook; returns (wall seconds, [process records])."""
    hook = folder / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    records = folder / "records"
    records.mkdir()
    env = {**os.environ, "SUITE_TIME_DIR": str(records),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(repo / "run_experiments.py"), "--suite", "activations", "--variants",
               "base_lrelu,gelu_full", "--dataset", "mnist_5k", "--seeds", str(seeds), "--epochs", str(epochs),
               "--jobs", str(jobs), "--out", str(folder / "suite")]
    start = time.time()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode:
        raise SystemExit(f"the suite failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall, start, [json.loads(p.read_text()) for p in records.glob("*.json")]


def phases(wall, start, records, jobs):
    """Seconds per phase, summed over the processes of the suite."""
    trainings = [r for r in records if r["argv"] and r["argv"][0].endswith("train.py") and "fit_start" in r]
    scoring = [r for r in records if r["argv"] and r["argv"][0].endswith("evaluate.py")]
    epochs = [e for r in trainings for e in r["epochs"]]
    table = {
        "training steps": sum(e["test_begin"] - e["begin"] for e in epochs),
        "validation": sum(e["test_end"] - e["test_begin"] for e in epochs),
        "epoch-end callbacks (CSV, best weights, backup)": sum(e["end_end"] - e["end_begin"] for e in epochs),
        "start-up (imports, data, model, compile)": sum(r["fit_start"] - r["start"] for r in trainings),
        "end of run (best weights, exports, figures)": sum(r["exit"] - r["fit_end"] for r in trainings),
        "scoring (evaluate.py)": sum(r["exit"] - r["start"] for r in scoring),
    }  # scoring is counted once: in the suite's tail below, or inside the trainings where they score
    first_training = min(r["start"] for r in trainings)
    last_training = max(r["exit"] for r in trainings)
    slot_time = jobs * wall
    in_trainings = sum(table.values()) - table["scoring (evaluate.py)"]
    table["suite before the first training (driver start, planning), all slots"] = jobs * (first_training - start)
    table["suite after the last training (scoring, summary), all slots"] = jobs * (start + wall - last_training)
    table["slots between trainings (launches, a slot waiting for the last run)"] = (
        slot_time - in_trainings - table["suite before the first training (driver start, planning), all slots"]
        - table["suite after the last training (scoring, summary), all slots"])
    return table, len(epochs), slot_time


def main(argv=None):
    """Run the suite, print the table (and write it as JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repo", type=Path, default=REPO, help="the checkout to measure (default: this one)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wall, start, records = run_suite(args.repo.resolve(), Path(tmp), args.seeds, args.epochs, args.jobs)
    table, run_epochs, slot_time = phases(wall, start, records, args.jobs)
    print(machine_line(machine_info()))
    print(f"{args.repo}: 2 variants x {args.seeds} seeds x {args.epochs} epochs on mnist_5k, --jobs {args.jobs}: "
          f"{wall:.0f} s of wall time, {run_epochs} run-epochs, {wall / run_epochs:.2f} s of wall time per run-epoch")
    print(f"{'phase':72s} {'s in all':>9s} {'s per run-epoch':>16s} {'share of slot time':>19s}")
    for name, seconds in table.items():
        name = f"  (of which {name}, one process)" if name.startswith("scoring") else name
        print(f"{name:72s} {seconds:9.1f} {seconds / run_epochs:16.2f} {seconds / slot_time:18.1%}")
    if args.json:
        args.json.write_text(json.dumps({"repo": str(args.repo), "wall": wall, "run_epochs": run_epochs,
                                         "jobs": args.jobs, "phases": table, "machine": machine_info()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
