"""What a Ray node runs to show that it sees the suite's folders. Kept apart from ray_backend.py, whose
imports reach Keras and TensorFlow (4.5 s here): a task's function is imported on the node that runs it,
and this module imports only the standard library (tests/test_imports.py checks it)."""

import socket
from pathlib import Path


def node_where():
    """(Ray node id, "host (Ray node abcd1234)") of the node this runs on."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return node_id, f"{socket.gethostname()} (Ray node {node_id[:8]})"


def write_probes(folders, token):
    """Runs on a node: write `.probe-<token>-<node id>` into each folder; returns (node id, where, errors)."""
    node_id, where = node_where()
    errors = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            errors.append(f"has no folder {folder}")
            continue
        try:
            (folder / f".probe-{token}-{node_id}").write_text(where)
        except OSError as e:
            errors.append(f"cannot write to {folder} ({e.strerror or e})")
    return node_id, where, errors
