"""Locks of a suite runner: one on the suite folder (its summary and logs) and one per run of a pool,
so runners sharing a pool never train the same run at once. `flock` locks go away with the process,
so a killed runner never leaves a stale lock behind."""

import fcntl
from pathlib import Path

from utils.errors import UserError


def _exclusive(path, message):
    """`path` opened and locked exclusively, or a one-line error if another process holds it."""
    file = open(path, "w")
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise UserError(message) from None
    return file


class SuiteLock:
    """An exclusive lock on the suite folder, so two runners never write the same summary and logs."""

    def __init__(self, suite_dir):
        self.path = Path(suite_dir) / ".suite.lock"

    def __enter__(self):
        self.file = _exclusive(self.path, f"another run_experiments.py is working in {self.path.parent}; "
                                          "wait for it or stop it first")
        return self

    def __exit__(self, *exc):
        self.file.close()


class RunLocks:
    """Exclusive locks on single runs of a pool, so two suites sharing it never train the same run at
    once, while each may train the runs the other does not need."""

    def __init__(self, pool):
        self.folder = Path(pool) / ".locks"
        self.files = {}

    def __contains__(self, key):
        return key in self.files

    def take(self, keys):
        """Lock every (variant, seed) of `keys`; a one-line error if another runner holds one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for variant, seed in keys:
            self.files[(variant, seed)] = _exclusive(
                self.folder / f"{variant}_seed{seed}.lock",
                f"another run_experiments.py is training {variant} seed {seed} in {self.folder.parent}; "
                "wait for it or stop it first")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for file in self.files.values():
            file.close()
