"""Digests of what `legc demo --quick` and `legc reproduce --quick` compute, to prove a refactor moved
no behaviour: the LE series, target, p-values, masks, trained kernels and every accuracy.

    python tools/behaviour_digest.py runs/digest --json before.json   # before the change
    python tools/behaviour_digest.py runs/digest --json after.json --compare before.json

Timings, latencies, dates, paths and versions are left out (they move between identical runs).
Exit 1 when --compare finds a difference (each differing entry is printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

VOLATILE = {"seconds", "command", "environment", "date", "p50_us", "p90_us", "p99_us", "latency",
            "peak_rss_mb", "paths", "keras_legc", "versions", "wall_s", "time", "mean_us"}  # fmt: skip


def _digest_array(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def _digest_npz(path: Path) -> dict[str, str]:
    with np.load(path, allow_pickle=False) as z:
        return {k: _digest_array(z[k]) for k in sorted(z.files) if z[k].dtype.kind != "U"}


def _strip(obj, out: str):
    if isinstance(obj, dict):
        return {
            k: _strip(v, out)
            for k, v in sorted(obj.items())
            if k not in VOLATILE and not k.startswith("seconds")
        }
    if isinstance(obj, list):
        return [_strip(v, out) for v in obj]
    return obj.replace(out, "<out>") if isinstance(obj, str) else obj


def _kernel_digests(model_path: Path) -> dict[str, str]:
    import zipfile

    import h5py

    out = {}
    with zipfile.ZipFile(model_path) as z, z.open("model.weights.h5") as f:
        with h5py.File(f, "r") as h:
            h.visititems(
                lambda name, obj: (
                    out.__setitem__(name, _digest_array(obj[()]))
                    if isinstance(obj, h5py.Dataset)
                    else None
                )
            )
    return out


def run(out: Path, data_dir: str | None) -> dict:
    legc = [sys.executable, "-m", "legc_research.cli"] if _has_research() else [
        sys.executable, "-m", "keras_legc.cli"]  # fmt: skip
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ)
    if data_dir:
        env["LEGC_DATA_DIR"] = data_dir
    subprocess.run([*legc, "demo", "--quick", "--no-diagnose", "--out", str(out / "demo")],
                   check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([*legc, "reproduce", "--quick", "--no-diagnose", "--out", str(out / "repro"),
                    "--docs", str(out / "repro_docs")], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    demo, repro = out / "demo", out / "repro"
    digests: dict = {"demo": {}, "reproduce": {}}
    for npz in sorted(demo.rglob("*.npz")):
        if npz.parent.name == "tflite":
            continue  # reference outputs of the .tflite: covered by the kernels and accuracy
        digests["demo"][str(npz.relative_to(demo))] = _digest_npz(npz)
    for model in sorted(demo.glob("*.keras")):
        digests["demo"][model.name] = _kernel_digests(model)
    summary = json.loads((demo / "summary.json").read_text())
    digests["demo"]["summary.json"] = _strip(summary, str(out))
    results = json.loads((repro / "results.json").read_text())
    digests["reproduce"]["results.json"] = _strip(results, str(out))
    for model in sorted((repro / "models").rglob("*.keras")):
        digests["reproduce"][str(model.relative_to(repro))] = _kernel_digests(model)
    return digests


def _has_research() -> bool:
    try:
        import legc_research  # noqa: F401
    except ImportError:
        return False
    return True


def _diff(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'after' if k in b else 'before'}")
            else:
                out += _diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _diff(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {str(a)[:80]} != {str(b)[:80]}"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="scratch folder for the two runs (replaced)")
    ap.add_argument("--json", type=Path, required=True, help="where to write the digests")
    ap.add_argument("--compare", type=Path, help="digests of an earlier run to compare with")
    ap.add_argument("--data-dir", default=os.environ.get("LEGC_DATA_DIR"))
    args = ap.parse_args(argv)
    digests = run(args.out, args.data_dir)
    args.json.write_text(json.dumps(digests, indent=1, sort_keys=True))
    n = sum(len(v) for v in digests.values())
    print(f"{n} artefacts digested -> {args.json}")
    if args.compare:
        diffs = _diff(json.loads(args.compare.read_text()), digests)
        for d in diffs:
            print("DIFF", d)
        print("bit-identical" if not diffs else f"{len(diffs)} difference(s)")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
