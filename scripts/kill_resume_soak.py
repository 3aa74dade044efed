"""Kill a training run with SIGKILL at random moments, resume it each time, then check nothing was lost.

    python -m scripts.kill_resume_soak --cycles 20 --epochs 8

Checks at the end: training.csv lists epochs 1..E exactly once and in order, params.json says
`finished` and records every resume, every file in the run folder loads, and no temporary file is left.
"""

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train(args, kill_after):
    """Start train_vae.py with `args`; SIGKILL it after `kill_after` seconds. True if it finished."""
    proc = subprocess.Popen([sys.executable, str(REPO / "train_vae.py"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return False
    if proc.returncode != 0:
        raise SystemExit(f"train_vae.py failed: {proc.stderr.strip().splitlines()[-1]}")
    return True


def check_run(run_dir, epochs):
    """Raise AssertionError unless the run is complete and every file in it loads."""
    import h5py
    import keras
    import matplotlib.image
    import pandas as pd

    import models  # noqa: F401  (registers the encoder's Sampling layer)

    history = pd.read_csv(run_dir / "training.csv")
    assert list(history["epoch"]) == list(range(1, epochs + 1)), f"epochs: {list(history['epoch'])}"
    params = json.loads((run_dir / "params.json").read_text())
    assert params["status"] == "finished", params["status"]
    for path in run_dir.rglob("*"):
        assert not path.name.startswith(".tmp-"), f"temporary file left: {path}"
        if path.suffix == ".png":
            matplotlib.image.imread(path)
        elif path.name.endswith(".weights.h5"):
            with h5py.File(path) as f:
                assert len(f.keys()) > 0
        elif path.suffix == ".h5":
            keras.models.load_model(path, compile=False)
        elif path.suffix == ".json":
            json.loads(path.read_text())
    return params


def main():
    """Run the kill/resume cycles and print what was checked."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--limit", type=int, default=600)
    p.add_argument("--max-seconds", type=float, default=12.0, help="kill within this many seconds of a start")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    first = ["--dataset", "fashion_mnist", "--limit", str(args.limit), "--epochs", str(args.epochs),
             "--seed", "0", "--run-root", str(root)]
    kills, finished = 0, False
    for cycle in range(args.cycles):
        run_dirs = sorted(root.glob("0*_*"))
        command = ["--resume", str(run_dirs[0])] if run_dirs else first
        finished = train(command, rng.uniform(0.5, args.max_seconds))
        kills += not finished
        if finished:
            break
    run_dir = sorted(root.glob("0*_*"))[0]
    if not finished:
        train(["--resume", str(run_dir)], kill_after=3600)
    params = check_run(run_dir, args.epochs)
    print(f"{kills} kills, {len(params['resumes'])} resumes (from epochs "
          f"{[r['from_epoch'] for r in params['resumes']]}); all {args.epochs} epochs logged once; "
          f"every file loads: {run_dir}")


if __name__ == "__main__":
    main()
