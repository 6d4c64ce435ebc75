"""The commands and paths the evidence scripts write into docs/ (legc_research/evidence/_provenance.py)
name the project and the data folder, never a folder of the machine that wrote them."""

import shlex
import subprocess

from legc_research.evidence._provenance import REPO, portable_path, tool_command


def test_paths_in_the_data_folder_and_the_checkout_are_named_relative_to_them(
    tmp_path, monkeypatch
):
    data = tmp_path / "somewhere" / "data"
    (data / "mnist").mkdir(parents=True)
    monkeypatch.setenv("LEGC_DATA_DIR", str(data))
    assert portable_path(data) == "$LEGC_DATA_DIR"
    assert portable_path(data / "mnist") == "$LEGC_DATA_DIR/mnist"
    assert portable_path(str(data) + "/") == "$LEGC_DATA_DIR"
    assert portable_path(REPO / "runs" / "x.json") == "runs/x.json"
    assert portable_path(REPO) == "."
    # a folder of neither: named as given
    assert portable_path(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")
    assert portable_path("runs/rel.json") == "runs/rel.json"  # relative paths are left alone


def test_a_tool_command_names_no_machine_folder_and_still_runs_in_a_shell(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("LEGC_DATA_DIR", str(data))
    argv = ["runs/k3", "--data-dir", str(data), f"--doc={REPO / 'docs' / 'keras3.md'}", "-q"]
    command = tool_command("keras3_report", argv)
    assert command == (
        'python tools/keras3_report.py runs/k3 --data-dir "$LEGC_DATA_DIR" --doc=docs/keras3.md -q'
    )
    assert str(tmp_path) not in command and str(REPO) not in command
    # the shell that runs it gets the data folder back from the variable
    echoed = subprocess.run(
        ["bash", "-c", "printf '%s\\n' " + command.split(" ", 2)[2]],
        capture_output=True, text=True, env={"LEGC_DATA_DIR": str(data)}, check=True,
    ).stdout.split()  # fmt: skip
    assert echoed == ["runs/k3", "--data-dir", str(data), "--doc=docs/keras3.md", "-q"]
    assert shlex.split(tool_command("x", ["a b"]))[-1] == "a b"  # other arguments stay quoted


def test_a_link_inside_the_checkout_stays_relative_though_it_points_out(tmp_path):
    # a virtualenv's bin/python links to the interpreter outside the checkout; the command a doc
    # gives names it where the user ran it, never the machine's folder it links to
    from legc_research.evidence._provenance import REPO, portable_path

    target = tmp_path / "python3.11"
    target.write_text("")
    link_dir = REPO / "runs" / "provenance-link-test"
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / "python"
    try:
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        assert portable_path(str(link)) == "runs/provenance-link-test/python"
        assert portable_path(str(target)) == str(target)  # outside everything: unchanged
    finally:
        link.unlink(missing_ok=True)
        link_dir.rmdir()
