"""Export a checkpoint to ONNX (f32, BN folded) and static-int8 QDQ (per-channel weights).

usage: python export.py --ckpt runs/final/best.pt --out-dir ../ [--random --size 160]
Writes OUT/cxr-net.onnx and OUT/cxr-net.int8.onnx. The graph is written directly with
onnx.helper (opset 13, fixed shapes, input `image` [1,1,S,S], outputs `logits` [1,4] and
`cam` [1,4,h,w], logits = GlobalAveragePool(cam)).
Calibration for int8: `--calib N` training images (deterministic stratified subset) through
the checkpoint's own preprocessing (its meta's `preprocess`, cxr-area-v1 for older ones; no
augmentation). Also writes OUT/export.json: the input size, preprocessing id, mean and std the
network was trained with, which calibrate.py puts into the manifest (a model trained on
equalised films and described as cxr-area-v1 would be fed the wrong input on the device).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.model import CxrNet, ExportNet  # noqa: E402

OPSET = 13


def build_onnx(exp: ExportNet, size: int, path: Path, features_output=False):
    nodes, inits = [], []
    cur = "image"
    convs = [m for m in exp.features if isinstance(m, torch.nn.Conv2d)]
    s = size
    for li, conv in enumerate(convs):
        w = conv.weight.detach().numpy().astype(np.float32)
        b = conv.bias.detach().numpy().astype(np.float32)
        wn, bn = f"conv{li}.weight", f"conv{li}.bias"
        inits += [numpy_helper.from_array(w, wn), numpy_helper.from_array(b, bn)]
        st = conv.stride[0]
        nodes.append(helper.make_node("Conv", [cur, wn, bn], [f"conv{li}"], name=f"conv{li}",
                                      kernel_shape=[3, 3], strides=[st, st], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{li}"], [f"relu{li}"], name=f"relu{li}"))
        cur = f"relu{li}"
        s = (s + 2 - 3) // st + 1
    hw = exp.head.weight.detach().numpy().astype(np.float32)
    hb = exp.head.bias.detach().numpy().astype(np.float32)
    inits += [numpy_helper.from_array(hw, "head.weight"), numpy_helper.from_array(hb, "head.bias")]
    nodes.append(helper.make_node("Conv", [cur, "head.weight", "head.bias"], ["cam"], name="head",
                                  kernel_shape=[1, 1], strides=[1, 1]))
    nodes.append(helper.make_node("GlobalAveragePool", ["cam"], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["logits"], name="flatten", axis=1))
    ncls = hw.shape[0]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, ncls]),
               helper.make_tensor_value_info("cam", TensorProto.FLOAT, [1, ncls, s, s])]
    if features_output:
        nodes.append(helper.make_node("GlobalAveragePool", [cur], ["fgap"], name="fgap"))
        nodes.append(helper.make_node("Flatten", ["fgap"], ["features"], name="fflatten", axis=1))
        outputs.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, hw.shape[1]]))
    graph = helper.make_graph(nodes, "cxr-net",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, size, size])],
                              outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cxr-edge-train")
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return s


class _Reader:
    def __init__(self, xs):
        self.xs = xs
        self.i = 0

    def get_next(self):
        if self.i >= len(self.xs):
            return None
        x = self.xs[self.i:self.i + 1]
        self.i += 1
        return {"image": x}

    def rewind(self):
        self.i = 0


def quantize(f32_path: Path, int8_path: Path, calib_x: np.ndarray, method="minmax",
             exclude_head=False, act="quint8", weights="quint8"):
    """Static QDQ quantisation, per-channel weights.

    Default weights = uint8 (asymmetric, per channel) with uint8 activations ("U8U8"): on x86
    without VNNI, onnxruntime's optimised U8S8 conv kernel saturates int16 intermediates
    (pmaddubsw), which cost ~9% top-1 agreement here although the QDQ arithmetic itself (ORT
    with graph optimisations off) agreed 100% with f32. U8U8 has no such saturation path.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    # the pooling stays float (8-bit logits would be too coarse); optionally the head conv too
    excl = ["head", "gap", "flatten"] if exclude_head else ["gap", "flatten"]
    quantize_static(str(f32_path), str(int8_path), _Reader(calib_x),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8 if act == "quint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8 if weights == "qint8" else QuantType.QUInt8,
                    calibrate_method=cm,
                    nodes_to_exclude=excl,
                    extra_options={"WeightSymmetric": weights == "qint8",
                                   "ActivationSymmetric": act != "quint8"})
    m = onnx.load(str(int8_path))
    outs = [o.name for o in m.graph.output]
    assert outs[:2] == ["logits", "cam"], outs
    assert m.graph.input[0].name == "image"


def calib_tensors(n, size, mean, std, seed, preprocess="cxr-area-v1"):
    from cxr.data import load_images, load_manifest, split_rows, subset_rows, clean_tensors
    rows = subset_rows(split_rows(load_manifest(), "train"), n, seed + 1)
    return clean_tensors(rows, load_images(rows), size, mean, std, preprocess)


def load_net(ckpt):
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    net = CxrNet(**ck["meta"].get("net", {}))
    net.load_state_dict(ck["state"])
    return net.eval(), ck["meta"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt")
    ap.add_argument("--random", action="store_true", help="untrained random-init export")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--seed", type=int, default=20241130)
    ap.add_argument("--calib", type=int, default=300)
    ap.add_argument("--method", default="minmax")
    ap.add_argument("--act", default="quint8")
    ap.add_argument("--weights", default="quint8", help="quint8 (default, see quantize()) or qint8")
    ap.add_argument("--exclude-head", action="store_true")
    ap.add_argument("--out-dir", required=True)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    if a.random:
        net = CxrNet().eval()
        # give BN non-trivial statistics so the folded export is exercised
        g = torch.Generator().manual_seed(a.seed)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.data.uniform_(0.8, 1.2, generator=g)
                m.bias.data.normal_(0, 0.05, generator=g)
        meta = dict(size=a.size, mean=0.5, std=0.25, seed=a.seed)
    else:
        net, meta = load_net(a.ckpt)
    size, mean, std = meta["size"], meta["mean"], meta["std"]
    pre = meta.get("preprocess", "cxr-area-v1")  # checkpoints before cxr-eq-v2 had no field
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export.json").write_text(json.dumps(
        dict(size=size, preprocess=pre, mean=mean, std=std, ckpt=str(a.ckpt or "random")), indent=1) + "\n")
    exp = ExportNet(net)
    f32 = out / "cxr-net.onnx"
    build_onnx(exp, size, f32)
    # check against torch
    import onnxruntime as ort
    x = calib_tensors(8, size, mean, std, a.seed, pre)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(f32), so, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for i in range(len(x)):
            zl, zc = net(torch.from_numpy(x[i:i + 1]))
            ol, oc = sess.run(["logits", "cam"], {"image": x[i:i + 1]})
            assert np.allclose(ol, zl.numpy(), atol=1e-3, rtol=1e-3), (ol, zl)
            assert np.allclose(oc.mean(axis=(2, 3)), ol, atol=1e-5)
    print("f32 export matches torch")
    xc = calib_tensors(a.calib, size, mean, std, a.seed, pre)
    quantize(f32, out / "cxr-net.int8.onnx", xc, a.method, a.exclude_head, a.act, a.weights)
    for p in (f32, out / "cxr-net.int8.onnx"):
        print(p, p.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
