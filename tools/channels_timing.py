"""Time a whole channel-pruning pass (graph, importance, rebuild) per model (docs/channels.md).

    python tools/channels_timing.py            # the docs' models, 3 runs each after a warm-up
    python tools/channels_timing.py --quick    # one small model, one run (the test)
    python tools/channels_timing.py --applications   # every keras.applications net, one run

Prints one JSON line per model: parameters, MACs, seconds per stage (median of the runs) and the
parameters and MACs after ``prune_channels(model, ratio=0.3)`` (L2 importance).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def resnet8(keras):
    """MLPerf Tiny's image-classification ResNet-8 (16/32/64 filters, 32x32x3, 10 classes)."""
    L = keras.layers
    inp = keras.Input((32, 32, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(inp)))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, stride, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(filters, 1, stride)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Flatten()(L.AveragePooling2D(8)(x))
    return keras.Model(inp, L.Dense(10)(x), name="resnet8")


def ds_cnn(keras):
    """MLPerf Tiny's keyword-spotting DS-CNN (64 filters, 49x10x1 MFCCs, 12 classes)."""
    L = keras.layers
    inp = keras.Input((49, 10, 1))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(64, (10, 4), 2, padding="same")(inp)))
    for _ in range(4):
        x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(x)))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(64, 1)(x)))
    x = L.Flatten()(L.AveragePooling2D((25, 5))(x))
    return keras.Model(inp, L.Dense(12)(x), name="ds_cnn")


APPLICATIONS = (
    "MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "ResNet50", "ResNet50V2",
    "ResNet101", "DenseNet121", "DenseNet169", "EfficientNetB0", "EfficientNetB1",
    "EfficientNetV2B0", "NASNetMobile", "ConvNeXtTiny", "Xception", "InceptionV3",
    "InceptionResNetV2", "VGG16",
)  # fmt: skip
SMALLEST = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}


def applications(keras):
    """Each at its smallest input (32x32 unless it needs more), 10 classes, seeded weights."""
    for name in APPLICATIONS:
        keras.utils.set_random_seed(0)
        side = SMALLEST.get(name, 32)
        yield getattr(keras.applications, name)(
            weights=None, input_shape=(side, side, 3), classes=10
        )


def models(keras, quick: bool, apps: bool = False):
    if apps:
        return applications(keras)
    keras.utils.set_random_seed(0)
    if quick:
        return [ds_cnn(keras)]
    apps = keras.applications
    return [
        ds_cnn(keras),
        resnet8(keras),
        apps.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=2),
        apps.MobileNetV2(weights=None),  # 224x224x3, 1000 classes
    ]


def time_pass(model, runs: int) -> dict:
    import keras_legc as kl
    from keras_legc.structure import build_graph
    from keras_legc.structure.importance import l2, score_groups
    from keras_legc.structure.prune import choose
    from keras_legc.structure.rebuild import remove_channels

    stages = {"graph": [], "importance": [], "rebuild": [], "total": []}
    for _ in range(runs + 1):  # the first is a warm-up (imports, tracing)
        t0 = time.perf_counter()
        graph = build_graph(model)
        t1 = time.perf_counter()
        plan = choose(graph, score_groups(graph, l2), ("ratio", 0.3), 1, False)
        t2 = time.perf_counter()
        small = remove_channels(graph, plan)
        t3 = time.perf_counter()
        for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
            stages[key].append(value)
    return {
        "model": model.name,
        "params": model.count_params(),
        "macs": kl.count_macs(model),
        "params_after": small.count_params(),
        "macs_after": kl.count_macs(small),
        **{f"{k}_s": round(statistics.median(v[1:]), 3) for k, v in stages.items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small model, one run")
    parser.add_argument("--applications", action="store_true", help="keras.applications, 1 run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    import keras

    runs = 1 if args.quick or args.applications else args.runs
    for model in models(keras, args.quick, args.applications):
        print(json.dumps(time_pass(model, runs)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
