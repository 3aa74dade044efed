"""Scoring a suite's finished runs on their test images with `evaluate.py`: pixel MSE and the model's own loss
for every family, and ELBO, NLL, bits per dimension and active units where the model has a likelihood. Each
run's `eval.json` is reused when it already holds the figures for these settings, so a re-run scores only new
runs."""

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from utils.runs import layout
from utils.experiments.suite import REPO_ROOT

EVALUATE_SCRIPT = REPO_ROOT / "evaluate.py"


def models_written(run_dir):
    """When the run's saved weights or exported models were last written (seconds since the epoch), or None."""
    times = [p.stat().st_mtime for p in (layout.model_file(run_dir, n)
                                         for n in (layout.WEIGHTS, layout.ENCODER, layout.DECODER)) if p.is_file()]
    return max(times) if times else None


def is_current(entry, written):
    """Whether an `eval.json` entry scored the models as they are now: it was made after they were last
    written (an extended run's entries scored its earlier models)."""
    try:
        made = datetime.fromisoformat(entry["time"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return False
    return written is not None and made >= int(written)  # entry times are whole seconds


# eval.json's bookkeeping, not figures; every other number of an entry becomes a summary column.
BOOKKEEPING = ("samples", "binarize", "n_test", "seconds", "time", "kid_subsets", "kid_subset_size", "k_check_images")
COLUMN = {"active_units": "active_units", "kl_per_dimension": "test_kl_dim"}  # else test_<name>
TEXT = ("likelihood", "judge", "validated_on")  # what the figures mean: kept as text columns of the same name


# Entries written before the scoring protocol of issue 27 (a Bernoulli "NLL" of grey pixels, sample scores from the
# DFC-VAE's own network) lack this key: they are not used, so a suite scores such runs again.
PROTOCOL_KEY = "validated_on"


def scores(run_dir, samples=None):
    """The test figures of a run's `eval.json` (the not-binarized entry with `samples` draws, or the
    most draws) that scored its current models, as summary columns: `test_<figure>` for each number
    (test_pixel_mse, test_loss, test_bpd, test_nll, ...), `active_units`, `test_kl_dim<i>` for a list,
    and the TEXT entries (the likelihood's name, the judge network's, what the run was validated on)."""
    path = Path(run_dir) / layout.EVAL
    try:
        entries = [e for e in json.loads(path.read_text()).values() if not e.get("binarize")]
    except (OSError, ValueError, AttributeError):
        return {}
    written = models_written(run_dir)
    entries = [e for e in entries if (samples is None or e.get("samples") == samples) and is_current(e, written)
               and PROTOCOL_KEY in e]
    if not entries:
        return {}
    entry = max(entries, key=lambda e: (e.get("samples", 0), e.get("time", "")))
    found = {}
    for key, value in entry.items():
        name = COLUMN.get(key, f"test_{key}")
        if key in TEXT and isinstance(value, str):
            found[key] = value
        elif key in BOOKKEEPING or isinstance(value, (str, bool)) or value is None:
            continue
        elif isinstance(value, list):
            found.update({f"{name}{i}": v for i, v in enumerate(value) if isinstance(v, (int, float))})
        elif isinstance(value, (int, float)):
            found[name] = value
    return found


def score_runs(found, keys, samples, log):
    """Run `evaluate.py --samples K` (one process) on every finished run of `keys` (variant, seed)
    among `found` ({key: (run_dir, params)}) that has no figures for K yet; one progress line with
    the cost. Returns the seconds spent."""
    start = time.perf_counter()
    todo = [str(run_dir) for run_dir, params in (found.get(key, (None, {})) for key in keys)
            if run_dir is not None and params.get("status") == "finished" and not scores(run_dir, samples)]
    if not todo:
        return 0.0
    result = subprocess.run([sys.executable, str(EVALUATE_SCRIPT), *todo, "--samples", str(samples)],
                            cwd=REPO_ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    scored = sum(1 for run_dir in todo if scores(run_dir, samples))
    line = (f"scored {scored} of {len(todo)} run{'s' if len(todo) != 1 else ''} on their test images "
            f"({samples} importance samples) in {seconds:.0f} s")
    if result.returncode != 0:
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        line += f"; stopped: {lines[-1] if lines else 'exit ' + str(result.returncode)}"
    log(line)
    return seconds
