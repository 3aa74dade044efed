"""Write-then-rename, so a kill at any moment leaves the old file or the new one, never half of one."""

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np

SPACE_MARGIN = 256 * 1024  # HDF5's own structures, beyond the arrays, with room to spare


@contextlib.contextmanager
def atomic_path(path, size=0):
    """Yield a temporary path beside `path` (same suffix, so Keras and matplotlib accept it); on
    success rename it over `path`, on failure delete it and leave `path` as it was. With `size` (bytes the
    file will hold), a disk without room for it is an OSError before anything is written: h5py, once a
    write of it fails, keeps a file it cannot close and prints tracebacks (or crashes) when freeing it."""
    path = Path(path)
    if size and shutil.disk_usage(path.parent).free < size + SPACE_MARGIN:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
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


def weights_size(variables):
    """Bytes the arrays of `variables` (Keras variables, whose dtype is a name such as "float32") take in a file."""
    return sum(int(np.prod(v.shape)) * np.dtype(str(v.dtype)).itemsize for v in variables)
