"""The PyTorch side of the Torch-Pruning comparison (issue 26): twins of the zoo's nets, Torch-Pruning.

Runs ONLY in the evidence virtualenv (``make evidence-venv``: torch, torch-pruning 1.6.1, numpy) as
``python -m legc_research.evidence.torch_twins JOB.json``; it imports torch and numpy, never
keras_legc or TensorFlow. The Keras side (``channels_vs_torch_pruning.py``) writes the job: the
net's layer graph (:func:`keras_spec` there), its trained weights (npz, Keras layouts), the data
(npz) and what to do; this script writes its result json atomically (temp file + rename).

A twin is one generic module that walks the Keras graph's layers in order, so every zoo net (and
any graph of the same layer types) gets one with the same structure. Layouts copied from Keras:

- Conv2D kernel ``(kh, kw, in, out)`` -> ``(out, in, kh, kw)``; DepthwiseConv2D ``(kh, kw, C, 1)``
  -> ``(C, 1, kh, kw)`` with ``groups=C``; Dense ``(in, out)`` -> ``(out, in)``;
- a Dense after a Flatten of an ``(H, W, C)`` map: Keras flattens in ``(h, w, c)`` order, PyTorch
  in ``(c, h, w)``; the kernel's rows are permuted once at copy time, so the twin flattens the
  NCHW way and Torch-Pruning's Flatten dependency sees the plain layout;
- BatchNormalization: gamma, beta, moving mean and variance; Keras' epsilon, momentum ``1 - m``;
- TensorFlow's "same" padding puts the odd extra row/column at the bottom/right (stride 2 on an
  even size): an explicit ``ZeroPad2d`` where it is asymmetric, the convolution's own padding
  where it is symmetric.

The classifier's softmax is left out (logits; cross-entropy on logits is Keras'
sparse categorical cross-entropy on the softmax output). The Keras nets' L2 on Conv2D kernels is
added to the loss on this side too.

MACs are counted by forward hooks with keras-legc's convention (``kl.count_macs``: a convolution's
kernel elements times its output positions, a Linear's weight elements; nothing else), so both
sides hit the same target; Torch-Pruning's own ``tp.utils.count_ops_and_params`` is recorded
beside it.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CRITERIA = ("l2", "l1", "taylor", "bn_scale", "random")


def _write_json(path: Path, obj) -> None:
    """Atomic: a temp file in the same folder, fsynced, renamed over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Twin(nn.Module):
    """A PyTorch model that computes what the Keras graph ``spec`` computes (NCHW inside)."""

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = spec
        self.mods = nn.ModuleDict()
        self.l2 = []  # (module name, factor): Keras' kernel_regularizer
        for layer in spec["layers"]:
            mod = self._module(layer)
            if mod is not None:
                self.mods[layer["name"]] = mod
            if layer.get("l2"):
                self.l2.append((layer["name"], layer["l2"]))
        self.classifier = spec["output"]

    @staticmethod
    def _module(layer: dict) -> nn.Module | None:
        kind, c = layer["class"], layer["config"]
        if kind in ("Conv2D", "DepthwiseConv2D"):
            in_c = layer["in_shape"][-1]
            kh, kw = c["kernel_size"]
            sh, sw = c["strides"]
            depthwise = kind == "DepthwiseConv2D"
            out_c = in_c * c.get("depth_multiplier", 1) if depthwise else c["filters"]
            pad, pre = (0, 0), None
            if c["padding"] == "same":
                ph = _same_pads(layer["in_shape"][0], kh, sh)
                pw = _same_pads(layer["in_shape"][1], kw, sw)
                if ph[0] == ph[1] and pw[0] == pw[1]:
                    pad = (ph[0], pw[0])
                else:
                    pre = nn.ZeroPad2d((pw[0], pw[1], ph[0], ph[1]))
            conv = nn.Conv2d(in_c, out_c, (kh, kw), (sh, sw), pad, bias=c["use_bias"],
                             groups=in_c if depthwise else 1)  # fmt: skip
            return nn.Sequential(pre, conv) if pre is not None else conv
        if kind == "BatchNormalization":
            return nn.BatchNorm2d(layer["in_shape"][-1], eps=c["epsilon"],
                                  momentum=1.0 - c["momentum"])  # fmt: skip
        if kind == "Dense":
            return nn.Linear(layer["in_shape"][-1], c["units"], bias=c["use_bias"])
        if kind == "Dropout":
            return nn.Dropout(c["rate"])
        if kind == "AveragePooling2D":
            return nn.AvgPool2d(c["pool_size"], c["strides"] or c["pool_size"])
        if kind == "MaxPooling2D":
            return nn.MaxPool2d(c["pool_size"], c["strides"] or c["pool_size"])
        if kind in ("InputLayer", "Activation", "Add", "Flatten"):
            return None
        raise ValueError(f"no PyTorch twin for a Keras {kind} ({layer['name']}).")

    def conv(self, name: str) -> nn.Module:
        mod = self.mods[name]
        return mod[-1] if isinstance(mod, nn.Sequential) else mod

    def forward(self, x):
        values = {}
        for layer in self.spec["layers"]:
            name, kind, c = layer["name"], layer["class"], layer["config"]
            ins = [values[i] for i in layer["inbound"]]
            if kind == "InputLayer":
                y = x
            elif kind == "Add":
                y = ins[0]
                for other in ins[1:]:
                    y = y + other
            elif kind == "Flatten":
                y = torch.flatten(ins[0], 1)
            elif kind == "Activation":
                y = ins[0]
            else:
                y = self.mods[name](ins[0])
            act = c.get("activation", "linear")
            if act == "relu":
                y = F.relu(y)
            elif act == "softmax" and name != self.classifier:
                y = F.softmax(y, dim=1)
            elif act not in ("linear", "softmax"):
                raise ValueError(f"no PyTorch twin for activation {act!r} ({name}).")
            values[name] = y
        return values[self.classifier]

    def l2_penalty(self):
        return sum(f * (self.conv(n).weight ** 2).sum() for n, f in self.l2)


def load_keras_weights(twin: Twin, weights: dict[str, np.ndarray]) -> None:
    """Copy Keras-layout weights (``"layer/kernel"``, ...) into the twin (see the module doc)."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    with torch.no_grad():
        for layer in twin.spec["layers"]:
            name, kind = layer["name"], layer["class"]
            if kind == "Conv2D":
                conv = twin.conv(name)
                conv.weight.copy_(t(weights[f"{name}/kernel"].transpose(3, 2, 0, 1)))
                if conv.bias is not None:
                    conv.bias.copy_(t(weights[f"{name}/bias"]))
            elif kind == "DepthwiseConv2D":
                conv = twin.conv(name)
                k = weights[f"{name}/kernel"]  # (kh, kw, C, m): output channel c*m + j
                conv.weight.copy_(t(k.reshape(k.shape[0], k.shape[1], -1).transpose(2, 0, 1)[
                    :, None]))  # fmt: skip
                if conv.bias is not None:
                    conv.bias.copy_(t(weights[f"{name}/bias"]))
            elif kind == "BatchNormalization":
                bn = twin.mods[name]
                bn.weight.copy_(t(weights[f"{name}/gamma"]))
                bn.bias.copy_(t(weights[f"{name}/beta"]))
                bn.running_mean.copy_(t(weights[f"{name}/moving_mean"]))
                bn.running_var.copy_(t(weights[f"{name}/moving_variance"]))
            elif kind == "Dense":
                lin = twin.mods[name]
                k = weights[f"{name}/kernel"]
                src = layer.get("flatten_from")  # (H, W, C) of the map a Flatten made
                if src is not None and len(src) == 3:
                    h, w, ch = src
                    k = k.reshape(h, w, ch, -1).transpose(2, 0, 1, 3).reshape(h * w * ch, -1)
                lin.weight.copy_(t(k.T))
                if lin.bias is not None:
                    lin.bias.copy_(t(weights[f"{name}/bias"]))


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """keras-legc's MAC convention by forward hooks: Conv2d weight elements times output
    positions, Linear weight elements."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += mod.weight.numel() * out.shape[2] * out.shape[3]
        else:
            total[0] += mod.weight.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]  # fmt: skip
    model.eval()
    with torch.no_grad():
        model(example[:1])
    for h in handles:
        h.remove()
    return int(total[0])


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


def predict(model: nn.Module, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(nchw(x[i : i + batch])).numpy()
                               for i in range(0, len(x), batch)])  # fmt: skip


def accuracy(model, x, y) -> float:
    return float(np.mean(predict(model, x).argmax(axis=1) == y))


def finetune(model: Twin, x, y, order: np.ndarray, ft: dict) -> float:
    """Adam (Keras' epsilon 1e-7) at ``lr``, one epoch per row of ``order`` (the Keras side's data
    order), batch ``batch_size``; cross-entropy on logits plus the Keras nets' L2. Returns the
    seconds."""
    torch.manual_seed(ft.get("seed", 0))
    opt = torch.optim.Adam(model.parameters(), lr=ft["lr"], eps=1e-7)
    t0 = time.perf_counter()
    for epoch_order in order:
        model.train()
        for i in range(0, len(epoch_order), ft["batch_size"]):
            idx = epoch_order[i : i + ft["batch_size"]]
            opt.zero_grad()
            loss = F.cross_entropy(model(nchw(x[idx])), torch.from_numpy(y[idx].astype(np.int64)))
            (loss + model.l2_penalty()).backward()
            opt.step()
    return time.perf_counter() - t0


def importance(name: str):
    import torch_pruning as tp

    return {
        "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
        "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
        "taylor": lambda: tp.importance.GroupTaylorImportance(),
        "bn_scale": lambda: tp.importance.BNScaleImportance(),
        "random": lambda: tp.importance.RandomImportance(),
    }[name]()


def tp_prune(dense: Twin, criterion: str, ratio: float, example, calib, seed: int) -> Twin:
    """Torch-Pruning 1.6.1 on a copy of ``dense``: MetaPruner, global pruning at ``ratio``, the
    classifier ignored, ``criterion``'s importance (Taylor: gradients of the loss on ``calib``)."""
    import torch_pruning as tp

    model = copy.deepcopy(dense)
    torch.manual_seed(seed)
    pruner = tp.pruner.MetaPruner(
        model, example, importance=importance(criterion), global_pruning=True,
        pruning_ratio=ratio, ignored_layers=[model.mods[model.classifier]],
    )  # fmt: skip
    if criterion == "taylor":
        model.eval()  # BN statistics fixed, as the Keras side's inference-mode gradients
        model.zero_grad()
        xc, yc = calib
        F.cross_entropy(model(nchw(xc)), torch.from_numpy(yc.astype(np.int64))).backward()
    pruner.step()
    model.zero_grad(set_to_none=True)
    return model


def prune_to_macs(dense: Twin, criterion, target_macs, example, calib, seed, steps=14):
    """Torch-Pruning at the global ratio whose model has the most MACs within ``target_macs``:
    a bisection on the ratio (MACs fall as it grows, but not strictly for data-dependent or random
    scores), keeping the closest model at or under the target of every trial.
    Returns (model, ratio, trials)."""
    lo, hi, best = 0.0, 1.0, None
    for _ in range(steps):
        mid = (lo + hi) / 2
        model = tp_prune(dense, criterion, mid, example, calib, seed)
        macs = count_macs(model, example)
        if macs <= target_macs:
            hi = mid
            if best is None or macs > best[2]:
                best = (model, mid, macs)
        else:
            lo = mid
    if best is None:
        raise RuntimeError(f"Torch-Pruning did not reach {target_macs} MACs at any ratio < 1.")
    return best[0], best[1], steps


def run_job(job: dict) -> dict:
    """One job: ``forward`` (the twin's outputs on given inputs, and MAC counts) or ``prune``
    (one cell: prune to the MAC target, accuracy before and after the fine-tuning)."""
    import torch_pruning as tp

    torch.set_num_threads(int(job.get("threads", 1)))
    torch.use_deterministic_algorithms(True)
    spec = json.loads(Path(job["spec"]).read_text())
    with np.load(job["weights"]) as w:
        weights = dict(w)
    twin = Twin(spec)
    load_keras_weights(twin, weights)
    twin.eval()
    example = torch.zeros((1, *[spec["input_shape"][i] for i in (2, 0, 1)]))
    macs = count_macs(twin, example)
    tp_macs, tp_params = tp.utils.count_ops_and_params(twin, example)
    out = {"torch": torch.__version__, "torch_pruning": version("torch-pruning"), "macs": macs,
           "tp_macs": int(tp_macs), "params": int(tp_params)}  # fmt: skip
    if job["mode"] == "forward":
        with np.load(job["inputs"]) as f:
            x = f["x"]
        probs = torch.softmax(torch.from_numpy(predict(twin, x)), dim=1).numpy()
        tmp = f"{job['outputs']}.tmp.npy"  # np.save adds .npy to other names
        np.save(tmp, probs)
        os.replace(tmp, job["outputs"])
        return out
    with np.load(job["data"]) as d:
        data = dict(d)
    ft = job["finetune"]
    calib = (data["x_train"][: job["n_calibration"]], data["y_train"][: job["n_calibration"]])
    t0 = time.perf_counter()
    model, ratio, trials = prune_to_macs(twin, job["criterion"], job["target_macs"], example, calib,
                                         job["seed"])  # fmt: skip
    seconds_prune = time.perf_counter() - t0
    pr_macs = count_macs(model, example)
    pr_tp_macs, pr_params = tp.utils.count_ops_and_params(model, example)
    before = accuracy(model, data["x_test"], data["y_test"])
    seconds_ft = finetune(model, data["x_train"], data["y_train"], data["order"], ft)
    return {**out, "dense_accuracy": accuracy(twin, data["x_test"], data["y_test"]),
            "pruned_macs": pr_macs, "pruned_tp_macs": int(pr_tp_macs),
            "pruned_params": int(pr_params), "ratio": ratio, "trials": trials,
            "seconds_prune": seconds_prune, "seconds_prune_one": seconds_prune / trials,
            "accuracy_before": before, "seconds_finetune": seconds_ft,
            "accuracy": accuracy(model, data["x_test"], data["y_test"])}  # fmt: skip


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    _write_json(Path(job["result"]), run_job(job))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
