"""edge/report: bench JSONs -> Markdown table and PNG (numpy + matplotlib, no TensorFlow)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import keras_legc as kl
from keras_legc.keras.export import export_tflite
from keras_legc.keras.flavour import keras

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    k = keras()
    k.utils.set_random_seed(0)
    model = k.Sequential(
        [k.layers.Input(shape=(32,)), k.layers.Dense(32, activation="relu"), k.layers.Dense(4)]
    )
    export_tflite(model, folder / "dense.tflite")
    for name, mask in (
        ("block-90", kl.magnitude_mask(model, 0.9, block=(1, 16))),
        ("unstructured-90", kl.random_mask(model, 0.9)),
    ):
        pruned = k.models.clone_model(model)
        pruned.set_weights(model.get_weights())
        for layer in kl.dense_layers(pruned):
            w, b = layer.get_weights()
            layer.set_weights([w * mask[layer.name], b])
        export_tflite(pruned, folder / f"{name}.tflite", sparse=True)
    paths = []
    for name in ("dense", "block-90", "unstructured-90"):
        out = folder / f"{name}.bench.json"
        proc = run("edge/bench.py", folder / f"{name}.tflite", "--runs", "20",
                   "--label", f"tiny/{name}", "--json", out)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        paths.append(out)
    return folder, paths


def test_markdown_table_and_plot(results):
    folder, paths = results
    proc = run("edge/report", *paths, "--markdown", folder / "t.md", "--plot", folder / "p.png")
    assert proc.returncode == 0, proc.stderr
    table = (folder / "t.md").read_text().splitlines()
    assert len(table) == 2 + 3 and "speed-up vs dense" in table[0]
    dense, block, unstructured = table[2:]
    assert "| tiny | dense |" in dense and "1.00x" in dense and "| ok |" in dense
    assert "| block |" in block and "| 90." in block  # within half a block of 90%
    assert "| unstructured |" in unstructured
    # The speed-up column is p50(dense) / p50(row), from the JSONs.
    p50 = [json.loads(p.read_text())["latency"]["p50_ms"] for p in paths]
    assert f"{p50[0] / p50[1]:.2f}x" in block
    png = (folder / "p.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    again = run("edge/report", *paths, "--markdown", folder / "t.md")
    assert again.returncode == 2 and "--force" in again.stderr


def test_mismatch_rows_are_flagged(results, tmp_path):
    _, paths = results
    r = json.loads(paths[1].read_text())
    r["check"].update(ok=False, collapsed=True)
    (tmp_path / "bad.json").write_text(json.dumps(r))
    proc = run("edge/report.py", tmp_path / "bad.json")
    assert proc.returncode == 0 and "**MISMATCH** (collapsed)" in proc.stdout


def test_a_mean_rule_row_shows_the_mean_error_and_its_tolerance(results, tmp_path):
    """An int8 export's default reference is judged by its mean error: the table says so."""
    _, paths = results
    r = json.loads(paths[0].read_text())
    r["check"].update(rule="mean", mean_abs_error=0.0123, mean_atol=0.025, max_abs_error=0.3)
    (tmp_path / "mean.json").write_text(json.dumps(r))
    proc = run("edge/report.py", tmp_path / "mean.json")
    assert proc.returncode == 0 and "| mean 0.012 (0.025) | ok |" in proc.stdout, proc.stdout
    assert "| max " in run("edge/report.py", paths[0]).stdout  # an older/max reference


def test_bad_inputs(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    proc = run("edge/report.py", tmp_path / "x.json")
    assert proc.returncode == 2 and "not a bench.py result" in proc.stderr
    proc = run("edge/report.py", tmp_path / "missing.json")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_plot_without_matplotlib_says_so(results, tmp_path):
    _, paths = results
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.path.insert(0, 'edge'); "
        f"import report; sys.exit(report.main([{str(paths[0])!r}, '--plot', "
        f"{str(tmp_path / 'p.png')!r}]))"
    )
    proc = run("-c", code)
    assert proc.returncode == 2 and "needs matplotlib" in proc.stderr and "Fix:" in proc.stderr
    assert not (tmp_path / "p.png").exists()
