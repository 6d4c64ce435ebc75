"""legc_research.evidence.edge_suite's methods that need a Keras model: the share of keras-legc's
prunable weights that TF-MOT prunes too (its registry leaves DepthwiseConv2D dense)."""

import keras
import numpy as np

from legc_research.evidence import edge_suite as es
from legc_research.zoo import nets


def test_tfmot_share_leaves_out_exactly_the_depthwise_kernels():
    model = nets.build("ds_cnn", keras)
    # DS-CNN: conv1 10x4x1x64, four 3x3x64 depthwise and four 1x1 64x64 pointwise, out 640x10
    pointwise, depthwise = 4 * 64 * 64, 4 * 3 * 3 * 64
    total = 10 * 4 * 64 + depthwise + pointwise + 64 * 10
    assert es.tfmot_share(model) == (total - depthwise) / total
    assert es.tfmot_share(nets.build("resnet8", keras)) == 1.0  # no depthwise layer
    assert "legc_gradual_same_zeros" in es.METHODS and "legc_gradual_same_zeros" in es.LEGC_METHODS


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


def test_same_zeros_reuses_the_gradual_model_where_tf_mot_prunes_every_kernel(tmp_path):
    # ResNet-8 has no depthwise kernel: its zeros-matched run is legc_gradual's run, so the saved
    # model is loaded instead of trained again (a net with depthwise kernels trains its own)
    import types

    import keras_legc as kl

    model = nets.build("resnet8", keras)
    saved = tmp_path / es._model_name("legc_gradual", 0.5)
    kl.save_model(model, saved)
    ctx = es.Context("resnet8", 0, None, types.SimpleNamespace(model=model), None,
                     models=tmp_path)  # fmt: skip
    again = es.legc_gradual_same_zeros(ctx, 0.5)
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert ctx.notes[("legc_gradual_same_zeros", 0.5)] == {
        "sparsity_over_prunable": 0.5, "same_model_as": "legc_gradual"}  # fmt: skip
    assert es._model_name("legc_gradual", 0.5) == "legc_gradual-0.5-v2.keras"
    assert es._model_name("legc_magnitude", 0.75) == "legc_magnitude-0.75.keras"
