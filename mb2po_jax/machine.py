"""The host a result was made on, for the records that cite it.

Float rounding, and so bit-level results, depend on the CPU: with the same
seed and packages, a Zen 4 machine (AVX-512) made other SAC datasets than Zen 3
ones (docs/datasets.md), and speed figures mean little without the CPU. Data
cards and benchmark lines both name it with :func:`machine_description`.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def machine_description(cpuinfo_path: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """``arch``, ``cpu_count`` and ``cpu_model`` always; where ``cpuinfo_path``
    can be read (Linux) also ``cpu_family_model`` (e.g. ``"25/17"``, Zen 4)
    and ``avx512f``, from its first processor."""
    out: dict[str, Any] = {"arch": platform.machine(), "cpu_count": os.cpu_count(),
                           "cpu_model": platform.processor() or "unknown"}
    try:
        cpuinfo = Path(cpuinfo_path).read_text()
    except OSError:  # not Linux: the architecture is all there is to say
        return out
    fields = {}
    for line in cpuinfo.split("\n\n", 1)[0].splitlines():  # the first processor
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    out["cpu_model"] = fields.get("model name", out["cpu_model"])
    if "cpu family" in fields:
        out["cpu_family_model"] = f"{fields['cpu family']}/{fields.get('model', '?')}"
    out["avx512f"] = "avx512f" in fields.get("flags", "").split()
    return out
