"""run_experiments.py --backend ray on a real Ray cluster of two nodes on this machine (one CPU each,
on 127.0.0.1), shared by every test here: the same summary as the local backend, a node lost while
its run trains, and a folder that a node cannot see."""

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, SUITE, params, run_dirs, run_script
from utils.experiments.report import COLUMNS

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = pytest.mark.slow

POOL = "pool_fashion_mnist_limit300_val"
# A lost node is noticed within about three seconds instead of Ray's default of fifteen (not faster: the
# other xdist worker's tests share the cores, and a busy node must not be taken for a lost one).
FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                "health_check_failure_threshold": 6}
# A node of one CPU on 127.0.0.1 joining the cluster at argv[1], as cluster_utils.Cluster.add_node starts
# one (`ray start --address` would replace 127.0.0.1 by this machine's network address), until its
# standard input closes.
NODE = """
import sys
from ray._private.node import Node
from ray._private.parameter import RayParams
params = RayParams(gcs_address=sys.argv[1], node_ip_address="127.0.0.1", num_cpus=1, num_gpus=0,
                   object_store_memory=100 * 2**20, min_worker_port=0, max_worker_port=0, node_manager_port=0,
                   include_log_monitor=False)
params.dashboard_agent_listen_port = None
node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
sys.stdin.read()
"""


@pytest.fixture(scope="session")
def cluster():
    """A head node and a worker node, one CPU each, started once for every test here."""
    started = time.perf_counter()
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False, "_system_config": FAST_FAILURE})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    print(f"\nRay cluster of two nodes started in {time.perf_counter() - started:.1f} s")
    yield cluster
    cluster.shutdown()


def alive_nodes(cluster):
    return [n for n in cluster.global_state.node_table() if n["Alive"]]


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def run_ray(cluster, out, *extra, timeout=900):
    return run_script("run_experiments.py", *SUITE, "--out", out, "--backend", "ray", "--ray-address",
                      cluster.address, *extra, timeout=timeout)


def hiding_command(folder):
    """A command prefix that runs a command in a mount namespace where `folder` is an empty tmpfs: the
    same path as on this machine but other storage, as on a node that does not mount the shared folder."""
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare[1:1] = ["--user", "--map-root-user"]
    probe = subprocess.run([*unshare, "sh", "-c", f'mount -t tmpfs tmpfs "{folder}"'], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here ({probe.stderr.decode().strip()})")
    return [*unshare, "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"', str(folder)]


def test_a_folder_a_node_cannot_see_is_refused_before_any_training(cluster, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    node = subprocess.Popen(hiding_command(shared) + [sys.executable, "-c", NODE, cluster.address],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(alive_nodes(cluster)) == 3, 60, "the third node")
        done = run_ray(cluster, shared / "activations")
    finally:
        node.communicate(timeout=60)  # closing its input stops the node
        wait_for(lambda: len(alive_nodes(cluster)) == 2, 60, "the third node to leave")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "not on storage every Ray node sees" in error[0], done.stderr
    assert f"has no folder {shared / 'activations'}" in error[0]
    assert list(shared.iterdir()) == [], "nothing trained, and the folders this run made are removed"


def test_ray_suite_matches_the_local_one(cluster, local_suite, tmp_path):
    out = tmp_path / "activations"
    done = run_ray(cluster, out, "--variants", "base_lrelu")  # two runs, one for each node
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("-> finished in") == 2 and "on 2 nodes" in done.stdout
    ray_summary, local_summary = pd.read_csv(out / "summary.csv"), pd.read_csv(local_suite[0] / "summary.csv")
    local_summary = local_summary[local_summary["variant"] == "base_lrelu"].reset_index(drop=True)
    assert list(ray_summary.columns) == list(local_summary.columns)
    assert list(ray_summary.columns)[:len(COLUMNS)] == COLUMNS and "test_nll" in ray_summary
    same = ["variant", "seed", "status", "epochs", "best_epoch"]
    assert ray_summary[same].equals(local_summary[same])
    # One thread per run on both backends, the same seeds and data: the same numbers, losses and scores.
    numbers = [c for c in ray_summary.select_dtypes("number").columns if c not in ("train_seconds", *same)]
    assert "final_val_loss" in numbers and "test_nll" in numbers
    np.testing.assert_allclose(ray_summary[numbers], local_summary[numbers], rtol=1e-6)
    assert sorted(p.name for p in (out / "logs").iterdir()) == sorted(
        p.name for p in (local_suite[0] / "logs").iterdir() if p.name.startswith("base_lrelu"))
    settings = [(folder / "summary.md").read_text().split("\n\n")[1] for folder in (out, local_suite[0])]
    assert settings[0] == settings[1].replace("2 variants", "1 variant") and "1 variant × 2 seeds" in settings[0]
    for figure in ("losses.png", "total_loss.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    ran_on = {line.split(" on ", 1)[1].split(":")[0] for log in (out / "logs").iterdir()
              for line in log.read_text().splitlines() if line.startswith("===")}
    assert len(ran_on) == 2, f"both nodes train: {ran_on}"


def test_a_node_lost_while_its_run_trains_is_resumed_elsewhere(cluster, tmp_path):
    out, pool = tmp_path / "activations", tmp_path / "pool_fashion_mnist_limit1200_val"
    worker = next(iter(cluster.worker_nodes))
    suite = subprocess.Popen([sys.executable, "run_experiments.py", *SUITE, "--variants", "base_lrelu",
                              "--epochs", "5", "--limit", "1200", "--eval-samples", "0",  # scoring: not the point
                              "--out", str(out), "--backend", "ray",
                              "--ray-address", cluster.address], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        def worker_log():  # the log of the job that started on the worker node
            logs = (out / "logs").glob("*.log") if (out / "logs").is_dir() else []
            return next((log for log in logs if worker.node_id[:8] in log.read_text()), None)

        def worker_run():
            return worker_log() and run_dirs(pool).get(("base_lrelu", int(worker_log().stem.rsplit("seed", 1)[1])))

        def epochs_written():
            history = worker_run() and worker_run() / "training.csv"
            return len(history.read_text().splitlines()) - 1 if history and history.is_file() else 0
        # Two epochs written: the backup of epoch 1 at least is complete.
        wait_for(lambda: epochs_written() >= 2, 300, "two epochs on the worker node")
        lost, lost_log = worker_run(), worker_log()
        cluster.remove_node(worker, allow_graceful=False)
        stdout, _ = suite.communicate(timeout=600)
    finally:
        if suite.poll() is None:
            suite.kill()
        if len(alive_nodes(cluster)) < 2:  # the next tests get two nodes again
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    assert suite.returncode == 0, stdout
    assert stdout.count("-> finished in") == 2
    for run_dir in run_dirs(pool).values():
        assert list(pd.read_csv(run_dir / "training.csv")["epoch"]) == [1, 2, 3, 4, 5]
        assert params(run_dir)["status"] == "finished"
    resumes = params(lost)["resumes"]
    assert len(resumes) == 1 and resumes[0]["from_epoch"] >= 1, resumes  # nothing retrained from scratch
    attempts = [line for line in lost_log.read_text().splitlines() if line.startswith("===")]
    assert len(attempts) == 2 and worker.node_id[:8] in attempts[0] and worker.node_id[:8] not in attempts[1]
    assert "resume (the run an earlier attempt began) on " in attempts[1] and f"--resume {lost} " in attempts[1]
