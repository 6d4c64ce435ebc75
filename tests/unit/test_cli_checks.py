"""`legc` refuses a wrong path or file type before TensorFlow is imported (keras_legc/cli/_checks.py)."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keras_legc.cli import _checks as checks

# Runs the real `legc` group in a fresh interpreter, one case after another, and reports for each
# the exit code, the last output line, and whether `tensorflow` had been imported by then.
_PROBE = r"""
import contextlib, io, json, sys, time
from legc_research.cli import main
out = []
for args in json.loads(sys.argv[1]):
    buf, t0 = io.StringIO(), time.perf_counter()
    with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
        try:
            main(args, prog_name="legc")
            code = 0
        except SystemExit as exc:
            code = exc.code
    lines = [l for l in buf.getvalue().splitlines() if l.strip()]
    out.append({"code": code, "last": lines[-1] if lines else "", "seconds": time.perf_counter() - t0,
                "tensorflow": "tensorflow" in sys.modules})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "text.txt").write_text("not a model\n")
    (d / "empty.keras").write_bytes(b"")
    (d / "fake.keras").write_text("a text file named .keras\n")
    (d / "fake.h5").write_bytes(b"PK\x03\x04 a zip named .h5")
    (d / "fake.npy").write_text("1,2,3\n")
    (d / "fake.npz").write_text("1,2,3\n")
    (d / "fake.json").write_text("not json")
    (d / "run").mkdir()
    (d / "empty_dir").mkdir()
    np.save(d / "x.npy", np.zeros((4, 3), np.float32))
    with zipfile.ZipFile(d / "model.keras", "w") as z:
        z.writestr("config.json", "{}")
    return d


def _cases(d: Path):
    """``(argv, exit code, start of the last line, fragment)``: a missing path is a usage error
    (exit 2), a wrong file the error the loader would raise (exit 2 too: one code per kind of
    mistake, as ``legc bench``), and option mistakes are caught before TensorFlow loads."""
    m, x = str(d / "model.keras"), str(d / "x.npy")
    usage, model, arg = "Error: Invalid value", "Error: ModelStructureError:", "Error: InvalidArg"
    return [
        (["export", str(d / "text.txt"), "o.tflite"], 2, model, "suffix '.txt'"),
        (["export", str(d / "empty.keras"), "o.tflite"], 2, model, "is empty"),
        (["export", str(d / "fake.keras"), "o.tflite"], 2, model, "not a zip archive"),
        (["export", str(d / "fake.h5"), "o.tflite"], 2, model, "not an HDF5 file"),
        (["export", str(d / "missing.keras"), "o.tflite"], 2, usage, "does not exist"),
        (["export", str(d / "empty_dir"), "o.tflite"], 2, model, "is a folder"),
        (["export", m, str(d / "o.txt")], 2, arg, "does not end in .tflite"),
        (["export", m, "o.tflite", "--representative-data", str(d / "fake.npy")], 2, arg, "NumPy"),
        (["diagnose", m, m, "--data", str(d / "fake.npz"), "--out", "r"], 2, arg, "not a zip"),
        (["neurons", "score", m, "--x", x, "--y", str(d / "text.txt")], 2, arg, "suffix '.txt'"),
        (["neurons", "score", m, "--x", x, "--y", x, "--legc-scores", x], 2, arg, "not .npz"),
        (["neurons", "shrink", m, str(d / "fake.json"), "o.keras"], 2, arg, "is not JSON"),
        (["score", str(d / "run")], 2, "Error: HistoryError:", "holds no recorded history"),
        (["score", str(d / "x.npy")], 2, "Error: HistoryError:", "is a file, not a run folder"),
        (["export", m, "o.tflite", "-q", "int8"], 2, "Error: -q int8 needs --repr", "Fix: pass"),
        (["export", m, "o.tflite", "-q", "dynamic", "--sparse"], 2, arg, "XNNPACK delegate"),
        (["reproduce", "--data-dir", str(d / "missing"), "--quick"], 2, usage, "does not exist"),
        (["demo", "--out", x, "--quick"], 2, usage, "is a file"),
    ]


def test_bad_paths_are_refused_without_importing_tensorflow(files):
    cases = _cases(files)
    args = json.dumps([a for a, *_ in cases])
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, args], capture_output=True, text=True, timeout=120,
        cwd=files,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[-1])
    usage = "Error: Invalid value"
    for (argv, code, start, fragment), r in zip(cases, results, strict=True):
        assert r["code"] == code, (argv, r)
        assert r["last"].startswith(start) and fragment in r["last"], (argv, r)
        assert "Fix" in r["last"] or start == usage, (argv, r)
        assert r["tensorflow"] is False, (argv, r)
        assert r["seconds"] < 1.0, (argv, r)  # a few ms each once the CLI is imported


def test_real_files_of_each_kind_pass(files, tmp_path):
    import h5py

    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.attrs["model_config"] = "{}"
    np.savez(tmp_path / "s.npz", a=np.arange(3))
    (tmp_path / "r.json").write_text(' {"removed": []}')
    # a FlatBuffer begins with its root offset, then the 4-byte file identifier
    (tmp_path / "m.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(24))
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"\x08\x01")
    for path, kind in [
        (files / "model.keras", "model"), (tmp_path / "m.h5", "model"),
        (tmp_path / "saved", "model"), (files / "x.npy", "array"), (tmp_path / "s.npz", "array"),
        (tmp_path / "s.npz", "npz"), (tmp_path / "r.json", "json"), (tmp_path / "m.tflite", "tflite"),
    ]:  # fmt: skip
        assert checks.check_file(path, kind) is None, (path, kind)
    (tmp_path / "x.tflite").write_bytes(bytes(32))
    assert "no TFL3 identifier" in checks.check_file(tmp_path / "x.tflite", "tflite")


def test_run_folder_with_a_manifest_passes(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    assert checks.check_run_dir(tmp_path) is None
    assert "does not exist" in checks.check_run_dir(tmp_path / "nope")


def test_every_problem_is_one_line_with_the_fix(files):
    for path, kind in [
        (files / "text.txt", "model"), (files / "fake.npy", "array"), (files / "missing", "npz"),
        (files / "run", "json"),
    ]:  # fmt: skip
        problem = checks.check_file(path, kind)
        assert problem and "\n" not in problem and "Fix: " in problem
    with pytest.raises(ValueError, match="unknown kind"):
        checks.CheckedPath("picture")


def _commands(group, prefix=()):
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_option_of_every_command_has_help_text():
    import keras_legc.cli as cli

    missing = [
        (" ".join(path), param.name)
        for path, command in _commands(cli.main)
        for param in command.params
        if param.param_type_name == "option" and not param.help
    ]
    assert missing == []


def _run_dir(tmp_path, kernels=None):
    import keras_legc as kl

    rng = np.random.default_rng(0)
    history = kl.History(
        layers=["a"], shapes={"a": (4, 3)}, le=rng.normal(size=(12, 20)),
        target=rng.normal(size=20).cumsum(), window=10, overlap=0.1, every=1, n_snapshots=181,
        final_kernels=kernels,
    )  # fmt: skip
    history.save(tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [(["--sparsity", "1.5"], "sparsity must be in [0, 1)"),
     (["--sparsity", "0.8", "--alpha", "0.05"], "not both"),
     (["--alpha", "1.5"], "alpha must be in (0, 1)"),
     (["--ranking", "legc"], "ranking= applies to target mode"),
     (["--sparsity", "0.5", "--per-layer", "--allocation", "global"], "contradicts")],
)  # fmt: skip
def test_score_checks_its_options_before_scoring_or_writing(tmp_path, options, fragment):
    from click.testing import CliRunner

    from keras_legc.cli import main

    run = _run_dir(tmp_path)
    before = sorted(p.name for p in run.iterdir())
    done = CliRunner().invoke(main, ["score", str(run), "--no-progress", *options])
    assert done.exit_code == 2 and fragment in done.output, done.output
    assert sorted(p.name for p in run.iterdir()) == before  # no scores.npz written
    # the corrected command then runs: nothing was left behind to refuse it
    fixed = CliRunner().invoke(main, ["score", str(run), "--no-progress", "--sparsity", "0.5"])
    assert fixed.exit_code == 0, fixed.output


@pytest.mark.parametrize(("options", "want"), [([], "lamp"), (["--allocation", "global"], False),
                                               (["--per-layer"], True)])  # fmt: skip
def test_score_shares_the_sparsity_as_asked(tmp_path, options, want):
    from click.testing import CliRunner

    from keras_legc import Mask
    from keras_legc.cli import main

    run = _run_dir(tmp_path, {"a": np.random.default_rng(1).normal(size=(4, 3))})
    done = CliRunner().invoke(main, ["score", str(run), "--no-progress", "--sparsity", "0.5",
                                     *options])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert Mask.load(run / "mask.npz").info["per_layer"] == want


def test_score_exclude_keeps_the_layer_whole(tmp_path):
    from click.testing import CliRunner

    from keras_legc import Mask
    from keras_legc.cli import main

    rng = np.random.default_rng(1)
    run = tmp_path / "run"
    import keras_legc as kl

    kl.History(
        layers=["a", "b"], shapes={"a": (4, 3), "b": (3, 2)}, le=rng.normal(size=(18, 20)),
        target=rng.normal(size=20).cumsum(), window=10, overlap=0.1, every=1, n_snapshots=181,
        final_kernels={"a": rng.normal(size=(4, 3)), "b": rng.normal(size=(3, 2))},
    ).save(run)  # fmt: skip
    # an unknown name is refused before the recording is scored: nothing is written
    early = CliRunner().invoke(main, ["score", str(run), "--no-progress", "--sparsity", "0.5",
                                      "--exclude", "nope"])  # fmt: skip
    assert early.exit_code != 0 and "exclude names ['nope']" in early.output
    assert not (run / "scores.npz").exists() and not (run / "mask.npz").exists()
    done = CliRunner().invoke(main, ["score", str(run), "--no-progress", "--sparsity", "0.5",
                                     "--exclude", "b"])  # fmt: skip
    assert done.exit_code == 0, done.output
    mask = Mask.load(run / "mask.npz")
    assert mask["b"].all() and mask.layer_sparsity()["a"] == 0.5
    bad = CliRunner().invoke(main, ["score", str(run), "--no-progress", "--sparsity", "0.5",
                                    "--exclude", "c", "--force"])  # fmt: skip
    assert bad.exit_code != 0 and "exclude names ['c']" in bad.output


def test_score_refuses_an_existing_output_before_scoring(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import keras_legc as kl
    from keras_legc.cli import main

    run = _run_dir(tmp_path)
    (run / "mask.npz").write_bytes(b"old")
    monkeypatch.setattr(kl, "score", lambda *a, **k: pytest.fail("scored before the check"))
    done = CliRunner().invoke(main, ["score", str(run), "--no-progress", "--sparsity", "0.5"])
    assert done.exit_code == 2 and "mask.npz already exists" in done.output, done.output
    assert not (run / "scores.npz").exists()
