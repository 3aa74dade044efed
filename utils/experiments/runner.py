"""Running a suite: plan its runs, train them on a backend, score them, write the summary (`run_suite`).
The command line is run_experiments.py; the notebooks call `run_suite` with the same `SuiteRequest`."""

import time
from dataclasses import dataclass
from pathlib import Path

from utils.data.loaders import load_dataset, with_validation
from utils.errors import UserError
from utils.experiments.local import LocalBackend
from utils.experiments.locks import RunLocks, SuiteLock
from utils.experiments.report import write_report
from utils.experiments.scoring import score_runs
from utils.experiments.suite import VAL_FRACTION, check_writable, plan_locked, plural, unmatched_runs


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


def make_backend(request):
    """The backend the request names, with its options (checked by `SuiteRequest`)."""
    if request.backend == "ray":
        from utils.experiments.ray_backend import RayBackend  # Ray is optional

        return RayBackend(request.ray_address, request.gpus_per_run,
                          1 if request.cpus_per_run is None else request.cpus_per_run)
    return LocalBackend(request.jobs)


def run_suite(request, log=print):
    """Train (or finish) every (variant, seed) of a `SuiteRequest` and write its summary; returns a
    `SuiteResult`.

    Bad input raises `UserError` before anything is created. `log` receives one line per event. Each run
    scores itself on its test images when it ends (`eval_samples` importance samples; 0: not
    scored); finished runs without those figures (older runs, or a scoring that failed) are then scored
    with `evaluate.py`.
    """
    start = time.perf_counter()
    runner = make_backend(request)
    folders = request.folders()
    check_writable(folders.suite)
    check_writable(folders.pool, "--pool")
    # Loading here checks the dataset once with the loader's own message (and downloads it once, not
    # in every training process).
    data = with_validation(load_dataset(request.settings.dataset, request.settings.limit), VAL_FRACTION)
    request = request.with_step_budget(len(data.x_train))
    with runner:  # connects to Ray before anything is created, so a bad address leaves nothing behind
        _make_shared_folders(folders, runner)
        with SuiteLock(folders.suite), RunLocks(folders.pool) as locks:
            todo = plan_locked(request, folders, locks)
            _log_plan(log, request, folders, todo, runner, len(data.x_train), len(data.x_val))
            progress = _Progress(log, len(todo))
            for run_dir, damage in unmatched_runs(*folders.places):
                log(f"DAMAGED run folder {run_dir}: {damage}, so its variant and seed cannot be told; not used "
                    "(restore its params.json and run the suite again to use it)")
            for job in todo:
                if job.action == "skip":
                    result = job.params.get("result", {})
                    progress.line(job, f"skipped (finished {plural(result.get('epochs'), 'epoch')}, "
                                       f"val_loss {result.get('final_val_loss', float('nan')):.4g})")
                elif job.action == "damaged":
                    progress.line(job, f"DAMAGED, not trained: {job.run_dir}: {job.damage} "
                                       f"(`python evaluate.py --check {job.run_dir}`)")
            runner.run([j for j in todo if j.action not in ("skip", "damaged")], request, folders,
                       lambda attempt: _report_attempt(progress, attempt, folders))
            if request.settings.eval_samples:
                score_runs(folders.runs(), request.keys(), request.settings.eval_samples, log)
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


def _log_plan(log, request, folders, todo, runner, n_train, n_val):
    counts = {a: sum(j.action == a for j in todo) for a in ("skip", "resume", "extend", "new", "damaged")}
    settings = request.settings
    budget = f" (a budget of {settings.steps} steps)" if settings.steps else ""
    log(f"suite {request.suite}: {plural(len(request.variants), 'variant')} x {plural(request.seeds, 'seed')} = "
        f"{plural(len(todo), 'run')} of {plural(settings.epochs, 'epoch')}{budget} on {settings.dataset} ({n_train} "
        f"training images, {n_val} more held out for validation) in {folders.suite}, runs in {folders.pool}")
    damaged = f", {counts['damaged']} damaged (not trained)" if counts["damaged"] else ""
    log(f"{counts['skip']} finished (skipped), {counts['resume']} to resume, {counts['extend']} to extend to "
        f"{plural(settings.epochs, 'epoch')}, {counts['new']} new{damaged}; {runner.describe()}")


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
