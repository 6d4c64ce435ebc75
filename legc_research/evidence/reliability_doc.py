#!/usr/bin/env python3
"""Write docs/reliability.md from the tests: the bad-input catalogue with the message each case
actually produces now, the fuzz campaign, the fault tests, the mutation campaign, plus the
crash-safety and determinism tests and how to run them.

    python tools/reliability_doc.py [--out docs/reliability.md] [--force]
                                    [--fuzz-examples 2000] [--edge-fuzz-examples 2000]
                                    [--fuzz-results F.json] [--mutation docs/mutation.json]

Every catalogue case in tests/catalogue.py is run again here (same code as
tests/integration/test_catalogue.py); a case that no longer raises its error stops the script with exit 1,
so the document can never describe behaviour the code does not have. The fuzz campaign reruns
the hypothesis tests of the loaders (tests/unit/test_fuzz_loaders.py) and of the edge runner's
inputs, with the fault tests (tests/integration/test_faults.py, the --isolate tests of
tests/integration/test_edge_runner.py), at ``--fuzz-examples`` inputs per loader (environment
variable ``LEGC_FUZZ_EXAMPLES``), and records hypothesis' own counts; a failing test stops the
script with exit 1 as well. The mutation section reads the JSON written by tools/mutation.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import keras_legc  # noqa: F401  (selects Keras 2 first)
from keras_legc._io import atomic_write_bytes
from legc_research.evidence._provenance import REPO, machine, python_version, today


def catalogue():
    """The module ``tests/catalogue.py``: a test helper, so only in a source checkout (not the wheel)."""
    if not (REPO / "tests" / "catalogue.py").is_file():
        raise SystemExit(
            f"reliability_doc: no tests/catalogue.py under {REPO}. Fix: run it from a source "
            "checkout of keras-legc (the catalogue is a test helper, not installed with the package)."
        )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests import catalogue as module

    return module


def run(case) -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            case.call(Path(tmp))
        except catalogue().SubprocessError as exc:
            return exc.name, str(exc)
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__, str(exc)
    return "", ""


def cell(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > 400:
        text = text[:397] + "..."
    return text.replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    """Run every catalogue case and write the reliability document; 1 when a case misbehaves."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "reliability.md"))
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    parser.add_argument("--fuzz-examples", type=int, default=2000,
                        help="hypothesis inputs per loader test (file loaders)")  # fmt: skip
    parser.add_argument("--edge-fuzz-examples", type=int, default=2000,
                        help="hypothesis inputs per edge-runner fuzz test")  # fmt: skip
    parser.add_argument("--fuzz-results", help="reuse this JSON of a fuzz run if it exists, "
                        "else write it (the fuzz run takes minutes)")  # fmt: skip
    parser.add_argument("--mutation", default=str(REPO / "docs" / "mutation.json"),
                        help="the JSON of tools/mutation.py --json (skipped if absent)")  # fmt: skip
    args = parser.parse_args(argv)
    rows, bad = _run_cases()
    if bad:
        print("cases that do not behave as catalogued:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    fuzz = _fuzz_runs(args)
    failed = [t for run in fuzz for t, r in run["tests"].items() if r["outcome"] != "passed"]
    if failed:
        print("fuzz or fault tests failed:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    mutation = Path(args.mutation)
    mutation = json.loads(mutation.read_text()) if mutation.is_file() else None
    out = Path(args.out)
    text = (
        _document(rows)
        + _fuzz_section(fuzz)
        + _fault_section(fuzz[1])
        + _mutation_section(mutation)
    )
    atomic_write_bytes(out, text.encode(), overwrite=args.force)
    print(f"wrote {out} ({len(rows)} cases)")
    return 0


def _run_cases() -> tuple[list[str], list[str]]:
    """One table row per case, and the cases that did not raise what they catalogue."""
    rows, bad = [], []
    cases = catalogue().CASES
    for i, case in enumerate(cases, 1):
        expected = case.error if isinstance(case.error, str) else case.error.__name__
        name, message = run(case)
        if name != expected or "Fix" not in message:
            bad.append(f"{case.bad_input}: expected {expected}, got {name or 'nothing'}: {message}")
        rows.append(f"| {i} | {case.area} | {case.bad_input} | `{expected}` | {cell(message)} |")
        print(f"[{i}/{len(cases)}] {case.bad_input}: {name}", file=sys.stderr)
    return rows, bad


FUZZ_TESTS = ["tests/unit/test_fuzz_loaders.py"]
FAULT_TESTS = ["tests/integration/test_faults.py", "tests/integration/test_edge_runner.py::"
               "test_isolate_reports_a_native_crash_with_its_signal",
               "tests/integration/test_edge_runner.py::test_isolate_passes_a_good_model_through"]  # fmt: skip
#: fault test -> what it proves (a test named here that does not exist stops the document)
PROVES = {
    "test_damaged_references_exit_2_never_crash":
        "a truncated, bit-flipped, spliced or overwritten .reference.npz makes the edge runner "
        "exit 2 with one line naming the problem, never a traceback",
    "test_type_confused_references_exit_2":
        "a reference whose arrays hold strings, the wrong shapes, NaN or a bad tolerance is refused",
    "test_a_reference_claiming_1e12_values_is_refused_before_allocating":
        "a forged .npy header claiming 10^12 values is refused from the header (no allocation)",
    "test_damaged_tflite_files_exit_0_or_2_never_crash":
        "damaged .tflite files that keep the TFL3 header load or exit 2 in one child; none of "
        "these random damages crashed the interpreter",
    "test_a_write_that_fails_part_way_keeps_the_previous_file":
        "a write cut off by a full disk (RLIMIT_FSIZE) keeps the previous file intact, removes the "
        "temp file and says so",
    "test_recording_that_cannot_save_keeps_training_and_warns_once":
        "a recorder whose run_dir cannot be written keeps training, warns once, and still returns "
        "the History",
    "test_a_second_process_recording_into_the_same_run_dir_is_refused":
        "two processes recording into one run_dir: the second gets OutputExistsError at start "
        "(an fcntl lock), the journal is never interleaved",
    "test_a_second_process_exporting_to_the_same_path_is_refused":
        "two processes exporting to one path: the second is refused at start",
    "test_model_files_with_code_are_refused_unless_unsafe":
        ".keras and .h5 files with a Lambda layer are refused unless unsafe=True",
    "test_models_without_code_load_as_before": "safe mode does not refuse ordinary models",
    "test_cli_export_refuses_code_unless_unsafe_load":
        "the CLI refuses such files unless --unsafe-load",
    "test_export_verification_fails_when_the_tflite_differs":
        "export verification can fail: a tflite that differs from Keras is reported (exit 3)",
    "test_int8_calibration_uses_the_users_representative_data":
        "int8 export calibrates on the user's representative data, not on random rows",
    "test_paper_mode_keeps_degenerate_weights": "paper mode keeps degenerate weights",
    "test_per_lag_pvalues_of_a_series_degenerate_at_some_lags_are_nan":
        "per-lag p-values of a series degenerate at some lags are NaN, as documented",
    "test_isolate_reports_a_native_crash_with_its_signal":
        "a forged block-sparse .tflite (one sparse segment pointing outside its tensor) kills the "
        "runner with SIGSEGV; with --isolate the runner survives, names SIGSEGV and exits 7 "
        "(LiteRT, and tflite-runtime in the device venv when LEGC_DEVICE_PYTHON is set)",
    "test_isolate_passes_a_good_model_through":
        "--isolate changes nothing for a good model (exit 0) and reports an ordinary load error "
        "as usual (exit 2, not 7)",
}  # fmt: skip


def _fuzz_runs(args) -> list[dict]:
    """The fuzz and fault test runs: from ``--fuzz-results`` when it exists, else run (and kept
    there)."""
    cache = Path(args.fuzz_results) if args.fuzz_results else None
    if cache is not None and cache.is_file():
        print(f"fuzz and fault tests: the results in {cache}", file=sys.stderr)
        return json.loads(cache.read_text())
    runs = [run_tests(FUZZ_TESTS, args.fuzz_examples),
            run_tests(FAULT_TESTS, args.edge_fuzz_examples)]  # fmt: skip
    if cache is not None:
        atomic_write_bytes(cache, json.dumps(runs, indent=1).encode())
    return runs


def run_tests(selection: list[str], examples: int) -> dict:
    """Run pytest on ``selection`` with ``examples`` hypothesis inputs per test.

    Args:
        selection: pytest paths or node ids.
        examples: ``LEGC_FUZZ_EXAMPLES`` for the run.

    Returns:
        ``{"examples": n, "seconds": s, "tests": {test id: {"outcome", "seconds", "passing",
        "failing", "invalid"}}}``, the counts from hypothesis' statistics (None without).

    Example:
        >>> run = run_tests(FUZZ_TESTS, 100)  # doctest: +SKIP
    """
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        env = {**os.environ, "LEGC_FUZZ_EXAMPLES": str(examples), "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection,
             "--hypothesis-show-statistics", f"--junitxml={xml}"],
            cwd=REPO, env=env, capture_output=True, text=True,
        )  # fmt: skip
        tests = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            name = case.get("name")
            tests[name] = {"outcome": outcome, "seconds": float(case.get("time", 0.0))}
            for prop in case.iter("property"):  # nested @given: the test counts its inputs
                if prop.get("name") == "inputs_tried" and outcome == "passed":
                    tests[name].update(passing=int(prop.get("value")), failing=0, invalid=0)
    for name, counts in _hypothesis_counts(proc.stdout).items():
        tests.setdefault(name, {"outcome": "passed", "seconds": 0.0}).update(counts)
    print(proc.stdout.strip().splitlines()[-1], file=sys.stderr)
    seconds = sum(t["seconds"] for t in tests.values())
    return {"examples": examples, "seconds": seconds, "tests": tests}


def _hypothesis_counts(stdout: str) -> dict[str, dict]:
    """``{test name: {"passing", "failing", "invalid"}}`` from --hypothesis-show-statistics."""
    counts, name = {}, None
    for line in stdout.splitlines():
        head = re.match(r"^\S+::(\S+):$", line.strip())
        if head:
            name = head.group(1)
        found = re.search(r"(\d+) passing examples?, (\d+) failing examples?, (\d+) invalid", line)
        if found and name:
            old = counts.setdefault(name, {"passing": 0, "failing": 0, "invalid": 0})
            for key, value in zip(("passing", "failing", "invalid"), found.groups(), strict=True):
                old[key] += int(value)
    return counts


def _fuzz_section(runs: list[dict]) -> str:
    lines = [
        "",
        "## Fuzz campaign",
        "",
        "Property-based (hypothesis) inputs for every loader of an untrusted file: damaged bytes "
        "(truncated, bit-flipped, spliced, int32-max fields, random), type-confused metadata "
        "and journal indexes, arrays of another dtype or shape. Each must load, or raise the "
        "loader's `keras_legc` error with a Fix (the edge runner: exit 2), never another "
        "exception, a crash, a hang or a huge allocation. Counts are hypothesis' own statistics "
        f"for this run (`LEGC_FUZZ_EXAMPLES={runs[0]['examples']}` for the file loaders, "
        f"{runs[1]['examples']} for the edge runner's inputs, where every .tflite input runs in "
        "an interpreter).",
        "",
        "| test (loader) | inputs tried | failing | invalid (discarded) | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    total = failing = 0
    for run in runs:
        for name, t in sorted(run["tests"].items()):
            if "passing" not in t:
                continue
            tried = t["passing"] + t["failing"]
            total, failing = total + tried, failing + t["failing"]
            lines.append(f"| `{name}` | {tried:,} | {t['failing']} | {t['invalid']} | "
                         f"{t['seconds']:.0f} |")  # fmt: skip
    lines += [
        "",
        f"In all {total:,} inputs, {failing} failing. What the campaign found when it was "
        "written (issue 19) was fixed then, in the commits that added it: 058bdeb (read_npz "
        "checks every .npy header against the archive's sizes before allocating: 10^12-weight "
        "claims, zip bombs; meta types of layers/shapes/info and per-format fields; numeric "
        "arrays; the journal index validated: types, sizes, target) and 2dff143 (the edge "
        "runner checks the reference .npz before use: headers before allocation, array kinds, "
        "shapes, atol, NaN -> exit 2). Raised to 2,000 inputs per loader (this document's "
        "first run, 2026-11-29) it found three more, each fixed and now passing at 2,000: a "
        "journal index without its `target` key raised `KeyError` from `History.load` (dd88f08: "
        "the journal is ignored with a warning, the last complete save loads; a regression "
        "test); a damaged .tflite that loads but fails at `invoke` ('Input tensor 1 lacks "
        "data') and one whose tensor names are not UTF-8 (`UnicodeDecodeError` in "
        "`get_input_details`) gave the edge runner a traceback instead of exit 2 (466f9df: every "
        "interpreter error after load is exit 2 with one line and a Fix).",
        "",
        "",
    ]
    return "\n".join(lines)


def _fault_section(run: dict) -> str:
    lines = [
        "## Fault tests and what each proves",
        "",
        "`tests/integration/test_faults.py` and the `--isolate` tests of "
        "`tests/integration/test_edge_runner.py`, run for this document (all passed):",
        "",
        "| test | proves | seconds |",
        "|---|---|---:|",
    ]
    for name, t in sorted(run["tests"].items()):
        base = name.split("[")[0]
        if base not in PROVES:
            raise SystemExit(f"fault test {base} is not described in PROVES; describe it")
        lines.append(f"| `{name}` | {PROVES[base]} | {t['seconds']:.0f} |")
    missing = set(PROVES) - {n.split("[")[0] for n in run["tests"]}
    if missing:
        raise SystemExit(f"PROVES describes tests that did not run: {sorted(missing)}")
    lines += [
        "",
        "The edge runner's exit codes: 0 ok, 2 bad input, 3 output mismatch, 4 over a budget, "
        "5 memory limit, 6 constant output, 7 a native crash of the interpreter (with "
        "`--isolate`; without it the runner dies with the signal, e.g. exit 139 from a shell).",
        "",
    ]
    return "\n".join(lines)


def _mutation_section(report: dict | None) -> str:
    if report is None:
        return ""
    lines = [
        "## Mutation testing",
        "",
        f"`{report['command']}` (mutmut 3.8.1, one mutant at a time; {report['date']}, "
        f"{report['machine']}, Python {report['python']}). A mutant is one changed operator, "
        "constant or call; it is killed when a selected test (tests/unit) fails or times out. "
        "Kill rate = killed / checked, counting mutants that no selected test reaches ('no "
        "tests') as survivors. Kill rate excluding equivalents = killed / (checked - "
        "equivalent), where an equivalent mutant is a survivor reviewed in "
        "`legc_research/evidence/mutation_review/*.json` as behaving like the original for "
        "every input (the reason is listed below). The campaign is resumable: "
        "`python tools/mutation.py` continues where it stopped.",
        "",
        "History of this campaign (2026-11-29, 2-core machine). First passes: masking 67.0%, "
        "core 74.9% of the mutants checked; export and the edge runner were not reached by any "
        "unit test. Survivors were then killed by tests against independent references "
        "(statsmodels, loop references, scipy, a numpy MLP written out, brute-force masks, "
        "TF-MOT's decay formula written out), now in the test files of the modules they cover "
        "(`tests/unit/test_scoring.py`, `test_masks.py`, `test_importance.py`, "
        "`test_block_masks.py`, `test_schedule_unit.py`, `test_dense_numerics.py`, "
        "`test_granger.py`, `test_history_core.py`), and for the last pass "
        "`test_granger_numerics.py`, `test_scoring_numerics.py`, `test_dense_numerics.py`, "
        "`test_lyapunov_numerics.py`, `test_history_core.py`, `test_recorder_core.py`, "
        "`test_store_copy.py`, `test_dask_scoring.py` (a real in-process LocalCluster), "
        "`test_parallel_compiled.py`, `test_export_unit.py`, `test_export_tf.py` (real "
        "TensorFlow and LiteRT on tiny models) and `test_edge_runner_unit.py` (the runner in-process "
        "on the real interpreter, with tiny committed models in `tests/data/edge/`, regenerated "
        "byte for byte by `make_fixtures.py`). The campaign found and fixed these bugs: "
        "scoring by scheduler address (`legc score --scheduler`) failed with 'No clients "
        "found'; `LEStore.open` raised raw OS/zarr errors; export with reference or "
        "representative inputs of no rows crashed in the interpreter runner; the edge runner "
        "called an activation arena over `--memory-limit-mb` a damaged model (exit 2, now exit "
        "5) and died with a traceback on an unwritable `--json` path (now exit 2); a "
        "TensorFlow-backend export twin whose Keras was not on TensorFlow started twins without "
        "end (68 processes, 23 GB, now refused); a fixed Granger lag on too few points advised "
        "'choose lag <= 0'. A later pass found that most timeouts were not detections at all: "
        "mutmut forks each mutant from the process that ran the tests first, TensorFlow's "
        "thread pools do not survive a fork, and every mutant whose selected tests ran "
        "TensorFlow (a Keras call, a TFLite conversion) hung until mutmut's limit (seen with gdb: "
        "eager functions and the converter's SavedModel load waiting for the pool's threads). "
        "The runner now runs TensorFlow's inter-op work in the caller's thread, and under "
        "mutmut tests/conftest.py runs tf.functions op by op. Rechecked that way, 220 of core's "
        "224 timeouts and all 67 of export's became verdicts; their survivors were killed by "
        "new tests (in the files above, plus `test_masking_keras.py` and `score(client=)` in "
        "`test_dask_scoring.py`: the Keras-model and Dask-client branches, which unit tests can "
        "now reach under mutmut) or reviewed below. The 4 timeouts left are real detections: "
        "mutants that make scoring or the store's writer work one weight per block, or score "
        "every remaining weight in each block (the tests' time limit is what catches them), and "
        "a Dask connection left without its timeout. Two more runner fixes came from editing "
        "functions during the campaign: a run now regenerates the mutants before choosing "
        "what to run (the verdicts of an edited function were kept otherwise), and each "
        "review records the change it was written for, because editing a function renumbers "
        "its mutants (a review that no longer matches its mutant's change counts as not "
        "reviewed).",
        "",
        "| modules | mutants | checked | killed | of which timeouts | survived | of which no "
        "tests | of which equivalent | kill rate | kill rate excluding equivalents | the same, "
        "timeouts counted as survivors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group, g in report["groups"].items():
        no_tests = g["counts"].get("no tests", 0)
        timeouts = g["counts"].get("timeout", 0)
        countable = g["checked"] - g.get("equivalent", 0)
        rate = f"{100 * g['kill_rate']:.1f}%" if g["kill_rate"] is not None else "-"
        excl = g.get("kill_rate_excluding_equivalent")
        excl = f"{100 * excl:.1f}%" if excl is not None else "-"
        strict = f"{100 * (g['killed'] - timeouts) / countable:.1f}%" if countable else "-"
        lines.append(f"| {group} | {g['total']} | {g['checked']} | {g['killed']} | {timeouts} | "
                     f"{g['survived']} | {no_tests} | {g.get('equivalent', 0)} | {rate} | "
                     f"{excl} | {strict} |")  # fmt: skip
    lines += _survivor_lines(report["survivors"])
    return "\n".join(lines) + "\n"


def _survivor_lines(survivors: list[dict]) -> list[str]:
    """The survivors by function: how many, their verdicts, one example change, the reviews."""
    by_function: dict[str, list[dict]] = {}
    for s in survivors:
        by_function.setdefault(s["name"].rsplit("__mutmut_", 1)[0], []).append(s)
    reviewed = [s for s in survivors if not s["review"].startswith("not reviewed")]
    lines = [
        "",
        f"### Survivors: {len(survivors)} in {len(by_function)} functions",
        "",
        f"{len(reviewed)} reviewed (equivalent, or not reachable from a numpy unit test, with "
        "the reason). Every "
        "survivor's diff is in `docs/mutation.json`; `mutmut show NAME` in build/mutation/ "
        "prints it too.",
        "",
        "| function | survivors | example change |",
        "|---|---:|---|",
    ]
    for function, group in sorted(by_function.items(), key=lambda kv: -len(kv[1])):
        change = [ln[1:].strip() for ln in group[0]["diff"].splitlines()
                  if ln.startswith("+") and not ln.startswith("+++")]  # fmt: skip
        verdicts = ", ".join(f"{v} {n}" for v, n in Counter(s["verdict"] for s in group).items())
        name = function.replace("\u01c1", ".").replace(".x_", ".").replace(".x.", ".")
        lines.append(f"| `{name}` | {len(group)} ({verdicts}) | `{cell(' '.join(change))[:120]}` |")
    for s in reviewed:
        lines.append(f"- `{s['name']}`: {s['review']}")
    return lines


def _document(rows: list[str]) -> str:
    return (
        f"""# Reliability

Generated by `python tools/reliability_doc.py --force` on {today()} ({machine()["platform"]},
Python {python_version()}). Do not edit by hand: change `tests/catalogue.py` and
regenerate.

## Bad inputs: {len(rows)} cases, each a test

Every row is a case in `tests/catalogue.py`, run by `tests/integration/test_catalogue.py`. The test requires
the error class in the table, a message that names the problem, and a message that contains the
fix. The message column is what the case printed when this file was generated. Library errors are
`keras_legc.errors` classes, all subclasses of `LegcError`. The edge runner (`edge/bench.py`)
must run without keras_legc installed, so it has its own `EdgeError`: one line on stderr and exit
code 2 (3 on an output mismatch, 4 over a budget).

| # | area | bad input | error | message |
|---:|---|---|---|---|
"""
        + "\n".join(rows)
        + """

Two inputs from issue 8 are handled rather than refused:

- **Exporting a model that still has pruning wrappers.** `export_tflite` strips them first. It
  re-applies the masks, so the zeros are exact, and records the result in the `.json`.
- **Keras 3 models.** Since issue 16 they are served, not refused: recorded, pruned (a mask
  constraint), exported and loaded on the TensorFlow and JAX backends (`docs/keras3.md`,
  `tests/integration/test_keras3_*.py`); the flavour comes from the model object or the file.

## Crash safety

Every file keras-legc writes goes through one function, `keras_legc._io.atomic_write`: a temp
file in the same folder, fsync, then rename. That covers histories, manifests, scores, masks,
`.tflite`/`.json`/`.reference.npz` exports, demo summaries and benchmark JSONs. Keras models
go through `kl.save_model`: a temp `.keras` file, then rename. The next write of
the same file removes the temp file an interrupted write left, with a `LegcWarning` that says
so. The raw snapshots and the per-window LE journal are append-only files; their atomically
rewritten index never counts a half-written row.

`tests/integration/test_crash_safety.py` runs real training and scoring processes and SIGKILLs them:

- at three seeded random moments while recording: whatever is on disk loads completely, and
  scores when it has at least 5 windows;
- half-way through the 4th history write (epoch 3): the previous complete history is intact, and
  `History.load` recovers all 18 windows closed before the kill from the journal (the last full
  save had 12), saying so in a warning;
- half-way through the very first save: no history, and a clear `HistoryError` saying the
  recording was interrupted;
- half-way through a scores save: the previous scores file is byte-identical, and the next save
  reports and removes the temp file;
- with a corrupt journal: ignored with a warning, and the last complete save still loads;
- in an export, after the `.tflite` is complete in its temp file but before the rename: there is
  no `.tflite` (none, never half of one), and the next export reports and removes the leftover.

Scores and masks carry their format and version. A file written by a newer keras-legc is refused
with a message saying to upgrade. `Mask.load(path, model=...)` and `Scores.load(path, model=...)`
check the file's layer signature (Dense layer names and kernel shapes) against the model, and
`prune` always does; a mismatch is refused (catalogue rows above).

Run: `.venv/bin/python -m pytest tests/integration/test_crash_safety.py -v` (about 40 s).

## Determinism

`tests/integration/test_determinism.py` runs the same seeded recording, scoring and masking in three fresh
processes (op determinism on) and compares SHA-256 digests. It checks the LE series, the target,
the p-values with two different chunk sizes and thread counts, the global, per-layer and random
masks, and the final weights: all are identical.

`tests/integration/test_scoring_at_scale.py` and `tests/unit/test_properties.py` (hypothesis) check that
`chunk_size`, `threads`, the block size and the background thread change no bit. They also check
that the LE values equal the plain loop reference exactly, and that Granger p-values match
statsmodels to 1e-9 on random shapes, lags and magnitudes from 1e-300 to 1e300. The README's
Determinism section says what is not deterministic (TF without op determinism, latencies).

Run: `.venv/bin/python -m pytest tests/integration/test_determinism.py tests/unit/test_properties.py -v`.
"""
    )


if __name__ == "__main__":
    raise SystemExit(main())
