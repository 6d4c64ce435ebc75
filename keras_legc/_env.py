"""The one capture of versions, machine and date that every recorded file cites (export JSON,
diagnostics, reproduction results, evidence reports).

Versions come from the installed distributions' metadata, so nothing heavy (TensorFlow, shap) is
imported just to name its version.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path


def package_version(name: str, default: str | None = None) -> str | None:
    """The installed version of distribution ``name``, or ``default`` when it is not installed.

    Args:
        name: a distribution name as pip knows it (``"tensorflow"``, ``"keras-legc"``).
        default: what to return for a package that is not installed.

    Example:
        >>> package_version("numpy")
        '2.4.6'
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return default


def versions(
    names: Iterable[str], *, default: str | None = None, skip_missing: bool = False
) -> dict[str, str | None]:
    """``{name: version}`` for each distribution in ``names``.

    Args:
        names: distribution names.
        default: the value for a package that is not installed.
        skip_missing: leave packages that are not installed out instead.

    Example:
        >>> versions(["numpy", "not-a-package"], skip_missing=True)
        {'numpy': '2.4.6'}
    """
    out = {}
    for name in names:
        v = package_version(name)
        if v is not None or not skip_missing:
            out[name] = v if v is not None else default
    return out


def usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count()


# the vector extensions that decide which oneDNN / XNNPACK kernels run, hence the last bits of
# a trained net's weights and a model's latency
_SIMD_PREFIXES = ("sse4", "avx", "fma", "amx", "sve", "asimd")


def cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """The CPU's model name and its SIMD extensions, from ``cpuinfo`` (Linux); empty elsewhere.

    Two machines with the same Python and packages but different extensions (AVX-512 or AMX
    present or not) can train a net to different weights under op determinism.

    Example:
        >>> sorted(cpu())
        ['model', 'simd']
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:  # the first processor's fields
            fields[key.strip()] = value.strip()
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    return {
        "model": fields.get("model name") or fields.get("CPU part") or platform.processor(),
        "simd": sorted(f for f in flags if f.startswith(_SIMD_PREFIXES)),
    }


def machine() -> dict:
    """Platform, processor, CPU model and extensions, CPU counts and the Python version.

    Example:
        >>> machine()["python"]
        '3.11.9'
    """
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "python": platform.python_version(),
    }


def machine_summary() -> str:
    """``"<arch>, <n> CPUs"``, the one-line machine of a results file."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs"


def python_version() -> str:
    """The running Python's version, e.g. ``"3.11.9"``."""
    return platform.python_version()


def today(*, utc: bool = False) -> str:
    """Today's date as ``YYYY-MM-DD``, local time (or UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%d") if utc else time.strftime("%Y-%m-%d")
