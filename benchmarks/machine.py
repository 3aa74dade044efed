"""Which machine a benchmark ran on, and how busy it was: so figures from different hosts are never confused.

    from benchmarks.machine import machine_info, machine_line, CpuMeter
    print(machine_line(machine_info()))      # CPU: GenuineIntel Intel(R) Xeon(R) ..., 2 CPUs, avx512f ...
    with CpuMeter() as meter:
        ...                                  # the timed work
    print(meter.summary())                   # steal 0.4 %, busy 97 %, load 2.1 over 63 s

Reads Linux's /proc/cpuinfo, /proc/stat and /proc/loadavg; elsewhere the fields it cannot read are
None, so a benchmark still runs. `python -m benchmarks.machine` prints the line and the JSON.
"""

import json
import os
import platform
import sys
import time
from pathlib import Path

# The instruction-set flags that decide this project's speed: AVX2/AVX-512 for TensorFlow's float32
# kernels, AVX512-BF16 and AMX for --mixed-precision (bfloat16) on CPU.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
PROC_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _cpuinfo(text):
    """The first processor's `key: value` pairs of /proc/cpuinfo text, and how many processors it lists."""
    first, count = {}, 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            count += 1
        elif count == 1 and key and key not in first:
            first[key] = value.strip()
    return first, count


def machine_info(cpuinfo_path="/proc/cpuinfo"):
    """CPU vendor, model, family/model/stepping, logical CPUs usable here, cores, the ISA flags that
    matter, whether it runs under a hypervisor, and the TensorFlow thread settings from the environment."""
    try:
        first, listed = _cpuinfo(Path(cpuinfo_path).read_text())
    except OSError:
        first, listed = {}, None
    flags = set(first.get("flags", "").split())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = first.get("cpu cores")
    return {
        "vendor": first.get("vendor_id"),
        "model": first.get("model name") or platform.processor() or None,
        "family_model_stepping": "/".join(first.get(k, "?") for k in ("cpu family", "model", "stepping"))
        if first else None,
        "logical_cpus": listed or os.cpu_count(),
        "usable_cpus": usable,
        "cores_per_socket": int(cores) if cores and cores.isdigit() else None,
        "isa": {flag: flag in flags for flag in ISA_FLAGS} if flags else None,
        "hypervisor": "hypervisor" in flags if flags else None,
        "threads_env": {k: os.environ[k] for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                                   "OMP_NUM_THREADS", "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS")
                        if k in os.environ},
        "python": platform.python_version(),
    }


def machine_line(info):
    """One line: vendor, model, CPUs, the ISA flags present and absent, hypervisor."""
    isa = info["isa"]
    flags = ("flags " + " ".join(f if on else f"no-{f}" for f, on in isa.items())) if isa else "flags unknown"
    cpus = f"{info['usable_cpus']} usable CPUs"
    if info["logical_cpus"] != info["usable_cpus"]:
        cpus += f" of {info['logical_cpus']}"
    where = ", under a hypervisor" if info["hypervisor"] else ""
    threads = "".join(f", {k}={v}" for k, v in info["threads_env"].items())
    return (f"machine: {info['vendor'] or '?'} {info['model'] or '?'} (family/model/stepping "
            f"{info['family_model_stepping'] or '?'}), {cpus}{where}; {flags}{threads}")


def cpu_times(stat_path="/proc/stat"):
    """The machine's cumulative CPU time by kind (USER_HZ ticks) from /proc/stat's `cpu` line, or None."""
    try:
        first = Path(stat_path).read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[0] != "cpu":
        return None
    return dict(zip(PROC_STAT_FIELDS, (int(v) for v in first[1:1 + len(PROC_STAT_FIELDS)])))


def load_average():
    """The 1-minute load average, or None where the OS does not say."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def cpu_share(before, after):
    """Percentages of all CPU time between two `cpu_times` readings: steal (taken by the hypervisor for
    other guests) and busy (neither idle nor iowait nor steal: this process and everyone else's)."""
    if before is None or after is None:
        return {"steal_pct": None, "busy_pct": None}
    delta = {k: after[k] - before[k] for k in PROC_STAT_FIELDS}
    total = sum(delta.values())
    if total <= 0:
        return {"steal_pct": None, "busy_pct": None}
    busy = total - delta["idle"] - delta["iowait"] - delta["steal"]
    return {"steal_pct": 100 * delta["steal"] / total, "busy_pct": 100 * busy / total}


class CpuMeter:
    """Steal, busy share and load average over a `with` block (or between `start()` and `stop()`)."""

    def start(self):
        """Take the first reading."""
        self._times, self._clock, self._load = cpu_times(), time.perf_counter(), load_average()
        self.result = None
        return self

    def stop(self):
        """Take the second reading; `result` holds steal_pct, busy_pct, load (start and end) and seconds."""
        load = load_average()
        self.result = {**cpu_share(self._times, cpu_times()), "load_start": self._load, "load_end": load,
                       "seconds": time.perf_counter() - self._clock}
        return self.result

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()

    def summary(self):
        """`steal 0.4 %, busy 97 %, load 2.1-2.6 over 63 s` (`?` for what could not be read)."""
        r = self.result or {}
        pct = lambda v: "?" if v is None else f"{v:.1f} %"  # noqa: E731
        load = lambda v: "?" if v is None else f"{v:.1f}"  # noqa: E731
        return (f"steal {pct(r.get('steal_pct'))}, busy {pct(r.get('busy_pct'))}, load "
                f"{load(r.get('load_start'))}-{load(r.get('load_end'))} over {r.get('seconds', 0):.0f} s")


if __name__ == "__main__":
    details = machine_info()
    print(machine_line(details))
    json.dump(details, sys.stdout, indent=2)
    print()
