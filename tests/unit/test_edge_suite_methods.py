"""legc_research.evidence.edge_suite's methods that need a Keras model: the share of keras-legc's
prunable weights that TF-MOT prunes too (its registry leaves DepthwiseConv2D dense)."""

import keras

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
