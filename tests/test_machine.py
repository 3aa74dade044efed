"""benchmarks/machine.py: the CPU read from /proc/cpuinfo text, and steal and busy shares from /proc/stat readings."""

import pytest

from benchmarks.machine import CpuMeter, cpu_share, cpu_times, machine_info, machine_line

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14 96-Core Processor
stepping\t: 1
cpu cores\t: 1
flags\t\t: fpu avx2 avx512f avx512_bf16 hypervisor

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu avx2 avx512f avx512_bf16 hypervisor
"""


def test_machine_info_reads_vendor_model_and_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = machine_info(path)
    assert (info["vendor"], info["model"], info["family_model_stepping"]) == (
        "AuthenticAMD", "AMD EPYC 9R14 96-Core Processor", "25/17/1")
    assert info["logical_cpus"] == 2 and info["cores_per_socket"] == 1 and info["hypervisor"]
    assert info["isa"]["avx512_bf16"] and not info["isa"]["amx_bf16"]
    line = machine_line(info)
    assert line.startswith("machine: AuthenticAMD AMD EPYC 9R14") and "avx512_bf16 no-avx512_fp16 no-amx_bf16" in line


def test_machine_line_names_the_xla_flags(tmp_path, monkeypatch):
    """Figures taken with different XLA code (e.g. its vector width) are told apart by the machine line."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_prefer_vector_width=256")
    assert machine_line(machine_info(tmp_path / "missing")).endswith("XLA_FLAGS=--xla_cpu_prefer_vector_width=256")


def test_machine_info_without_cpuinfo_still_answers(tmp_path):
    info = machine_info(tmp_path / "missing")
    assert info["vendor"] is None and info["isa"] is None and "flags unknown" in machine_line(info)


def test_cpu_share_counts_steal_and_busy(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3\n")
    before = cpu_times(stat)
    stat.write_text("cpu  160 0 70 900 10 0 0 90 0 0\n")  # +60 user +20 system +100 idle +50 steal = 230
    share = cpu_share(before, cpu_times(stat))
    assert share["steal_pct"] == pytest.approx(100 * 50 / 230) and share["busy_pct"] == pytest.approx(100 * 80 / 230)
    assert cpu_share(None, before) == {"steal_pct": None, "busy_pct": None}


def test_meter_reports_over_a_block():
    with CpuMeter() as meter:
        sum(range(10_000))
    assert meter.result["seconds"] >= 0 and "steal" in meter.summary()
