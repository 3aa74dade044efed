"""Train every variant of a suite with seeds 0..N-1, then compare them: summary.csv, summary.md,
losses.png and total_loss.png in the suite folder.

    python run_experiments.py --suite activations                 # the study: MNIST, 200 epochs, 5 seeds
    python run_experiments.py --suite all --seeds 2 --epochs 1 --limit 600 --dataset fashion_mnist --jobs 2

Running the same command again skips finished runs and resumes unfinished ones; a larger --epochs
extends finished runs. Runs made with other data or more epochs are refused (see utils/suite.py).
Exit status 0 when every run finished, 1 otherwise (the summary still covers the finished ones).
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from utils import cli
from utils.errors import UserError
from utils.loaders import load_dataset
from utils.presets import SUITES
from utils.suite import (RUNS, SUITE_ROOT, SuiteLock, SuiteRequest, check_writable, default_suite_dir, find_runs,
                         plan, plural, run_jobs, slot_environments)
from utils.suite_report import write_report


@dataclass
class SuiteResult:
    """A suite's folder, its summary (a row per run) and the runs that did not finish."""

    suite_dir: Path
    summary: object  # pandas DataFrame, as written to summary.csv
    failed: list
    seconds: float

    @property
    def ok(self):
        return not self.failed


def run_suite(suite, seeds=5, epochs=200, dataset="mnist", limit=None, jobs=1, out=None, variants=(),
              log=print, root=SUITE_ROOT, mixed_precision=False):
    """Train (or finish) every (variant, seed) of `suite` and write its summary; returns a `SuiteResult`.

    The suite folder is `out`, or a folder named after the settings under `root`. Bad input raises
    `UserError` before anything is created. `log` receives one line per event.
    """
    start = time.perf_counter()
    request = SuiteRequest(suite, seeds, epochs, dataset, limit, tuple(variants), bool(mixed_precision))
    if not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"--jobs must be a positive integer; got {jobs}")
    suite_dir = Path(out) if out else default_suite_dir(request, root)
    check_writable(suite_dir)
    # Loading here checks the dataset once with the loader's own message (and downloads it once, not
    # in every training process).
    data = load_dataset(dataset, limit)
    suite_dir.mkdir(parents=True, exist_ok=True)
    with SuiteLock(suite_dir):
        todo = plan(request, suite_dir)
        environments = slot_environments(jobs)
        _log_plan(log, request, suite_dir, todo, jobs, environments, len(data.x_train))
        progress = _Progress(log, len(todo))
        for job in todo:
            if job.action == "skip":
                result = job.params.get("result", {})
                progress.line(job, f"skipped (finished {plural(result.get('epochs'), 'epoch')}, "
                                   f"val_loss {result.get('final_val_loss', float('nan')):.4g})")
        run_jobs([j for j in todo if j.action != "skip"], request, suite_dir, jobs,
                 lambda attempt: _report_attempt(progress, attempt, suite_dir), environments)
        summary = write_report(request, suite_dir)
    failed = [f"{r.variant} seed {r.seed}" for r in summary.itertuples() if r.status != "finished"]
    seconds = time.perf_counter() - start
    log(f"{len(summary) - len(failed)} of {len(summary)} runs finished; {seconds:.0f} s in all; "
        f"summary in {suite_dir / 'summary.md'}")
    return SuiteResult(suite_dir, summary, failed, seconds)


def _log_plan(log, request, suite_dir, todo, jobs, environments, n_train):
    counts = {a: sum(j.action == a for j in todo) for a in ("skip", "resume", "extend", "new")}
    where = ", ".join(sorted({env.get("CUDA_VISIBLE_DEVICES", "") for env in environments} - {""}))
    log(f"suite {request.suite}: {plural(len(request.variants), 'variant')} x {plural(request.seeds, 'seed')} = "
        f"{plural(len(todo), 'run')} of {plural(request.epochs, 'epoch')} on {request.dataset} ({n_train} training "
        f"images) in {suite_dir}")
    log(f"{counts['skip']} finished (skipped), {counts['resume']} to resume, {counts['extend']} to extend to "
        f"{plural(request.epochs, 'epoch')}, {counts['new']} new; {jobs} at a time"
        + (f" on GPU {where}" if where else " on CPU"))


class _Progress:
    """Numbered progress lines, `[ 3/18] variant seed S: what happened`."""

    def __init__(self, log, total):
        self.log, self.total, self.done = log, total, 0

    def line(self, job, text):
        self.done += 1
        width = len(str(self.total))
        self.log(f"[{self.done:>{width}}/{self.total}] {job.variant} seed {job.seed}: {text}")


def _report_attempt(progress, attempt, suite_dir):
    job = attempt.job
    run_dir, params = find_runs(Path(suite_dir) / RUNS).get((job.variant, job.seed), (None, {}))
    result = params.get("result", {})
    if attempt.returncode == 0 and params.get("status") == "finished":
        progress.line(job, f"{job.action} -> finished in {attempt.seconds:.1f} s, val_loss "
                           f"{result['final_val_loss']:.4g} (best {result['best_val_loss']:.4g} at epoch "
                           f"{result['best_epoch']})")
    else:
        progress.line(job, f"FAILED ({job.action}, exit {attempt.returncode}) after {attempt.seconds:.1f} s: "
                           f"{attempt.last_line()} (log: {attempt.log})")


def build_parser():
    """The command line; ranges are checked by `run_suite` so the API and the CLI say the same."""
    p = cli.OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True, choices=list(SUITES), help="which group of study variants")
    p.add_argument("--seeds", type=int, default=5, help="train seeds 0..N-1 of every variant (default 5)")
    p.add_argument("--epochs", type=int, default=200, help="epochs per run (default 200, as the study)")
    p.add_argument("--dataset", default="mnist", help="mnist, fashion_mnist, cifar10 or an .npz path (default mnist)")
    p.add_argument("--limit", type=int, help="keep the first N training images (N/6 test, at least 100)")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once, one GPU each where there are GPUs "
                                                       "(default 1)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="train every run with train_vae.py --mixed-precision (bfloat16 on CPU; suite folder ends _mixed)")
    p.add_argument("--out", help="suite folder (default run/experiments/<suite>_<dataset>[_limitN][_mixed])")
    p.add_argument("--variants", help="comma-separated subset of the suite's variants (default: all of them)")
    return p


def main(argv=None):
    """Parse the flags and run the suite; exit 0 if every run finished, 1 if not or on bad input."""
    args = build_parser().parse_args(argv)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip()) if args.variants else ()
    try:
        result = run_suite(args.suite, args.seeds, args.epochs, args.dataset, args.limit, args.jobs, args.out,
                           variants, log=lambda line: print(line, flush=True),
                           mixed_precision=args.mixed_precision)
    except UserError as e:
        cli.fail(str(e))
    except KeyboardInterrupt:
        cli.fail("interrupted; run the same command again to resume the unfinished runs", code=130)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
