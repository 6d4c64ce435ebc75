"""legc_research.evidence.allocation_study (docs/allocation.md) in its --quick mode: one cell per
allocation on LeNet-5, saved after each; a rerun measures nothing again; a file of another budget
is refused."""

from __future__ import annotations

import json

import pytest

from legc_research.datasets import FASHION_FILES, find_data_dir
from legc_research.evidence import allocation_study as al

FASHION = find_data_dir(required=FASHION_FILES)
pytestmark = pytest.mark.skipif(FASHION is None, reason="needs LEGC_DATA_DIR with fashion-mnist/")


def test_quick_study_one_cell_per_allocation_resumes_and_summarises(tmp_path, capsys):
    out = tmp_path / "alloc.json"
    assert al.main(["--quick", "--json", str(out)]) == 0
    cells = json.loads(out.read_text())["cells"]
    assert sorted(c["allocation"] for c in cells) == sorted(al.ALLOCATIONS)
    for c in cells:
        assert (c["net"], c["seed"], c["sparsity"]) == ("lenet5", 0, 0.75)
        assert 0.0 <= c["val_accuracy"] <= 1.0
    by = {c["allocation"]: c for c in cells}
    # uniform: 75% of every layer, to the nearest weight (LeNet-5's first kernel has 150)
    assert all(abs(v - 0.75) <= 0.5 / 150 for v in by["uniform"]["layer_sparsity"].values())
    assert by["lamp"]["emptied"] == [] and len(set(by["lamp"]["layer_sparsity"].values())) > 1
    table = capsys.readouterr().out
    assert "| lenet5 | 0.75 |" in table and "Mean gap to the best allocation" in table
    # the rerun finds every cell done; a different budget in the same file is refused
    assert al.main(["--quick", "--json", str(out)]) == 0
    assert len(json.loads(out.read_text())["cells"]) == 3
    with pytest.raises(SystemExit, match="another budget"):
        al.main(["--quick", "--json", str(out), "--epochs", "7"])
