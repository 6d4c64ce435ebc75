"""The fine-tuning budget run (legc_research.evidence.finetune_budget): after the recipe's epochs
its arms are exactly the Torch-Pruning comparison's protocol, and the report's gaps are right."""

import keras
import pytest

import keras_legc as kl
from legc_research.datasets import FASHION_FILES, find_data_dir
from legc_research.evidence import finetune_budget as fb
from legc_research.evidence.channels_vs_torch_pruning import keras_finetune, orders
from legc_research.zoo import count_macs
from legc_research.zoo.train import accuracy, load_data, recipe, train_dense

FASHION = find_data_dir(required=FASHION_FILES)


@pytest.mark.skipif(FASHION is None, reason="needs Fashion-MNIST (LEGC_DATA_DIR)")
@pytest.mark.parametrize("arm", fb.ARMS)
def test_each_epoch_of_an_arm_is_the_comparisons_fine_tuning_of_that_many_epochs(tmp_path, arm):
    data = load_data(FASHION, subset=(1000, 100, 300))
    dense = train_dense("lenet_300_100", 0, data, tmp_path, quick=True, log=lambda _: None).model
    rec = recipe("lenet_300_100", quick=True)
    cell = fb.run_arm(dense, arm, 2.0, "l2", data, rec, orders(0, 3, len(data.y_train)))
    assert len(cell["accuracy"]) == 3
    if arm == "pruned":
        assert cell["macs"] <= count_macs(dense) / 2
    else:
        assert cell["macs"] == count_macs(dense)
    # the comparison's own protocol, 2 epochs: the same model as this arm after its second epoch
    model = keras.models.clone_model(dense)
    model.set_weights(dense.get_weights())
    if arm == "pruned":
        model = kl.prune_channels(model, macs=count_macs(dense) / 2, importance="l2")
    keras_finetune(model, data, rec, orders(0, 2, len(data.y_train)))
    assert accuracy(model, data.x_test, data.y_test) == cell["accuracy"][1]


def _cell(seed, arm, accuracy):
    return {"net": "resnet8", "seed": seed, "arm": arm, "factor": 2.0, "criterion": "l2",
            "accuracy": accuracy, "macs": 100 if arm == "dense" else 50, "params": 1,
            "recipe_epochs": 2, "seconds": 1.0}  # fmt: skip


def test_report_gives_the_mean_gap_per_epoch_and_each_seeds():
    results = {"cells": [
        _cell(0, "dense", [0.90, 0.91, 0.92]), _cell(0, "pruned", [0.88, 0.90, 0.92]),
        _cell(1, "dense", [0.80, 0.81, 0.82]), _cell(1, "pruned", [0.80, 0.80, 0.81]),
        _cell(2, "dense", [0.70, 0.70]),  # no pruned arm: seed 2 is left out
    ]}  # fmt: skip
    compare = {"nets": {"resnet8/seed0": {"accuracy_finetuned": 0.91}},
               "cells": [{"net": "resnet8", "seed": 0, "side": "keras_legc", "criterion": "l2",
                          "factor": 2.0, "accuracy": 0.905}]}  # fmt: skip
    text = fb.report(results, compare)
    assert "seeds 0, 1;" in text
    assert "| 1 | 0.8500 | 0.8400 | -1.00 | -2.00, +0.00 |" in text
    assert "| 3 | 0.8700 | 0.8650 | -0.50 | +0.00, -1.00 |" in text
    # epochs 2-3: seed 0 (-1, 0) -> -0.5, seed 1 (-1, -1) -> -1; the dense swing: seed 0's 1 pp
    assert "Averaged over epochs 2-3, pruned - dense: -0.75 pp (per seed -0.50, -1.00)" in text
    assert "moves by up to 1.00 pp from one epoch" in text
    assert "- seed 0, after 2 epochs: dense 0.9100 here, 0.9100 in the comparison; pruned " \
           "0.9000 here, 0.9050 there" in text  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--factor", "1"], "must be above 1"), (["--seeds", "0,a"], "comma-separated integers"),
     (["--criterion", "taylor"], "invalid choice"), (["--nets", "vgg"], "unknown net")],
)  # fmt: skip
def test_bad_arguments_are_refused_before_anything_trains(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        fb.main([*argv, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
