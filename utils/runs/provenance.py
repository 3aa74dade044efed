"""What a run records about where its numbers come from: versions, the Keras backend, the git commit, times."""

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

# The packages whose versions decide a backend's numbers.
BACKEND_PACKAGES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


def backend():
    """The Keras backend of this process (`KERAS_BACKEND`, else ~/.keras/keras.json, else tensorflow)."""
    import keras

    return keras.backend.backend()


def versions():
    """Versions of everything that decides the numbers, the backend and the XLA flags of the process."""
    import keras
    import numpy

    found = {"python": platform.python_version(), "keras": keras.__version__, "backend": backend(),
             "numpy": numpy.__version__, "platform": platform.platform(), "xla_flags": os.environ.get("XLA_FLAGS", "")}
    for package in BACKEND_PACKAGES.get(backend(), ()):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "unknown"
    return found


def recorded_backend(params):
    """The backend a run was made with (folders made before it was recorded: tensorflow)."""
    return params.get("versions", {}).get("backend", "tensorflow")


def git_commit():
    """The code's git commit (with `-dirty` when it has uncommitted changes), or None."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def now():
    """The current UTC time as ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
