#!/usr/bin/env python3
"""Mutation testing of the core, masking, export and edge-runner modules (issue 19), resumable.

    python tools/mutation.py [--groups core masking export edge] [--budget-s 3600]
                             [--json docs/mutation.json --force] [--report-only]
                             [--recheck-survivors] [--recheck-timeouts] [--max-children N]

mutmut 3.8.1 (configured in setup.cfg [mutmut]) changes one operator, constant or call at a time
in keras_legc/core, keras_legc/masking, keras_legc/keras/export.py and edge/bench.py, and runs
only the selected tests (tests/unit) that call the mutated function; a mutant the tests do not
notice "survives". The work happens in build/mutation/ (links to the sources, mutmut's
``mutants/`` folder and its state): a run stopped by ``--budget-s``, Ctrl-C or a lost session
keeps every verdict so far, and the next run continues with the mutants not yet checked. Mutants
run one at a time unless ``--max-children`` says otherwise: the machine is shared.

Every minute the script prints the progress of the running group and an estimate of the time
left (from the mutants checked so far in this run); at the end, per group, the kill rate
(killed + timed out) / (checked), counting mutants no test reaches as survivors. ``--json``
writes the counts and every survivor (name and diff), which tools/reliability_doc.py puts in
docs/reliability.md with the review of each survivor (mutation_review/*.json next to this
file, one per group: equivalent mutants with the reason; the kill rate excluding them is killed /
(checked - equivalent)).
``--recheck-timeouts`` re-runs the timed-out ones (mutmut also limits a mutant's wall-clock time,
which a loaded machine can exceed; a timeout counts as killed, so re-run them on a quiet machine).
``--recheck-survivors`` runs the survivors of the groups again, with the tests added since (mutmut
collects the new tests first): a survivor a new test kills becomes killed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

from keras_legc._io import atomic_write_bytes
from legc_research.evidence._provenance import REPO, machine, python_version, today

#: mutmut's working folder; LEGC_MUTATION_WORKDIR names another (e.g. build/mutation-export) so
#: that two groups run at once on two cores (mutmut allows one run per folder; the verdicts are
#: per source file, in mutants/<path>.meta, and can be copied between folders).
WORKDIR = Path(os.environ.get("LEGC_MUTATION_WORKDIR", REPO / "build" / "mutation")).absolute()
LINKS = ("keras_legc", "legc_research", "edge", "tests", "setup.cfg", "pyproject.toml")
#: group -> the mutmut mutant-name pattern of its modules
GROUPS = {
    "core": "keras_legc.core.*",
    "masking": "keras_legc.masking.*",
    "edge": "edge.bench.*",
    "export": "keras_legc.keras.export.*",
}
#: mutmut's exit code of a mutant -> verdict (mutmut.stats.status_by_exit_code, condensed)
KILLED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout",
          152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault"}  # fmt: skip
#: Each mutant's tests run on one thread of each runtime: a test that trains a Keras model would
#: otherwise start thread pools as wide as the machine, and under load mutmut's wall-clock limit
#: then expires and records a timeout (counted as killed) whether or not a test notices the mutant.
#: TensorFlow's inter-op work runs in the caller's thread (-1), not in a pool of one: mutmut forks
#: each mutant from the process that ran the tests first, a pool's thread does not survive the
#: fork, and TensorFlow work in the child then waits for it forever (seen with gdb: the TFLite
#: converter's SavedModel load; tf.functions hang the same way, so tests/conftest.py runs them op
#: by op under mutmut). 220 of core's 224 and all 67 of export's "timeouts" were that deadlock.
SINGLE_THREADED = {
    **{name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                              "TF_NUM_INTRAOP_THREADS")},
    "TF_NUM_INTEROP_THREADS": "-1",
}  # fmt: skip
SURVIVED = {0: "survived", 5: "no tests", 33: "no tests"}
_SURVIVOR_VERDICTS = ("survived", "no tests", "suspicious")
#: The review of the survivors (legc_research/evidence/mutation_review/<group>.json): mutant name ->
#: "equivalent: <reason>" (no test can tell it apart: the mutant behaves as the original for
#: every input) or "not reachable: <reason>" (no numpy unit test can reach it, e.g. a Keras-model
#: branch). A reviewed mutant that a later run kills is simply killed. Each file also records, under
#: "changes", the lines each reviewed mutant added when it was reviewed (see load_review_changes).
REVIEW_DIR = Path(__file__).with_name("mutation_review")


def load_review(folder: Path = REVIEW_DIR) -> dict[str, str]:
    """The survivor review: ``{mutant name: "equivalent: <reason>", ...}`` ({} if no file).

    Args:
        folder: holds one review JSON per group, each ``{"about": ..., "mutants": {name: review}}``.

    Returns:
        The mapping of mutant name to its review line.

    Example:
        >>> isinstance(load_review(), dict)
        True
    """
    review = {}
    for path in sorted(folder.glob("*.json")):
        review.update(json.loads(path.read_text())["mutants"])
    return review


SURVIVOR_REVIEW: dict[str, str] = load_review()


def load_review_changes(folder: Path = REVIEW_DIR) -> dict[str, str]:
    """``{mutant name: its added lines when reviewed}`` (each file's optional ``"changes"``).
    mutmut numbers a function's mutants in order, so editing the function renumbers them: a
    review whose recorded change is not the survivor's change now was written for another one.

    Example:
        >>> isinstance(load_review_changes(), dict)
        True
    """
    changes = {}
    for path in sorted(folder.glob("*.json")):
        changes.update(json.loads(path.read_text()).get("changes", {}))
    return changes


REVIEWED_CHANGES: dict[str, str] = load_review_changes()


def prepare_workdir() -> Path:
    """build/mutation/ with links to the sources and tests (mutmut copies them into mutants/)."""
    WORKDIR.mkdir(parents=True, exist_ok=True)
    for name in LINKS:
        link = WORKDIR / name
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(REPO / name, WORKDIR))
    return WORKDIR


def verdicts(workdir: Path = WORKDIR) -> dict[str, str]:
    """Every mutant mutmut generated so far -> its verdict (``not checked`` until run).

    Args:
        workdir: the folder mutmut runs in.

    Returns:
        ``{"keras_legc.core.granger.x_f__mutmut_3": "killed", ...}``.

    Example:
        >>> counts = Counter(verdicts().values())  # doctest: +SKIP
    """
    out = {}
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        for name, code in _read_meta(meta)["exit_code_by_key"].items():
            out[name] = _verdict(code)
    return out


def _read_meta(meta: Path, attempts: int = 20) -> dict:
    """One mutmut .meta file; mutmut rewrites them in place while it runs, so a read that meets a
    half-written file waits and reads again."""
    for _ in range(attempts - 1):
        try:
            return json.loads(meta.read_text())
        except json.JSONDecodeError:
            time.sleep(0.05)
    return json.loads(meta.read_text())


def _verdict(code: int | None) -> str:
    if code is None:
        return "not checked"
    return KILLED.get(code) or SURVIVED.get(code) or ("skipped" if code == 34 else "suspicious")


def summary(
    results: dict[str, str], groups: list[str], review: dict[str, str] | None = None
) -> dict:
    """Per group: counts of each verdict, mutants checked, and the kill rate of the checked ones.

    ``kill_rate_excluding_equivalent`` = killed / (checked - equivalent), where ``equivalent``
    counts the survivors the review marks ``equivalent: ...`` (they cannot be killed).

    Args:
        results: ``verdicts()``.
        groups: names from ``GROUPS``.
        review: the survivor review (default: ``SURVIVOR_REVIEW``).

    Returns:
        ``{group: {"total", "checked", "killed", "survived", "equivalent", "kill_rate",
        "kill_rate_excluding_equivalent", "counts"}}``.

    Example:
        >>> summary({"keras_legc.core.a.x_f__mutmut_1": "killed"}, ["core"])["core"]["kill_rate"]
        1.0
    """
    review = SURVIVOR_REVIEW if review is None else review
    out = {}
    for group in groups:
        prefix = GROUPS[group][:-1]
        counts = Counter(v for k, v in results.items() if k.startswith(prefix))
        killed = sum(counts[v] for v in set(KILLED.values()))
        survived = sum(counts[v] for v in set(SURVIVED.values())) + counts["suspicious"]
        checked = killed + survived
        equivalent = sum(1 for k, v in results.items() if k.startswith(prefix)
                         and v in _SURVIVOR_VERDICTS
                         and review.get(k, "").startswith("equivalent"))  # fmt: skip
        countable = checked - equivalent
        out[group] = {
            "total": sum(counts.values()),
            "checked": checked,
            "killed": killed,
            "survived": survived,
            "equivalent": equivalent,
            "kill_rate": killed / checked if checked else None,
            "kill_rate_excluding_equivalent": killed / countable if countable else None,
            "counts": dict(counts),
        }
    return out


def mutants_to_run(
    group: str, recheck: tuple[str, ...], match: list[str] | None, workdir: Path = WORKDIR
) -> list[str] | None:
    """The mutants of ``group`` to hand to mutmut: those whose verdict is in ``recheck`` (e.g.
    the survivors), else the ones not checked yet; None (the group's pattern) before mutmut has
    generated any. mutmut re-runs every mutant it is given by name or pattern, so a resumed run
    must name only the unchecked ones."""
    prefix = GROUPS[group][:-1]
    results = {n: v for n, v in verdicts(workdir).items() if n.startswith(prefix)}
    if not results and not recheck:
        return None
    wanted = recheck or ("not checked",)
    names = [n for n, v in sorted(results.items()) if v in wanted]
    if match:
        names = [n for n in names if any(fnmatch(n, m) for m in match)]
    return names


def run_group(
    group: str, deadline: float, log, names: list[str] | None = None, max_children: int = 1
) -> bool:
    """Run mutmut on one group (or on the mutants ``names`` of it) until it is done or
    ``deadline`` (time.monotonic) passes; print progress and an estimate of the time left every
    minute. True when the group finished."""
    before = summary(verdicts(), [group])[group]["checked"]
    start = time.monotonic()
    cmd = [
        sys.executable,
        "-m",
        "mutmut",
        "run",
        "--max-children",
        str(max_children),
        *(names or [GROUPS[group]]),
    ]
    env = {**os.environ, **SINGLE_THREADED, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # mutmut in its own process group: stopping the campaign stops its fork server and mutants
    proc = subprocess.Popen(cmd, cwd=WORKDIR, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # fmt: skip
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while proc.poll() is None:
            try:
                proc.wait(timeout=min(60.0, max(deadline - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                pass
            _progress(group, before, start)
            if time.monotonic() >= deadline and proc.poll() is None:
                print(f"{group}: time budget spent; stopping (the next run resumes)", flush=True)
                _stop(proc)
                return False
    except BaseException:  # Ctrl-C, SIGTERM, or an error here: mutmut must not run on alone
        _stop(proc)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return proc.returncode == 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the campaign as Ctrl-C does


def _stop(proc: subprocess.Popen) -> None:
    """Stop mutmut with its fork server and running mutant (its whole process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _progress(group: str, before: int, start: float) -> None:
    s = summary(verdicts(), [group])[group]
    done_now, left = s["checked"] - before, s["total"] - s["checked"]
    elapsed = time.monotonic() - start
    eta = f", ~{left * elapsed / done_now / 60:.0f} min left" if done_now > 0 else ""
    rate = f"{100 * s['kill_rate']:.1f}%" if s["kill_rate"] is not None else "-"
    print(f"{group}: {s['checked']}/{s['total']} checked, kill rate {rate}, "
          f"{done_now} in {elapsed / 60:.1f} min{eta}", flush=True)  # fmt: skip


def survivors(results: dict[str, str], groups: list[str]) -> list[dict]:
    """Every survivor of ``groups``: its name, verdict, diff and review."""
    prefixes = tuple(GROUPS[g][:-1] for g in groups)
    names = [n for n, v in sorted(results.items()) if n.startswith(prefixes)
             and v in _SURVIVOR_VERDICTS]  # fmt: skip
    diffs = _diffs(names)
    return [{"name": n, "verdict": results[n], "diff": _changed_lines(diffs.get(n, "")),
             "review": _review_of(n, diffs.get(n, ""))} for n in names]  # fmt: skip


def _review_of(name: str, diff: str) -> str:
    """The survivor's review, unless it was recorded for another change (a renumbered mutant)."""
    review, change = SURVIVOR_REVIEW.get(name), REVIEWED_CHANGES.get(name)
    if review is None:
        return "not reviewed yet"
    if change is not None and change != added_lines(diff):
        return f"not reviewed yet (its review was for another change: {change})"
    return review


def added_lines(diff: str) -> str:
    """The lines a mutant adds, from its unified diff: what a review records it was written for."""
    return "\n".join(ln[1:].strip() for ln in diff.splitlines()
                     if ln.startswith("+") and not ln.startswith("+++"))  # fmt: skip


def _changed_lines(diff: str) -> str:
    """The file header, hunk headers and changed lines of a unified diff (no context)."""
    return "\n".join(ln for ln in diff.splitlines() if ln[:1] in "+-@" or ln.startswith("("))


#: mutmut's own first step of a run, alone: copy the sources and regenerate the mutants of every
#: file changed since, which resets the verdicts of the functions whose code changed
GENERATE = """
from mutmut.__main__ import (copy_also_copy_files, copy_src_dir, create_mutants,
                             setup_source_paths, store_lines_covered_by_tests)
from mutmut.mutation.trampoline import set_mutant_under_test
set_mutant_under_test("mutant_generation")
copy_src_dir(); copy_also_copy_files(); setup_source_paths(); store_lines_covered_by_tests()
create_mutants(1)
"""


def generate_mutants(workdir: Path = WORKDIR) -> None:
    """Bring mutmut's mutants up to date with the sources before choosing what to run: the
    verdicts of a function edited since its last run are stale, and mutmut itself finds that out
    only after it has been handed the names to run (which would then skip them)."""
    child = subprocess.run([sys.executable, "-c", GENERATE], cwd=workdir, capture_output=True,
                           text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})  # fmt: skip
    if child.returncode != 0:
        last = (child.stderr.strip().splitlines() or ["no error output"])[-1]
        raise SystemExit(f"mutmut could not generate the mutants: {last}")


def stale_sources(workdir: Path = WORKDIR) -> list[str]:
    """Mutated sources edited after their mutants were generated (mutmut's own test: the source
    is newer than its copy in mutants/): their changed functions' verdicts are out of date."""
    stale = []
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        relative = meta.relative_to(workdir / "mutants").with_suffix("")
        source, copy = workdir / relative, meta.with_suffix("")
        if source.exists() and copy.exists() and source.stat().st_mtime > copy.stat().st_mtime:
            stale.append(str(relative))
    return stale


#: One child computes every diff (``mutmut show`` would start Python once per mutant).
DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
out = {}
for name, path in json.load(sys.stdin):
    try:
        out[name] = get_diff_for_mutant(name, path=path)
    except Exception as exc:  # a mutant mutmut no longer generates
        out[name] = f"(no diff: {exc})"
print(json.dumps(out))
"""


def _diffs(names: list[str]) -> dict[str, str]:
    """``{mutant: unified diff}``, from mutmut's own reader, in one child process."""
    if not names:
        return {}
    paths = {}
    for meta in (WORKDIR / "mutants").rglob("*.py.meta"):
        source = str(meta.relative_to(WORKDIR / "mutants"))[: -len(".meta")]
        for name in _read_meta(meta)["exit_code_by_key"]:
            paths[name] = source
    pairs = [(n, paths[n]) for n in names if n in paths]
    child = subprocess.run([sys.executable, "-c", DIFFS], cwd=WORKDIR, input=json.dumps(pairs),
                           capture_output=True, text=True, timeout=3600)  # fmt: skip
    return json.loads(child.stdout) if child.returncode == 0 else {}


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the campaign and print the kill rates; 0 when every group finished, 3 when
    the time budget ran out, 130 when stopped (Ctrl-C or SIGTERM); every verdict so far is kept."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("stopped; every verdict so far is kept and the next run resumes", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", nargs="+", choices=list(GROUPS), default=list(GROUPS))
    parser.add_argument("--budget-s", type=float, default=float("inf"),
                        help="stop after this many seconds (resumable)")  # fmt: skip
    parser.add_argument("--report-only", action="store_true", help="run nothing; report")
    parser.add_argument("--recheck-survivors", action="store_true",
                        help="run the groups' survivors again with the tests added since")  # fmt: skip
    parser.add_argument("--recheck-timeouts", action="store_true",
                        help="run the groups' timed-out mutants again (mutmut's wall-clock limit "
                             "can expire on a loaded machine; a timeout counts as killed)")  # fmt: skip
    parser.add_argument("--max-children", type=int, default=1,
                        help="mutants run at once (default 1: the machine is shared)")  # fmt: skip
    parser.add_argument("--match", nargs="+", metavar="GLOB",
                        help="only mutants whose name matches (with --recheck-survivors: "
                             "only such survivors)")  # fmt: skip
    parser.add_argument("--json", help="write counts and survivors here")
    parser.add_argument("--force", action="store_true", help="overwrite --json")
    args = parser.parse_args(argv)
    if args.max_children < 1:
        parser.error("--max-children must be at least 1")
    prepare_workdir()
    deadline = time.monotonic() + args.budget_s
    finished = True
    if args.report_only and stale_sources():
        print(f"note: {', '.join(stale_sources())} changed since the mutants were generated: the "
              "verdicts of the changed functions are out of date until the next run without "
              "--report-only", file=sys.stderr)  # fmt: skip
    if not args.report_only:
        generate_mutants()
        with open(WORKDIR / "mutmut.log", "a") as log:
            for group in args.groups:
                recheck = (_SURVIVOR_VERDICTS if args.recheck_survivors else ()) + (
                    ("timeout",) if args.recheck_timeouts else ())  # fmt: skip
                names = mutants_to_run(group, recheck, args.match)
                if names == []:
                    continue
                finished = run_group(group, deadline, log, names, args.max_children) and finished
                if time.monotonic() >= deadline:
                    finished = False
                    break
    results = verdicts()
    found = survivors(results, args.groups)  # with each review checked against its change
    table = summary(results, args.groups, {s["name"]: s["review"] for s in found})
    for group, s in table.items():
        rate = f"{100 * s['kill_rate']:.1f}%" if s["kill_rate"] is not None else "-"
        excl = s["kill_rate_excluding_equivalent"]
        excl = f"{100 * excl:.1f}%" if excl is not None else "-"
        print(f"{group:8s} {s['checked']:5d}/{s['total']:5d} checked  killed {s['killed']:5d}  "
              f"survived {s['survived']:4d} (equivalent {s['equivalent']})  kill rate {rate}  "
              f"excluding equivalents {excl}")  # fmt: skip
    if args.json:
        report = {
            "command": "python tools/mutation.py " + " ".join(argv or sys.argv[1:]),
            "date": today(), "machine": machine()["platform"], "python": python_version(),
            "groups": table, "survivors": found,
        }  # fmt: skip
        atomic_write_bytes(Path(args.json), json.dumps(report, indent=1).encode(),
                           overwrite=args.force)  # fmt: skip
        print(f"wrote {args.json}")
    return 0 if finished else 3


if __name__ == "__main__":
    raise SystemExit(main())
