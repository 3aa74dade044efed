"""The compiled CPU GELU op (`models/gelu_op.cc`): built once per machine by the system's C++ compiler, then loaded.

`load()` gives the op's module, or None where models/activations.py runs its XLA programs instead (they give
the same bits): a GPU is visible, `VAE_GELU_KERNEL=xla`, or the build failed (said once on stderr, and
remembered beside the cache so other processes do not retry it). With `VAE_GELU_KERNEL=op` a failed build
is an error. Libraries are cached in `VAE_OP_CACHE` (default ~/.cache/vae-gelus), named by a hash of the
source, the compiler, TensorFlow and the CPU, so a new version or another kind of node builds its own.
"""

import fcntl
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).with_name("gelu_op.cc")
KERNELS = ("auto", "op", "xla")
BUILD_TIMEOUT_S = 600
STALE_BUILD_S = 3600  # a temporary file this old is left from a build that was killed
RETRY_HINT = "unset VAE_GELU_KERNEL (or set it to xla) to run the XLA programs instead"


class GeluOpUnavailable(RuntimeError):
    """The op could not be built or loaded; the message says why, in one line."""


def kernel_choice(environ=os.environ):
    """`VAE_GELU_KERNEL`: auto (the op on CPU, else XLA), op (the op or an error) or xla."""
    choice = environ.get("VAE_GELU_KERNEL", "auto") or "auto"
    if choice not in KERNELS:
        raise ValueError(f"VAE_GELU_KERNEL must be one of {', '.join(KERNELS)}; got {choice!r}")
    return choice


def cache_dir(environ=os.environ):
    """Where built libraries are kept."""
    if environ.get("VAE_OP_CACHE"):
        return Path(environ["VAE_OP_CACHE"])
    try:
        return Path.home() / ".cache" / "vae-gelus"
    except RuntimeError as err:  # no HOME and no passwd entry
        raise GeluOpUnavailable("cannot find a home folder for the op's cache; set VAE_OP_CACHE") from err


def compiler(environ=os.environ):
    """The C++ compiler's command as a list (`CXX`, which may hold a wrapper such as `ccache g++`, else g++)."""
    return shlex.split(environ.get("CXX") or "g++")


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


@functools.cache
def accepts(cxx, flag):
    """Whether the compiler (a tuple) takes `flag` (older GCC and clang do not know every -mno-... option)."""
    try:
        return subprocess.run([*cxx, flag, "-x", "c++", "-fsyntax-only", "-"], input="", capture_output=True,
                              text=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def compile_command(output, cxx):
    """The compiler's argument list that builds the op into `output` for this CPU."""
    import tensorflow as tf

    arch = ["-march=native"]
    if "avx512_fp16" in cpu_flags() and accepts(tuple(cxx), "-mno-avx512fp16"):
        arch.append("-mno-avx512fp16")  # Eigen's AVX512-FP16 packets do not compile with GCC 12
    # -ffp-contract=off: multiply-adds are fused only where the source asks, as XLA fuses them (same bits)
    return [*cxx, "-shared", "-fPIC", "-O3", "-ffp-contract=off", *arch, "-w", str(SOURCE), "-o", str(output),
            *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]


def library_path(cxx):
    """The cached library's path: a hash of the source, the command, the compiler, TensorFlow and the CPU."""
    import tensorflow as tf

    try:
        version = subprocess.run([*cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise GeluOpUnavailable(f"cannot run the C++ compiler {shlex.join(cxx)!r}: {err}") from err
    key = hashlib.sha256()
    for part in (SOURCE.read_text(), " ".join(compile_command("OUT", cxx)), version, tf.__version__,
                 platform.machine(), " ".join(cpu_flags())):
        key.update(part.encode() + b"\0")
    return cache_dir() / f"gelu_op-{key.hexdigest()[:16]}.so"


def first_error(lines):
    """The compiler's first error as `file: error: ...` without the file's folders; for a failed link, the
    linker's message rather than collect2's summary."""
    for i, line in enumerate(lines):
        if "error:" in line and not line.startswith("collect2"):
            return f"{Path(line.split(':', 1)[0]).name}: {line[line.index('error:'):].strip()}"
        if line.startswith("collect2") and i:
            return lines[i - 1].strip()
    return lines[-1].strip()


class LastingFailure(GeluOpUnavailable):
    """A failure that will happen again for the same source, compiler and TensorFlow (a compile error, a
    library that does not load); it is recorded beside the cache so other processes do not retry it."""


def failure_record(path):
    """Where a lasting failure to build or load `path` is written."""
    return path.with_name(path.name + ".failed")


def record_failure(path, err):
    """Write `err` to the failure record, through a temporary file (a crash leaves no empty record)."""
    record = failure_record(path)
    tmp = record.with_name(f".{record.name}.{os.getpid()}")
    tmp.write_text(f"{err}\n")
    os.replace(tmp, record)


def unwritable_cache(folder, err):
    """The one-line error for a cache folder that cannot be created or written."""
    return GeluOpUnavailable(f"cannot write in {folder} ({err.strerror or err}); name a writable folder in VAE_OP_CACHE")


def remove_stale_builds(folder):
    """Delete temporary files left by builds that were killed (other processes' live ones are young)."""
    for old in folder.glob(".building-*"):
        try:
            if time.time() - old.stat().st_mtime > STALE_BUILD_S:
                old.unlink()
        except FileNotFoundError:  # its build finished meanwhile
            pass


def build(path, cxx):
    """Compile the op into `path`, through a temporary file renamed into place (processes may race)."""
    name = shlex.join(cxx)
    try:
        remove_stale_builds(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=".building-", suffix=".so", dir=path.parent)
    except OSError as err:
        raise unwritable_cache(path.parent, err) from err
    os.close(fd)
    try:
        done = subprocess.run(compile_command(tmp, cxx), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                              env={**os.environ, "LC_ALL": "C"})  # English messages, for first_error
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            message = f"{name} could not build {SOURCE.name}: {first_error(lines)}"
            passing = done.returncode < 0 or any(w in done.stderr for w in ("Killed", "No space left"))
            raise GeluOpUnavailable(message) if passing else LastingFailure(message)
        os.replace(tmp, path)
    except subprocess.TimeoutExpired as err:
        raise GeluOpUnavailable(f"{name} took over {BUILD_TIMEOUT_S} s to build {SOURCE.name}") from err
    except OSError as err:  # the compiler could not start, or the rename failed
        raise GeluOpUnavailable(f"{name} could not build {SOURCE.name}: {err.strerror or err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_once(path, cxx):
    """Build `path` unless another process did while this one waited for the lock, or a lasting failure
    was recorded for it (reported instead of compiling again; delete the record to retry)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = failure_record(path)
        if record.exists():
            raise GeluOpUnavailable(f"{record.read_text().strip()} (recorded in {record}; delete it to retry)")
        if path.exists():
            return
        print(f"building the CPU GELU op into {path} (once per machine, ~10 s)", file=sys.stderr)
        try:
            build(path, cxx)
        except LastingFailure as err:
            record_failure(path, err)
            raise


def load_or_build():
    """(the op's module, its library path), built first if this machine has none; GeluOpUnavailable if neither works."""
    import tensorflow as tf

    cxx = compiler()
    if not cxx or shutil.which(cxx[0]) is None:
        raise GeluOpUnavailable(f"no C++ compiler {shlex.join(cxx)!r} on PATH (install g++, or name one in CXX)")
    path = library_path(cxx)
    for attempt in range(2):  # a second build replaces a cached library that does not load
        if attempt:
            path.unlink(missing_ok=True)
        if not path.exists():
            try:
                build_once(path, cxx)
            except OSError as err:  # the folder or the lock file
                raise unwritable_cache(path.parent, err) from err
        try:
            return tf.load_op_library(str(path)), path
        except (tf.errors.OpError, OSError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    failure = LastingFailure(f"cannot load {path}: {reason}")
    record_failure(path, failure)
    raise failure


@functools.cache
def _loaded():
    """(module, path) of the op where it should run, else (None, None); decided once per process."""
    import tensorflow as tf

    choice = kernel_choice()
    if choice == "xla" or (choice == "auto" and tf.config.list_physical_devices("GPU")):
        return None, None
    try:
        return load_or_build()
    except GeluOpUnavailable as err:
        if choice == "op":
            raise GeluOpUnavailable(f"{err}; {RETRY_HINT}") from None
        print(f"warning: {err}; the GELU runs as XLA programs instead, a few per cent slower, same results "
              "(VAE_GELU_KERNEL=xla skips the op)", file=sys.stderr)
        return None, None


def load():
    """The op's module where it should run (float32 on CPU), else None; see the module's docstring."""
    return _loaded()[0]


def kernel_name():
    """What runs the float32 GELU on CPU in this process: `op gelu_op-<hash>.so` or `xla`."""
    path = _loaded()[1]
    return "xla" if path is None else f"op {path.name}"
