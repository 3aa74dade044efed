"""A suite of study variants × seeds: which run folders exist, which to skip, resume, extend or start,
and training them as parallel `train_vae.py` processes. `utils.suite_report` summarises the result.

    <suite folder>/
        runs/NNNN_<dataset>_<variant>/   one run folder per (variant, seed), made by train_vae.py
        logs/<variant>_seed<S>.log        stdout and stderr of every attempt at that run
        summary.csv, summary.md, losses.png, total_loss.png
"""

import fcntl
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from utils import runs
from utils.errors import UserError
from utils.loaders import dataset_name
from utils.presets import SUITES

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = REPO_ROOT / "train_vae.py"
SUITE_ROOT = Path("run") / "experiments"
RUNS = "runs"
LOGS = "logs"
REFERENCE_VARIANT = "base_lrelu"


@dataclass(frozen=True)
class SuiteRequest:
    """What to run: a suite's variants (or a subset), seeds 0..seeds-1, and the training settings."""

    suite: str
    seeds: int
    epochs: int = 200
    dataset: str = "mnist"
    limit: int | None = None
    variants: tuple = ()  # empty: all of the suite's variants
    mixed_precision: bool = False  # train_vae.py --mixed-precision for every run

    def __post_init__(self):
        if self.suite not in SUITES:
            raise UserError(f"unknown suite {self.suite!r}; choose from {', '.join(SUITES)}")
        for name, value in (("seeds", self.seeds), ("epochs", self.epochs), ("limit", self.limit)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UserError(f"--{name} must be a positive integer; got {value}")
        unknown = [v for v in self.variants if v not in SUITES[self.suite]]
        if unknown:
            raise UserError(f"{', '.join(unknown)} not in suite {self.suite!r}; "
                            f"its variants are {', '.join(SUITES[self.suite])}")
        # Suite order, whatever order the user gave, so tables and colours are stable.
        chosen = [v for v in SUITES[self.suite] if not self.variants or v in self.variants]
        object.__setattr__(self, "variants", tuple(chosen))

    @property
    def reference(self):
        """The variant the others are compared with: base_lrelu, or the first one when it is absent."""
        return REFERENCE_VARIANT if REFERENCE_VARIANT in self.variants else self.variants[0]

    def keys(self):
        """Every (variant, seed) of the request, variant by variant."""
        return [(v, s) for v in self.variants for s in range(self.seeds)]


def plural(n, word):
    """`1 epoch`, `3 epochs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def default_suite_dir(request, root=SUITE_ROOT):
    """`<root>/<suite>_<dataset>[_limitN][_mixed]`: other data or precision, another folder, so runs never mix."""
    name = f"{request.suite}_{dataset_name(request.dataset)}"
    return Path(root) / (name + (f"_limit{request.limit}" if request.limit else "")
                         + ("_mixed" if request.mixed_precision else ""))


def check_writable(folder):
    """A one-line error unless `folder` exists as a writable folder or could be made; creates nothing."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot use {folder} as the suite folder: {existing} is a file; pass another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {existing}; pass a writable --out")


@dataclass
class Job:
    """One (variant, seed) and what to do about it: skip, new, resume (unfinished) or extend (more epochs)."""

    variant: str
    seed: int
    action: str
    run_dir: Path | None = None
    params: dict = field(default_factory=dict)

    @property
    def name(self):
        return f"{self.variant}_seed{self.seed}"


def find_runs(runs_dir):
    """{(variant, seed): (run_dir, params)} from the params.json of every run folder in `runs_dir`.

    If a pair has several folders (a copy, say), the finished one with the most epochs wins.
    """
    found = {}
    for run_dir in sorted(Path(runs_dir).glob("*/")) if Path(runs_dir).is_dir() else []:
        if not (run_dir / runs.PARAMS).is_file():
            continue  # killed before params.json was written: nothing in it can be resumed
        params = runs.read_params(run_dir)
        key = (params.get("variant"), params.get("training", {}).get("seed"))
        rank = (params.get("status") == "finished", params.get("training", {}).get("epochs", 0), run_dir.name)
        if key not in found or rank > found[key][2]:
            found[key] = (run_dir, params, rank)
    return {key: (run_dir, params) for key, (run_dir, params, _) in found.items()}


def plan(request, suite_dir):
    """A `Job` for every (variant, seed) of the request; refuses runs made with other settings.

    Dataset, --limit or --mixed-precision differing from the run's: refused (they belong in another folder).
    More epochs than the run was set to: the run is extended with `--resume DIR --epochs E`.
    Fewer: refused, since the summary would compare runs of unequal length.
    """
    existing = find_runs(Path(suite_dir) / RUNS)
    jobs = []
    for variant, seed in request.keys():
        if (variant, seed) not in existing:
            jobs.append(Job(variant, seed, "new"))
            continue
        run_dir, params = existing[(variant, seed)]
        training = params["training"]
        if (training.get("dataset"), training.get("limit")) != (request.dataset, request.limit):
            raise UserError(
                f"{run_dir} was trained on {training.get('dataset')} with --limit {training.get('limit')}, "
                f"not {request.dataset} with --limit {request.limit}; use the same settings or another --out")
        if bool(training.get("mixed_precision")) != request.mixed_precision:
            raise UserError(f"{run_dir} was trained {'with' if training.get('mixed_precision') else 'without'} "
                            "--mixed-precision; use the same setting or another --out")
        if training["epochs"] > request.epochs:
            raise UserError(
                f"{run_dir} is set to {training['epochs']} epochs, more than --epochs {request.epochs}; "
                f"pass --epochs {training['epochs']} (or more) or another --out, so that runs of unequal "
                "length are not compared")
        if params.get("status") == "finished":
            action = "skip" if training["epochs"] == request.epochs else "extend"
        else:
            action = "resume"
        jobs.append(Job(variant, seed, action, run_dir, params))
    return jobs


class SuiteLock:
    """An exclusive lock on the suite folder, so two runners never train the same runs at once."""

    def __init__(self, suite_dir):
        self.path = Path(suite_dir) / ".suite.lock"

    def __enter__(self):
        self.file = open(self.path, "w")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise UserError(f"another run_experiments.py is working in {self.path.parent}; wait for it "
                            "or stop it first") from None
        return self

    def __exit__(self, *exc):
        self.file.close()


def train_command(job, request, suite_dir):
    """The `train_vae.py` command line for a job: a new run, or `--resume DIR --epochs E`."""
    command = [sys.executable, str(TRAIN_SCRIPT)]
    if job.run_dir is not None:
        return command + ["--resume", str(Path(job.run_dir).absolute()), "--epochs", str(request.epochs)]
    command += ["--preset", job.variant, "--dataset", request.dataset, "--epochs", str(request.epochs),
                "--seed", str(job.seed), "--run-root", str((Path(suite_dir) / RUNS).absolute())]
    return (command + (["--limit", str(request.limit)] if request.limit else [])
            + (["--mixed-precision"] if request.mixed_precision else []))


def visible_gpus():
    """GPU ids this process may use: from CUDA_VISIBLE_DEVICES if set, else from nvidia-smi, else none."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def slot_environments(jobs, gpus=None, cpus=None):
    """Environment changes for each of `jobs` parallel slots: one GPU each, round robin, where there
    are GPUs; otherwise the CPU cores shared out."""
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        # Several processes on one GPU must not each reserve all of its memory up front.
        share = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"} if jobs > len(gpus) else {}
        return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)], **share} for i in range(jobs)]
    if jobs == 1:
        return [{}]
    # Without this each process starts a thread per core and they fight over the cores
    # (measured on 2 cores: 7.1 s per epoch each instead of 6.0 s with one thread each).
    threads = str(max(1, (cpus or os.cpu_count() or 1) // jobs))
    return [{"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads, "OMP_NUM_THREADS": threads}
            for _ in range(jobs)]


@dataclass
class Attempt:
    """A finished `train_vae.py` process: its job, exit status, seconds and log file."""

    job: Job
    returncode: int
    seconds: float
    log: Path

    def last_line(self):
        """The last non-empty line of the log: the one-line error or the traceback's last line."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(empty log)"


def run_jobs(jobs, request, suite_dir, parallel, on_done, environments=None, poll=0.2):
    """Train `jobs` (not "skip") in up to `parallel` processes; `on_done(attempt)` as each ends.

    Logs are appended to, a header line per attempt, so a resumed run's log keeps its history; they
    are streams, so unlike every other file here they are not written atomically.
    """
    logs = Path(suite_dir) / LOGS
    logs.mkdir(parents=True, exist_ok=True)
    environments = environments or slot_environments(parallel)
    pending, running, attempts = deque(jobs), {}, []
    free = list(range(parallel))
    try:
        while pending or running:
            while pending and free:
                slot, job = free.pop(0), pending.popleft()
                command = train_command(job, request, suite_dir)
                log = open(logs / f"{job.name}.log", "a")
                log.write(f"=== {runs.now()} {job.action}: {' '.join(command)}\n")
                log.flush()
                env = {**os.environ, **environments[slot], "PYTHONUNBUFFERED": "1"}
                process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT)
                running[slot] = (process, job, time.perf_counter(), log)
            time.sleep(poll)
            for slot, (process, job, start, log) in list(running.items()):
                if process.poll() is None:
                    continue
                log.close()
                del running[slot]
                free.append(slot)
                attempt = Attempt(job, process.returncode, time.perf_counter() - start, Path(log.name))
                attempts.append(attempt)
                on_done(attempt)
    finally:  # an interrupt (or an error in on_done) must not leave trainings running unwatched
        for process, _, _, log in running.values():
            process.terminate()
            process.wait()
            log.close()
    return attempts
