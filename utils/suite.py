"""A suite of study variants × seeds: which run folders exist, which to skip, resume, extend or start,
and the local backend that trains them as parallel `train.py` processes (`utils.suite_ray` is the
other). `utils.suite_report` summarises the result.

    <pool>/                               shared by every suite on the same data (dataset and --limit)
        NNNN_<dataset>_<variant>/         one run folder per (variant, seed), made by train.py
        .locks/<variant>_seed<S>.lock     held while a runner trains that run
    <suite folder>/
        logs/<variant>_seed<S>.log        stdout and stderr of every attempt at that run
        summary.csv, summary.md, losses.png, total_loss.png
        runs/                             the earlier layout's run folders: still found and used

A backend is an object with `describe()`, `check_shared(folders)` and `run(jobs, request, folders,
on_done)`, used as a context manager; `run` calls `on_done(attempt)` as each job ends, and the runner
needs nothing else from it.
"""

import os
import socket
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
TRAIN_SCRIPT = REPO_ROOT / "train.py"  # every family; train_vae.py is the same command for VAEs
LIFELINE = REPO_ROOT / "utils" / "lifeline.py"
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

    def data_label(self):
        """`<dataset>[_limitN][_mixed]`, the part of the default folder names that keeps other data (and
        mixed-precision runs) apart."""
        return (dataset_name(self.dataset) + (f"_limit{self.limit}" if self.limit else "")
                + ("_mixed" if self.mixed_precision else ""))


def plural(n, word):
    """`1 epoch`, `3 epochs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def default_suite_dir(request, root=SUITE_ROOT):
    """`<root>/<suite>_<dataset>[_limitN][_mixed]`: other data or precision, another folder, so runs never mix."""
    return Path(root) / f"{request.suite}_{request.data_label()}"


def default_pool_dir(request, suite_dir):
    """`pool_<dataset>[_limitN]` beside the suite folder, so that suites side by side share their runs."""
    return Path(suite_dir).absolute().parent / f"pool_{request.data_label()}"


@dataclass(frozen=True)
class SuiteFolders:
    """Where a suite's files are: its own folder (summary, figures, logs) and the pool of run folders it
    shares with other suites; absolute, since Ray tasks on other nodes use them too."""

    suite: Path
    pool: Path

    def __post_init__(self):
        object.__setattr__(self, "suite", Path(self.suite).absolute())
        object.__setattr__(self, "pool", Path(self.pool).absolute())

    @property
    def logs(self):
        return self.suite / LOGS

    @property
    def places(self):
        """Where runs are looked for: the pool, then `<suite>/runs` (the earlier layout, still used)."""
        return (self.pool, self.suite / RUNS)

    def runs(self):
        """{(variant, seed): (run_dir, params)} of every run found in `places`."""
        return find_runs(*self.places)


def check_writable(folder, flag="--out"):
    """A one-line error unless `folder` exists as a writable folder or could be made; creates nothing."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot use {folder} as a folder: {existing} is a file; pass another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {existing}; pass a writable {flag}")


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


def find_runs(*runs_dirs):
    """{(variant, seed): (run_dir, params)} from the params.json of every run folder in `runs_dirs`.

    If a pair has several folders (a copy, say), the finished one with the most epochs wins.
    """
    found = {}
    for run_dir in (d for folder in map(Path, runs_dirs) if folder.is_dir() for d in sorted(folder.glob("*/"))):
        if not (run_dir / runs.PARAMS).is_file():
            continue  # killed before params.json was written: nothing in it can be resumed
        params = runs.read_params(run_dir)
        key = (params.get("variant"), params.get("training", {}).get("seed"))
        rank = (params.get("status") == "finished", params.get("training", {}).get("epochs", 0), run_dir.name)
        if key not in found or rank > found[key][2]:
            found[key] = (run_dir, params, rank)
    return {key: (run_dir, params) for key, (run_dir, params, _) in found.items()}


def plan(request, folders):
    """A `Job` for every (variant, seed) of the request; refuses runs made with other settings.

    Dataset, --limit or --mixed-precision differing from the run's: refused (they belong in another pool).
    More epochs than the run was set to: the run is extended with `--resume DIR --epochs E`.
    Fewer: refused, since the summary would compare runs of unequal length.
    """
    existing = folders.runs()
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
                f"not {request.dataset} with --limit {request.limit}; use the same settings or another --pool")
        if bool(training.get("mixed_precision")) != request.mixed_precision:
            raise UserError(f"{run_dir} was trained {'with' if training.get('mixed_precision') else 'without'} "
                            "--mixed-precision; use the same setting or another --pool")
        if training["epochs"] > request.epochs:
            raise UserError(
                f"{run_dir} is set to {training['epochs']} epochs, more than --epochs {request.epochs}; "
                f"pass --epochs {training['epochs']} (or more) or another --pool, so that runs of unequal "
                "length are not compared")
        if params.get("status") == "finished":
            action = "skip" if training["epochs"] == request.epochs else "extend"
        else:
            action = "resume"
        jobs.append(Job(variant, seed, action, run_dir, params))
    return jobs


def plan_locked(request, folders, locks):
    """`plan`, after locking every run it will train: planning again under the locks catches a run
    another suite started or extended in the meantime."""
    while True:
        todo = plan(request, folders)
        unlocked = [(j.variant, j.seed) for j in todo if j.action != "skip" and (j.variant, j.seed) not in locks]
        if not unlocked:
            return todo
        locks.take(unlocked)


def train_command(job, request, folders):
    """The `train.py` command line for a job, decided when it starts rather than when it was
    planned: `--resume DIR --epochs E` if its (variant, seed) has a run folder by then (so a Ray task
    retried after its node was lost continues the run that node began), else a new run in the pool."""
    command = [sys.executable, str(TRAIN_SCRIPT)]
    found = folders.runs().get((job.variant, job.seed))
    if found is not None:
        return command + ["--resume", str(found[0]), "--epochs", str(request.epochs)]
    command += ["--preset", job.variant, "--dataset", request.dataset, "--epochs", str(request.epochs),
                "--seed", str(job.seed), "--run-root", str(folders.pool)]
    return (command + (["--limit", str(request.limit)] if request.limit else [])
            + (["--mixed-precision"] if request.mixed_precision else []))


def start_training(job, request, folders, env, where=None):
    """Start `train.py` for `job` with `env` added, its output appended to the job's log, a header
    line per attempt (so a resumed run's log keeps its history); returns (process, open log file).

    The process dies with this one (utils/lifeline.py). Logs are streams, so unlike every other file
    here they are not written atomically.
    """
    command = train_command(job, request, folders)
    action = "resume (the run an earlier attempt began)" if job.action == "new" and "--resume" in command \
        else job.action
    folders.logs.mkdir(parents=True, exist_ok=True)
    log = open(folders.logs / f"{job.name}.log", "a")
    log.write(f"=== {runs.now()} {action} on {where or socket.gethostname()}: {' '.join(command)}\n")
    log.flush()
    process = subprocess.Popen([sys.executable, str(LIFELINE), str(os.getpid()), *command], cwd=REPO_ROOT,
                               env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT)
    return process, log


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
    are GPUs (several to a GPU when jobs > GPUs, each growing its memory as needed instead of reserving
    all of it); otherwise the CPU cores shared out."""
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        share = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"} if jobs > len(gpus) else {}
        return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)], **share} for i in range(jobs)]
    if jobs == 1:
        return [{}]
    return [thread_environment(max(1, (cpus or os.cpu_count() or 1) // jobs)) for _ in range(jobs)]


def thread_environment(threads):
    """TensorFlow and OpenMP limited to `threads` threads each."""
    # Without this each process starts a thread per core and they fight over the cores
    # (measured on 2 cores: 7.1 s per epoch each instead of 6.0 s with one thread each).
    return {name: str(threads) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")}


@dataclass
class Attempt:
    """A finished training attempt: its job, exit status, seconds and log file (and, where the backend
    lost it rather than the process ending, why)."""

    job: Job
    returncode: int
    seconds: float
    log: Path
    error: str = ""

    def last_line(self):
        """Why it failed: the backend's reason, else the last non-empty line of the log (the one-line
        error or the traceback's last line)."""
        if self.error:
            return self.error
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(empty log)"


class Backend:
    """Trains jobs somewhere; see the module docstring. The context manager connects and disconnects."""

    name = "?"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def describe(self):
        """How trainings will run, for the suite's plan line."""
        raise NotImplementedError

    def check_shared(self, folders):
        """Raise `UserError` if a worker could not see `folders` (nothing to check on one machine)."""

    def run(self, jobs, request, folders, on_done):
        """Train `jobs` (none of them "skip"), calling `on_done(attempt)` as each ends."""
        raise NotImplementedError


class LocalBackend(Backend):
    """`train.py` processes on this machine, `jobs` at a time."""

    name = "local"

    def __init__(self, jobs=1, environments=None, poll=0.2):
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise UserError(f"--jobs must be a positive integer; got {jobs}")
        self.jobs, self.poll = jobs, poll
        self.environments = environments or slot_environments(jobs)

    def describe(self):
        gpus = [env.get("CUDA_VISIBLE_DEVICES", "") for env in self.environments]
        if not any(gpus):
            return f"{self.jobs} at a time on CPU"
        packed = " (several to a GPU, memory growth on)" if len(set(gpus)) < len(gpus) else ""
        return f"{self.jobs} at a time on GPU {', '.join(sorted(set(gpus)))}{packed}"

    def run(self, jobs, request, folders, on_done):
        pending, running = deque(jobs), {}
        free = list(range(self.jobs))
        try:
            while pending or running:
                while pending and free:
                    slot, job = free.pop(0), pending.popleft()
                    process, log = start_training(job, request, folders, self.environments[slot])
                    running[slot] = (process, job, time.perf_counter(), log)
                time.sleep(self.poll)
                for slot, (process, job, start, log) in list(running.items()):
                    if process.poll() is None:
                        continue
                    log.close()
                    del running[slot]
                    free.append(slot)
                    on_done(Attempt(job, process.returncode, time.perf_counter() - start, Path(log.name)))
        finally:  # an interrupt (or an error in on_done) must not leave trainings running unwatched
            for process, _, _, log in running.values():
                process.terminate()
                process.wait()
                log.close()
