"""Run a command that dies with the process that started it: `python utils/lifeline.py PID command...`.

A training whose runner is killed (the suite's driver, or a Ray worker whose node is lost) must not go
on training unwatched: its run would then be resumed by a second process while the first still writes
to it. On Linux the kernel sends SIGKILL to this process when its parent exits, and the setting
survives the exec of the command; elsewhere the command simply runs. Standard library only, so it
starts in milliseconds.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def main(argv):
    """Exec `argv[1:]` so that it is killed when process `argv[0]` (our parent) ends."""
    parent, command = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent ended before the line above took effect
            sys.exit(f"lifeline: the process that started this training ({parent}) has ended")
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
