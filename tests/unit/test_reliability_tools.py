"""The counting of tools/mutation.py and tools/reliability_doc.py, on made-up mutmut state and
hypothesis output (the campaigns themselves take minutes to hours)."""

import json

from legc_research.evidence import mutation
from legc_research.evidence.reliability_doc import _hypothesis_counts


def test_verdicts_and_kill_rates_from_mutmut_state(tmp_path):
    meta = tmp_path / "mutants" / "keras_legc" / "core" / "x.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"keras_legc.core.x.x_f__mutmut_1": 1, "keras_legc.core.x.x_f__mutmut_2": 0,
             "keras_legc.core.x.x_f__mutmut_3": -24, "keras_legc.core.x.x_f__mutmut_4": 33,
             "keras_legc.core.x.x_f__mutmut_5": None}  # fmt: skip
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    found = mutation.verdicts(tmp_path)
    assert list(found.values()) == ["killed", "survived", "timeout", "no tests", "not checked"]
    core = mutation.summary(found, ["core"])["core"]
    # killed + timed out, over the checked ones (a mutant no test reaches counts as a survivor)
    assert (core["total"], core["checked"], core["killed"], core["survived"]) == (5, 4, 2, 2)
    assert core["kill_rate"] == 0.5
    assert mutation.summary(found, ["masking"])["masking"]["kill_rate"] is None
    # a survivor reviewed as equivalent leaves the denominator; a killed one reviewed stays killed
    review = {"keras_legc.core.x.x_f__mutmut_2": "equivalent: same output",
              "keras_legc.core.x.x_f__mutmut_1": "equivalent: stale review"}  # fmt: skip
    core = mutation.summary(found, ["core"], review)["core"]
    assert core["equivalent"] == 1 and core["kill_rate_excluding_equivalent"] == 2 / 3


def test_a_resumed_run_names_only_the_unchecked_mutants(tmp_path):
    # mutmut re-runs every mutant it is given by name or pattern, so the group's pattern would
    # redo the checked ones
    assert mutation.mutants_to_run("core", (), None, tmp_path) is None  # nothing generated yet
    meta = tmp_path / "mutants" / "keras_legc" / "core" / "x.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"keras_legc.core.x.x_f__mutmut_1": 1, "keras_legc.core.x.x_f__mutmut_2": 0,
             "keras_legc.core.x.x_g__mutmut_1": None, "keras_legc.core.x.x_f__mutmut_3": None}  # fmt: skip
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    assert mutation.mutants_to_run("core", (), None, tmp_path) == [
        "keras_legc.core.x.x_f__mutmut_3", "keras_legc.core.x.x_g__mutmut_1"]  # fmt: skip
    assert mutation.mutants_to_run("core", (), ["*x_g*"], tmp_path) == [
        "keras_legc.core.x.x_g__mutmut_1"]  # fmt: skip
    survivors = mutation._SURVIVOR_VERDICTS
    assert mutation.mutants_to_run("core", survivors, None, tmp_path) == [
        "keras_legc.core.x.x_f__mutmut_2"]  # fmt: skip
    assert mutation.mutants_to_run("core", ("timeout",), None, tmp_path) == []
    assert mutation.mutants_to_run("masking", (), None, tmp_path) is None


def test_hypothesis_statistics_are_summed_per_test():
    out = """
tests/unit/test_fuzz_loaders.py::test_damaged_bytes_load_or_refuse[mask.npz]:

  - during reuse phase (0.01 seconds):
    - 3 passing examples, 0 failing examples, 0 invalid examples
  - during generate phase (9.1 seconds):
    - 1997 passing examples, 1 failing example, 4 invalid examples
"""
    counts = _hypothesis_counts(out)
    assert counts == {
        "test_damaged_bytes_load_or_refuse[mask.npz]": {"passing": 2000, "failing": 1, "invalid": 4}
    }


def test_sources_edited_after_their_mutants_are_stale(tmp_path):
    import os

    for name in ("a.py", "b.py"):
        (tmp_path / "mutants" / "pkg").mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg").mkdir(exist_ok=True)
        (tmp_path / "pkg" / name).write_text("x = 1\n")
        (tmp_path / "mutants" / "pkg" / name).write_text("x = 1  # mutated\n")
        (tmp_path / "mutants" / "pkg" / f"{name}.meta").write_text("{}")
    os.utime(tmp_path / "mutants" / "pkg" / "a.py", (1_000, 1_000))  # generated long ago
    os.utime(tmp_path / "pkg" / "a.py", (2_000, 2_000))  # then edited
    os.utime(tmp_path / "pkg" / "b.py", (1_000, 1_000))  # b's mutants are newer than b
    assert mutation.stale_sources(tmp_path) == ["pkg/a.py"]


def test_a_review_written_for_another_change_does_not_count(monkeypatch):
    # editing a function renumbers its mutants: the review of _3 may now sit on another mutant
    name = "keras_legc.core.x.x_f__mutmut_3"
    diff = "--- a.py\n+++ a.py\n@@ -1 +1 @@\n-    y = f(x, dtype=np.float32)\n+    y = f(x, dtype=None)"
    assert mutation.added_lines(diff) == "y = f(x, dtype=None)"
    monkeypatch.setattr(mutation, "SURVIVOR_REVIEW", {name: "equivalent: dtype None is float64"})
    monkeypatch.setattr(mutation, "REVIEWED_CHANGES", {name: "y = f(x, dtype=None)"})
    assert mutation._review_of(name, diff) == "equivalent: dtype None is float64"
    moved = diff.replace("dtype=None", "dtype=np.float32)[::2]")
    assert mutation._review_of(name, moved) == (
        "not reviewed yet (its review was for another change: y = f(x, dtype=None))"
    )
    assert mutation._review_of("keras_legc.core.x.x_g__mutmut_1", diff) == "not reviewed yet"
    monkeypatch.setattr(mutation, "REVIEWED_CHANGES", {})  # a review without a recorded change
    assert mutation._review_of(name, moved) == "equivalent: dtype None is float64"
