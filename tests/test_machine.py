"""The host description that data cards and benchmark lines record."""

import os

from mb2po_jax.machine import machine_description

# Two processors of a Zen 4 host, as /proc/cpuinfo lists them (abridged).
ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512bw

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512bw
"""


def test_reads_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(ZEN4)
    out = machine_description(path)
    assert out["cpu_model"] == "AMD EPYC 9R14"
    assert out["cpu_family_model"] == "25/17"
    assert out["avx512f"] is True
    assert out["cpu_count"] == os.cpu_count()


def test_avx512_absent_is_false(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(ZEN4.replace(" avx512f avx512bw", ""))
    assert machine_description(path)["avx512f"] is False


def test_without_cpuinfo_names_the_architecture_only(tmp_path):
    out = machine_description(tmp_path / "missing")
    assert set(out) == {"arch", "cpu_count", "cpu_model"}
    assert out["cpu_model"]  # platform.processor() or "unknown", never empty
