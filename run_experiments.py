"""Train every variant of a suite with seeds 0..N-1, then compare them: summary.csv, summary.md,
losses.png and total_loss.png in the suite folder.

    python run_experiments.py --suite activations                 # the study: MNIST, 200 epochs, 5 seeds
    python run_experiments.py --suite all --seeds 2 --epochs 1 --limit 600 --dataset fashion_mnist --jobs 2
    python run_experiments.py --suite all --backend ray --ray-address HEAD:6379 --gpus-per-run 0.25

Run folders live in a pool shared by every suite on the same data, so a run another suite finished is
not trained again. Running the same command again skips finished runs and resumes unfinished ones; a
larger --epochs extends finished runs. Runs made with other data or more epochs are refused (see
utils/suite.py). Exit status 0 when every run finished, 1 otherwise (the summary still covers the
finished ones).
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from utils import cli
from utils.errors import UserError
from utils.loaders import load_dataset
from utils.presets import SUITES
from utils.suite import (SUITE_ROOT, LocalBackend, SuiteFolders, SuiteRequest, check_writable,
                         default_pool_dir, default_suite_dir, plan_locked, plural)
from utils.suite_locks import RunLocks, SuiteLock
from utils.suite_report import write_report
from utils.suite_scoring import score_runs


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


BACKENDS = ("local", "ray")


def make_backend(backend="local", jobs=1, ray_address=None, gpus_per_run=None, cpus_per_run=None):
    """The backend named `backend` with its options checked; a one-line error for options it does not take."""
    if backend == "local":
        given = [flag for flag, value in (("--ray-address", ray_address), ("--gpus-per-run", gpus_per_run),
                                          ("--cpus-per-run", cpus_per_run)) if value is not None]
        if given:
            raise UserError(f"{given[0]} is for --backend ray; drop it or add --backend ray")
        return LocalBackend(jobs)
    if backend == "ray":
        if jobs != 1:
            raise UserError("--jobs is for the local backend; with --backend ray, the cluster's CPUs and GPUs "
                            "divided by --cpus-per-run / --gpus-per-run decide how many train at once")
        from utils.suite_ray import RayBackend

        return RayBackend(ray_address, gpus_per_run, 1 if cpus_per_run is None else cpus_per_run)
    raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


def run_suite(suite, seeds=5, epochs=200, dataset="mnist", limit=None, jobs=1, out=None, variants=(),
              log=print, root=SUITE_ROOT, pool=None, backend="local", ray_address=None, gpus_per_run=None,
              cpus_per_run=None, eval_samples=100, mixed_precision=False):
    """Train (or finish) every (variant, seed) of `suite` and write its summary; returns a `SuiteResult`.

    The suite folder is `out`, or a folder named after the settings under `root`; run folders go to
    `pool`, by default `pool_<dataset>[_limitN]` beside the suite folder. `backend` is "local" (`jobs`
    processes here) or "ray" (see utils/suite_ray.py). Bad input raises `UserError` before anything
    is created. `log` receives one line per event. Finished runs are then scored on their test images
    with `evaluate.py` (`eval_samples` importance samples; 0: not scored).
    """
    start = time.perf_counter()
    request = SuiteRequest(suite, seeds, epochs, dataset, limit, tuple(variants), bool(mixed_precision))
    if not isinstance(eval_samples, int) or eval_samples < 0:
        raise UserError(f"--eval-samples must be an integer >= 0; got {eval_samples}")
    runner = make_backend(backend, jobs, ray_address, gpus_per_run, cpus_per_run)
    suite_dir = Path(out) if out else default_suite_dir(request, root)
    folders = SuiteFolders(suite_dir, pool or default_pool_dir(request, suite_dir))
    check_writable(folders.suite)
    check_writable(folders.pool, "--pool")
    # Loading here checks the dataset once with the loader's own message (and downloads it once, not
    # in every training process).
    data = load_dataset(dataset, limit)
    with runner:  # connects to Ray before anything is created, so a bad address leaves nothing behind
        _make_shared_folders(folders, runner)
        with SuiteLock(folders.suite), RunLocks(folders.pool) as locks:
            todo = plan_locked(request, folders, locks)
            _log_plan(log, request, folders, todo, runner, len(data.x_train))
            progress = _Progress(log, len(todo))
            for job in todo:
                if job.action == "skip":
                    result = job.params.get("result", {})
                    progress.line(job, f"skipped (finished {plural(result.get('epochs'), 'epoch')}, "
                                       f"val_loss {result.get('final_val_loss', float('nan')):.4g})")
            runner.run([j for j in todo if j.action != "skip"], request, folders,
                       lambda attempt: _report_attempt(progress, attempt, folders))
            if eval_samples:
                score_runs(folders.runs(), request.keys(), eval_samples, log)
            summary = write_report(request, folders)
    failed = [f"{r.variant} seed {r.seed}" for r in summary.itertuples() if r.status != "finished"]
    seconds = time.perf_counter() - start
    log(f"{len(summary) - len(failed)} of {len(summary)} runs finished; {seconds:.0f} s in all; "
        f"summary in {folders.suite / 'summary.md'}")
    return SuiteResult(folders.suite, summary, failed, seconds)


def _make_shared_folders(folders, runner):
    """Create the suite folder and the pool and let the backend check that its workers see them; a
    refusal removes what this call created."""
    created = [p for p in (folders.suite, folders.pool) if not p.exists()]
    for folder in created:
        folder.mkdir(parents=True, exist_ok=True)
    try:
        runner.check_shared(folders)
    except UserError:
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _log_plan(log, request, folders, todo, runner, n_train):
    counts = {a: sum(j.action == a for j in todo) for a in ("skip", "resume", "extend", "new")}
    log(f"suite {request.suite}: {plural(len(request.variants), 'variant')} x {plural(request.seeds, 'seed')} = "
        f"{plural(len(todo), 'run')} of {plural(request.epochs, 'epoch')} on {request.dataset} ({n_train} training "
        f"images) in {folders.suite}, runs in {folders.pool}")
    log(f"{counts['skip']} finished (skipped), {counts['resume']} to resume, {counts['extend']} to extend to "
        f"{plural(request.epochs, 'epoch')}, {counts['new']} new; {runner.describe()}")


class _Progress:
    """Numbered progress lines, `[ 3/18] variant seed S: what happened`."""

    def __init__(self, log, total):
        self.log, self.total, self.done = log, total, 0

    def line(self, job, text):
        self.done += 1
        width = len(str(self.total))
        self.log(f"[{self.done:>{width}}/{self.total}] {job.variant} seed {job.seed}: {text}")


def _report_attempt(progress, attempt, folders):
    job = attempt.job
    run_dir, params = folders.runs().get((job.variant, job.seed), (None, {}))
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
    p.add_argument("--jobs", type=int, default=1, help="local backend: trainings at once, one GPU each where "
                                                       "there are GPUs, several to a GPU when more (default 1)")
    p.add_argument("--out", help="suite folder (default run/experiments/<suite>_<dataset>[_limitN])")
    p.add_argument("--pool", help="folder of run folders shared by suites (default pool_<dataset>[_limitN] "
                                  "beside the suite folder)")
    p.add_argument("--backend", default="local", choices=BACKENDS,
                   help="local: processes on this machine (default); ray: tasks on a Ray cluster")
    p.add_argument("--ray-address", help="Ray cluster to use (default $RAY_ADDRESS, else a local Ray "
                                         "started for the suite)")
    p.add_argument("--gpus-per-run", type=float, help="GPUs per Ray task, e.g. 0.25 for four trainings on a GPU "
                                                      "(default: 1 if the cluster has GPUs, else none)")
    p.add_argument("--cpus-per-run", type=float, help="CPUs per Ray task (default 1)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="train every run with --mixed-precision (bfloat16 on CPU; folders end _mixed)")
    p.add_argument("--variants", help="comma-separated subset of the suite's variants (default: all of them)")
    p.add_argument("--eval-samples", type=int, default=100, help="importance samples per test image when scoring "
                                                                 "the finished runs (default 100; 0: no scoring)")
    return p


def main(argv=None):
    """Parse the flags and run the suite; exit 0 if every run finished, 1 if not or on bad input."""
    args = build_parser().parse_args(argv)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip()) if args.variants else ()
    try:
        result = run_suite(args.suite, args.seeds, args.epochs, args.dataset, args.limit, args.jobs, args.out,
                           variants, log=lambda line: print(line, flush=True), pool=args.pool, backend=args.backend,
                           ray_address=args.ray_address, gpus_per_run=args.gpus_per_run,
                           cpus_per_run=args.cpus_per_run, eval_samples=args.eval_samples,
                           mixed_precision=args.mixed_precision)
    except UserError as e:
        cli.fail(str(e))
    except KeyboardInterrupt:
        cli.fail("interrupted; run the same command again to resume the unfinished runs", code=130)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
