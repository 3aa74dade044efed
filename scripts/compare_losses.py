"""Record every preset's losses with a checkout of this project, and compare two recordings: the check that a
change of the training code leaves the numbers as they were.

    python -m scripts.compare_losses record /tmp/before --repo ../old-checkout     # trains each preset
    python -m scripts.compare_losses record /tmp/after                             # this checkout
    python -m scripts.compare_losses compare /tmp/before /tmp/after

`record` trains each preset for 2 epochs on 300 Fashion-MNIST images with seed 0, each in its own
`train.py` process of the given checkout (so an older layout of the code works too), and keeps its
`training.csv`. `compare` prints, per preset, whether every loss column is bit-identical and else the
largest relative difference, and exits 1 if any exceeds `--rtol` (default 1e-5).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TIMING = ("lr", "train_seconds", "epoch")


def presets_of(repo):
    """The preset names of a checkout (any layout of its presets module)."""
    code = ("import importlib\nfor m in ('models.presets', 'utils.experiments.presets', 'utils.presets'):\n"
            "    try:\n        print(','.join(importlib.import_module(m).PRESETS)); break\n"
            "    except ImportError:\n        pass\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True).stdout
    return out.strip().split(",")


def record(out, repo, presets):
    """Train each preset with `repo`'s train.py; copy its training.csv to `out/<preset>.csv`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as runs:
        for preset in presets:
            done = subprocess.run([sys.executable, str(repo / "train.py"), "--preset", preset, "--epochs", "2",
                                   "--seed", "0", "--dataset", "fashion_mnist", "--limit", "300", "--run-root",
                                   str(Path(runs) / preset)], cwd=repo, capture_output=True, text=True)
            if done.returncode:
                print(f"{preset}: FAILED {done.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            shutil.copy(Path(done.stdout.strip().splitlines()[-1]) / "training.csv", out / f"{preset}.csv")
            print(f"{preset}: recorded", flush=True)


def compare(before, after, rtol):
    """Print the comparison of two recordings; True when every difference is within `rtol`."""
    ok = True
    for path in sorted(Path(before).glob("*.csv")):
        other = Path(after) / path.name
        if not other.is_file():
            print(f"{path.stem}: missing in {after}")
            ok = False
            continue
        a, b = pd.read_csv(path), pd.read_csv(other)
        columns = [c for c in a.columns if c not in TIMING]
        if columns != [c for c in b.columns if c not in TIMING]:
            print(f"{path.stem}: other columns {columns} / {list(b.columns)}")
            ok = False
            continue
        x, y = a[columns].to_numpy(), b[columns].to_numpy()
        identical = (x == y)
        worst = float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-12)))
        where = "" if identical.all() else ", ".join(sorted({c for c, same in zip(columns, identical.all(axis=0))
                                                             if not same}))
        print(f"{path.stem:22s} {'bit-identical' if identical.all() else f'max relative difference {worst:.1e} ({where})'}")
        ok &= worst <= rtol
    return ok


def main(argv=None):
    """Record or compare; exit 1 where a comparison exceeds the tolerance."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("--repo", type=Path, default=REPO, help="the checkout whose train.py trains (default: this one)")
    rec.add_argument("--presets", help="comma-separated (default: every preset of that checkout)")
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    cmp.add_argument("--rtol", type=float, default=1e-5)
    args = p.parse_args(argv)
    if args.command == "record":
        repo = args.repo.resolve()
        record(args.out.resolve(), repo, args.presets.split(",") if args.presets else presets_of(repo))
        return 0
    return 0 if compare(args.before, args.after, args.rtol) else 1


if __name__ == "__main__":
    sys.exit(main())
