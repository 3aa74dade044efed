"""Write-then-rename, so a kill at any moment leaves the old file or the new one, never half of one."""

import contextlib
import json
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix, so Keras and matplotlib accept it); on
    success rename it over `path`, on failure delete it and leave `path` as it was."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # data on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path, text):
    """Atomically replace `path` with `text`."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path, data):
    """Atomically replace `path` with `data` as indented JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
