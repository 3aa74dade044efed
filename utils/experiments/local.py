"""The local backend of the suite runner: every job is a `train.py` process on this machine, `jobs` at a time,
sharing out the GPUs (round robin) or the CPU cores. `train_command` and `start_training` are also what a
Ray task runs (ray_backend.py)."""

import os
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from utils import cli
from utils.experiments.suite import PASSED_ON, REPO_ROOT, Job
from utils.runs import provenance
from utils.training.run import RESUME_SETTINGS

TRAIN_SCRIPT = REPO_ROOT / "train.py"  # every family; train_vae.py is the same command for VAEs
LIFELINE = Path(__file__).resolve().with_name("lifeline.py")


def train_command(job, request, folders):
    """The `train.py` command line for a job, decided when it starts rather than when it was
    planned: `--resume DIR --epochs E` if its (variant, seed) has a run folder by then (so a Ray task
    retried after its node was lost continues the run that node began), else a new run in the pool with the
    suite's training settings. The run scores itself when it ends (`--eval-samples`), in its own slot."""
    command = [sys.executable, str(TRAIN_SCRIPT)]
    found = folders.runs().get((job.variant, job.seed))
    if found is not None:
        return command + ["--resume", str(found[0]), *cli.setting_flags(request.settings, RESUME_SETTINGS)]
    return command + ["--preset", job.variant, "--seed", str(job.seed), "--run-root", str(folders.pool),
                      *cli.setting_flags(request.settings, PASSED_ON)]


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
    log.write(f"=== {provenance.now()} {action} on {where or socket.gethostname()}: {' '.join(command)}\n")
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


# Several processes on one GPU must each take the memory they use, not all of it: TensorFlow grows its
# share, JAX stops reserving 75 % of the GPU at start; PyTorch's allocator grows as needed anyway.
GPU_SHARING = {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def slot_environments(jobs, gpus=None, cpus=None):
    """Environment changes for each of `jobs` parallel slots: one GPU each, round robin, where there
    are GPUs (several to a GPU when jobs > GPUs, each growing its memory as needed instead of reserving
    all of it); otherwise the CPU cores shared out."""
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        share = GPU_SHARING if jobs > len(gpus) else {}
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
