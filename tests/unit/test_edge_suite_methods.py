"""legc_research.evidence.edge_suite's methods that need a Keras model: the share of keras-legc's
prunable weights that TF-MOT prunes too (its registry leaves DepthwiseConv2D dense)."""

import keras
import numpy as np
import pytest

from legc_research.evidence import edge_suite as es
from legc_research.zoo import nets


def test_tfmot_share_leaves_out_exactly_the_depthwise_kernels():
    model = nets.build("ds_cnn", keras)
    # DS-CNN: conv1 10x4x1x64, four 3x3x64 depthwise and four 1x1 64x64 pointwise, out 640x10
    pointwise, depthwise = 4 * 64 * 64, 4 * 3 * 3 * 64
    total = 10 * 4 * 64 + depthwise + pointwise + 64 * 10
    assert es.tfmot_share(model) == (total - depthwise) / total
    assert es.tfmot_share(nets.build("resnet8", keras)) == 1.0  # no depthwise layer
    for name in ("legc_gradual_same_zeros", "legc_default_same_zeros"):
        assert name in es.METHODS and name in es.LEGC_METHODS


def test_a_model_whose_export_fails_verification_is_a_failed_cell(tmp_path, monkeypatch):
    # export_tflite keeps such a file aside (.failed.tflite) and reports it; the suite records
    # the cell as failed with the reason instead of reading a file that is not there
    failure = ("the int8 TFLite model differs from the Keras model by up to 0.108 (tolerance 0.1) "
               "on the reference inputs: the runtime computes it differently (...)")  # fmt: skip
    report = {"verification": {"ok": False, "failure": failure, "max_abs_error": 0.108,
                               "mean_abs_error": 0.012, "top1_agreement": 0.9375}}  # fmt: skip
    monkeypatch.setattr(es, "export", lambda *a, **k: report)
    config = es.RunConfig(quick=False, out=tmp_path)
    cell = es._measure(None, None, "legc_gradual", 0.9, "int8", tmp_path, [], config, 10)
    assert cell == {
        "status": "failed", "export_error": 0.108, "export_mean_error": 0.012,
        "export_top1_agreement": 0.9375, "int8_policy": es.INT8_POLICY,
        "error": "export: verification failed: the int8 TFLite model differs from the Keras "
                 "model by up to 0.108 (tolerance 0.1) on the reference inputs",
    }  # fmt: skip


@pytest.mark.parametrize("base", ["legc_gradual", "legc_default"])
def test_same_zeros_reuses_the_base_model_where_tf_mot_prunes_every_kernel(tmp_path, base):
    # ResNet-8 has no depthwise kernel: its zeros-matched run is the base method's run, so the
    # saved model is loaded instead of trained again (a net with depthwise kernels trains its own)
    import types

    import keras_legc as kl

    model = nets.build("resnet8", keras)
    saved = tmp_path / es._model_name(base, 0.5)
    kl.save_model(model, saved)
    ctx = es.Context("resnet8", 0, None, types.SimpleNamespace(model=model), None,
                     models=tmp_path)  # fmt: skip
    again = es.METHODS[f"{base}_same_zeros"].run(ctx, 0.5)
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert ctx.notes[(f"{base}_same_zeros", 0.5)] == {
        "sparsity_over_prunable": 0.5, "same_model_as": base}  # fmt: skip
    assert es._model_name("legc_gradual", 0.5) == "legc_gradual-0.5-v2.keras"
    assert es._model_name("legc_magnitude", 0.75) == "legc_magnitude-0.75.keras"


def test_same_zeros_asks_its_base_for_tf_mots_share_where_depthwise_kernels_are_left_dense(
    tmp_path,
):
    # DS-CNN: TF-MOT leaves the depthwise kernels dense, so the base method is run (not loaded,
    # though a saved model is there) at sparsity x the share TF-MOT prunes
    import types

    import keras_legc as kl

    model = nets.build("ds_cnn", keras)
    kl.save_model(model, tmp_path / es._model_name("legc_default", 0.9))
    asked = []
    method = es.same_zeros("legc_default", lambda ctx, target: asked.append(target) or model)
    ctx = es.Context("ds_cnn", 0, None, types.SimpleNamespace(model=model), None,
                     models=tmp_path)  # fmt: skip
    assert method(ctx, 0.9) is model
    share = es.tfmot_share(model)
    assert share < 1 and asked == [pytest.approx(0.9 * share)]
    assert ctx.notes[("legc_default_same_zeros", 0.9)] == {
        "sparsity_over_prunable": pytest.approx(0.9 * share)}  # fmt: skip


def test_the_block_method_leaves_exactly_the_depthwise_kernels_dense():
    # legc_default_block asks for (1, 16) blocks, which depthwise kernels have no LiteRT layout
    # for: it leaves those dense; on ResNet-8 (none) it is the plain default in blocks
    assert es.no_block_layout(nets.build("ds_cnn", keras)) == [
        f"dw{i}/depthwise_kernel" for i in range(1, 5)
    ]
    assert es.no_block_layout(nets.build("resnet8", keras)) is None
