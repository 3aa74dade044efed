"""The Ray backend of the suite runner: each (variant, seed) is a Ray task that runs the same
`train.py` command line as the local backend, on whichever node Ray picks.

    python run_experiments.py --suite all --backend ray --ray-address HEAD:6379 --gpus-per-run 0.25

Every node must see the suite folder and the pool at the same path (a shared folder, NFS or similar),
and hold the repository and the data at the same paths as the driver. A task decides when it starts
whether its run folder already exists and resumes it, so a task that Ray retries after losing its node
continues from that run's last finished epoch.
"""

import math
import os
import socket
import time
import uuid
from contextlib import contextmanager

from utils.errors import UserError
from utils.experiments.local import GPU_SHARING, Attempt, Backend, start_training, thread_environment
from utils.experiments.ray_probe import node_where, write_probes

# Settings of the driver's environment that decide what a run is and how it computes (the Keras backend,
# XLA's flags, families kept outside the project and where they are found); the local backend's processes
# inherit them, Ray's tasks get them here.
DRIVER_ENVIRONMENT = ("KERAS_BACKEND", "XLA_FLAGS", "VAE_FAMILY_MODULES", "PYTHONPATH")

RETRIES = 3  # Ray's default for tasks: a run survives the loss of three nodes
PROBE_WAIT = 3.0  # seconds the driver waits for a probe file (a shared file system may show it late)
LOOPBACK = ("127.0.0.1", "localhost")


def import_ray():
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray, which is not installed: "
                        "pip install -r requirements-extras.txt") from None
    return ray


def _check_reachable(address):
    """A one-line error unless something listens at `host:port` (Ray would retry for a minute first)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: ray.init says what is wrong
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UserError(f"cannot reach a Ray cluster at --ray-address {address} ({e.strerror or e}); start one "
                        "with `ray start --head` or leave --ray-address out for a local one") from None


class RayBackend(Backend):
    """Trainings as Ray tasks of `cpus_per_run` CPUs and `gpus_per_run` GPUs each, on the cluster at
    `address` (default: $RAY_ADDRESS, else a local Ray started for the suite and stopped after it)."""

    name = "ray"

    def __init__(self, address=None, gpus_per_run=None, cpus_per_run=1, retries=RETRIES):
        if gpus_per_run is not None and not (_positive(gpus_per_run) and (gpus_per_run <= 1
                                                                          or gpus_per_run == int(gpus_per_run))):
            raise UserError(f"--gpus-per-run must be a number > 0, a fraction up to 1 or a whole number "
                            f"(leave it out to train on CPUs); got {gpus_per_run}")
        if not _positive(cpus_per_run):
            raise UserError(f"--cpus-per-run must be a number > 0; got {cpus_per_run}")
        self.ray = import_ray()
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.gpus, self.cpus, self.retries = gpus_per_run, cpus_per_run, retries

    def __enter__(self):
        ray = self.ray
        options = dict(log_to_driver=False, logging_level="ERROR", configure_logging=True)
        if self.address:
            _check_reachable(self.address)
            loopback = self.address.removeprefix("ray://").rpartition(":")[0] in LOOPBACK
            try:
                with _kept_on_loopback(loopback):
                    ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"cannot connect to the Ray cluster at {self.address}: "
                                f"{' '.join(str(e).split())[:300]}") from None
        else:
            # "local" starts a new Ray even if another one runs on this machine.
            with _kept_on_loopback(True):
                ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, **options)
        if self.gpus is None:
            self.gpus = 1 if ray.cluster_resources().get("GPU") else 0
        self.nodes = self._usable_nodes()
        return self

    def __exit__(self, *exc):
        self.ray.shutdown()

    def _usable_nodes(self):
        need = {"CPU": self.cpus, "GPU": self.gpus}
        alive = [n for n in self.ray.nodes() if n["Alive"]]
        usable = [n for n in alive if all(n["Resources"].get(k, 0) >= v for k, v in need.items() if v)]
        if not usable:
            self.ray.shutdown()
            raise UserError(f"no node of the Ray cluster ({len(alive)} alive) has {self.cpus} CPU and {self.gpus} "
                            "GPU for one run; lower --cpus-per-run / --gpus-per-run or add such nodes")
        return usable

    def describe(self):
        where = self.address or "a local Ray started for this suite"
        gpus = f" and {self.gpus} GPU" if self.gpus else ""
        return (f"as Ray tasks of {self.cpus} CPU{gpus} each on {len(self.nodes)} node"
                f"{'s' if len(self.nodes) != 1 else ''} ({where})")

    def check_shared(self, folders):
        """Every usable node writes a probe file into the suite folder and the pool; the driver must
        read each of them, else the folders are not shared and nothing is trained."""
        ray, token = self.ray, uuid.uuid4().hex[:12]
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(write_probes)
        refs = [probe.options(num_cpus=0, max_retries=0,
                              scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote([str(folders.suite), str(folders.pool)], token) for n in self.nodes]
        try:
            answers = ray.get(refs, timeout=120)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as e:
            raise UserError(f"could not check that every Ray node sees {folders.suite}: {type(e).__name__}") from None
        problems = []
        for node_id, where, errors in answers:
            problems += [f"{where} {error}" for error in errors]
            for folder in (folders.suite, folders.pool):
                path = folder / f".probe-{token}-{node_id}"
                if not errors and not _appears(path):
                    problems.append(f"{where} wrote {path.name} into {folder} but this machine cannot read it")
                path.unlink(missing_ok=True)
        if problems:
            raise UserError(f"the suite folder and pool are not on storage every Ray node sees: {problems[0]}"
                            f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; put --out and "
                            "--pool on a shared folder (NFS or similar) mounted at the same path on every node")

    def run(self, jobs, request, folders, on_done):
        ray = self.ray
        task = ray.remote(_train).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
                                          retry_exceptions=False)
        env = thread_environment(max(1, math.ceil(self.cpus)))
        env.update({k: os.environ[k] for k in DRIVER_ENVIRONMENT if k in os.environ})
        if not self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # Ray leaves it alone for tasks without GPUs
        elif self.gpus < 1:  # several processes on one GPU must not each reserve all of its memory
            env.update(GPU_SHARING)
        started = time.perf_counter()
        pending = {task.remote(job, request, folders, env): job for job in jobs}
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ref)
                log = folders.logs / f"{job.name}.log"
                try:
                    returncode, seconds = ray.get(ref)
                    attempt = Attempt(job, returncode, seconds, log)
                except ray.exceptions.RayError as e:  # e.g. more nodes lost than retries allowed
                    reason = " ".join(str(e).split())[:200]
                    attempt = Attempt(job, -1, time.perf_counter() - started, log, error=f"Ray: {reason}")
                on_done(attempt)
        finally:  # an interrupt (or an error in on_done): stop the tasks, which stops their trainings
            for ref in pending:
                ray.cancel(ref, force=True)


@contextmanager
def _kept_on_loopback(loopback):
    """Within it, Ray leaves 127.0.0.1 as it is. Ray replaces 127.0.0.1 in the addresses given to
    ray.init by this machine's network address, on purpose, so that other machines can reach its
    services (ray-project/ray#26293); a Ray that lives on one machine that allows traffic to 127.0.0.1
    only (this project's test machines) must be started and joined on 127.0.0.1 itself."""
    if not loopback:
        yield
        return
    from ray._private import services

    original = services.get_node_ip_address
    services.get_node_ip_address = lambda address=None: "127.0.0.1"
    try:
        yield
    finally:
        services.get_node_ip_address = original


def _positive(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _appears(path, wait=PROBE_WAIT):
    deadline = time.monotonic() + wait
    while not path.is_file():
        if time.monotonic() > deadline:
            return False
        os.listdir(path.parent)  # a fresh directory listing, past a network file system's cache
        time.sleep(0.2)
    return True


def _train(job, request, folders, env):
    """Runs on a node: one attempt at `job`, as the local backend would start it; (exit status, seconds)."""
    start = time.perf_counter()
    process, log = start_training(job, request, folders, env, where=node_where()[1])
    try:
        return process.wait(), time.perf_counter() - start
    finally:
        log.close()
