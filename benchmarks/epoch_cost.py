"""How the cost of an epoch grows with training images, batch size and `--jobs`: one table to predict a suite's cost.

    python -m benchmarks.epoch_cost                               # 6k and 30k images measured, one 60k cell
    python -m benchmarks.epoch_cost --images 6000 --batch-size 32 --jobs 1 --full-cell none   # a quick look

Each cell trains `train_vae.py --epochs 1 --limit N --batch-size B` (base_lrelu unless --preset says
otherwise) on Fashion-MNIST: with --jobs 2, two such processes at once, each given half the cores as
run_experiments.py gives them (utils.suite.slot_environments). Per cell it reports the epoch's training
seconds (training.csv's train_seconds, mean over the processes), the wall time of the processes (start-up,
the epoch, validation on N/6 test images, figures and model files) and the suite cost per run-epoch
(wall / jobs). Cells for 60,000 images other than --full-cell are derived, not measured: 2x the 30,000-image
cell, since an epoch's steps scale linearly with its images (the --full-cell row shows how well that holds).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.machine import CpuMeter, machine_info, machine_line  # noqa: E402
from utils.experiments.local import slot_environments  # noqa: E402

FULL = 60_000


def train_once(images, batch_size, jobs, preset, root):
    """Train `jobs` one-epoch runs at once; (mean train seconds, wall seconds until the last one ended)."""
    start, procs = time.perf_counter(), []
    for slot, env in enumerate(slot_environments(jobs)):
        run_root = Path(root) / f"{images}_{batch_size}_{jobs}_{slot}"
        command = [sys.executable, str(ROOT / "train_vae.py"), "--preset", preset, "--dataset", "fashion_mnist",
                   "--epochs", "1", "--seed", str(slot), "--batch-size", str(batch_size), "--run-root", str(run_root)]
        if images < FULL:
            command += ["--limit", str(images)]
        procs.append((subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True), run_root))
    train = []
    for proc, run_root in procs:
        out, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"train_vae.py failed: {err.strip().splitlines()[-1] if err.strip() else out}")
        history = next(run_root.glob("*/training.csv"))
        train.append(float(pd.read_csv(history)["train_seconds"].iloc[0]))
    return sum(train) / len(train), time.perf_counter() - start


def main(argv=None):
    """Measure every cell of the grid, derive the 60k cells, print (and optionally save) the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, nargs="+", default=[6000, 30000], help="training images measured")
    p.add_argument("--batch-size", type=int, nargs="+", default=[32, 128])
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--full-cell", default="32,1", help="BATCH,JOBS of the one measured 60k cell, or none")
    p.add_argument("--preset", default="base_lrelu")
    p.add_argument("--csv", type=Path, help="also write the table here")
    args = p.parse_args(argv)
    if any(n < 100 or n > FULL for n in args.images) or min(args.batch_size + args.jobs) < 1:
        p.error(f"--images must lie in 100..{FULL}; --batch-size and --jobs must be positive")
    cells = [(n, b, j) for n in args.images for b in args.batch_size for j in args.jobs]
    if args.full_cell != "none":
        batch, jobs = (int(v) for v in args.full_cell.split(","))
        cells.append((FULL, batch, jobs))
    print(machine_line(machine_info()))
    rows = []
    with tempfile.TemporaryDirectory() as root, CpuMeter() as meter:
        for n, b, j in cells:
            train_s, wall_s = train_once(n, b, j, args.preset, root)
            rows.append({"images": n, "batch": b, "jobs": j, "train_s": train_s, "wall_s": wall_s,
                         "wall_per_run_epoch_s": wall_s / j, "how": "measured"})
            print(f"{n:6d} images, batch {b:3d}, jobs {j}: train {train_s:6.1f} s, wall {wall_s:6.1f} s", flush=True)
    measured = {(r["images"], r["batch"], r["jobs"]) for r in rows}
    for r in [r for r in rows if r["images"] == 30000]:
        if (FULL, r["batch"], r["jobs"]) not in measured:
            # Start-up and the end of the run do not double; the epoch's steps do (validation, a few
            # per cent, is left in the fixed part).
            fixed = r["wall_s"] - r["train_s"]
            rows.append({**r, "images": FULL, "train_s": 2 * r["train_s"], "wall_s": fixed + 2 * r["train_s"],
                         "wall_per_run_epoch_s": (fixed + 2 * r["train_s"]) / r["jobs"],
                         "how": "derived: 2x the 30k epoch"})
    table = pd.DataFrame(rows).sort_values(["images", "batch", "jobs"])
    print(f"\npreset {args.preset}, 1 epoch per run; {meter.summary()}")
    print("| images | batch | jobs | epoch's training s | wall s of the processes | wall s per run-epoch | |\n"
          "|---:|---:|---:|---:|---:|---:|---|")
    for r in table.itertuples():
        print(f"| {r.images} | {r.batch} | {r.jobs} | {r.train_s:.1f} | {r.wall_s:.1f} | {r.wall_per_run_epoch_s:.1f} "
              f"| {r.how} |")
    if args.csv:
        table.to_csv(args.csv, index=False, float_format="%.2f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
