"""Rewrite the QDQ int8 model as plain-ONNX QOperator form: QuantizeLinear -> QLinearConv x10
-> DequantizeLinear -> GlobalAveragePool. Same scales, zero points, weights and int32 biases as
the QDQ file, so the integer arithmetic is the one the QDQ file describes; no data, no new
calibration. Research use only - not a diagnosis.

Why: tract 0.23 runs a QDQ file as float convolutions with fake quantization around them (it
does not fold DequantizeLinear -> Conv -> QuantizeLinear into an integer conv), so the QDQ int8
file can never beat the f32 file there. QLinearConv is a standard ONNX op (not one of
onnxruntime's contrib QLinearAdd/QLinearMul/QLinearGlobalAveragePool), which tract maps onto
its integer convolution (i8/u8 x i8 -> i32 kernels).

usage: python qoperator.py IN.int8.onnx OUT.onnx [--weights s8|u8] [--act u8|s8]
  --weights s8 (default): the QDQ file's uint8 weights with zero point 128 become int8 with zero
                         point 0 (w - 128; exact, every weight zero point in the file is 128);
                         int8 weights with zero point 0 are kept as they are
  --weights u8:          keep uint8 weights, scalar zero point 128
  --act s8:              activations as int8 with zero point z - 128 instead of uint8 with z:
                         the same integers shifted, so the arithmetic and the outputs are the
                         same; tract then needs no u8 -> i8 offset pass before every convolution
                         (its integer kernels take i8 activations). The file models/ ships.
"""
from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def convert(src: str, dst: str, weights: str = "s8", act: str = "u8") -> None:
    m = onnx.load(src)
    g = m.graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    # output name -> node, for the QDQ pattern walk
    prod = {o: n for n in g.node for o in n.output}
    new_inits, nodes = [], []

    def add(name, arr):
        new_inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def dq_source(name):
        """The DequantizeLinear producing `name`: (quantized input, scale, zero point)."""
        n = prod[name]
        assert n.op_type == "DequantizeLinear", (name, n.op_type)
        return n.input[0], n.input[1], n.input[2]

    convs = [n for n in g.node if n.op_type == "Conv"]
    # image -> QuantizeLinear (kept as it is)
    q_img = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == "image")
    nodes.append(q_img)
    for name in q_img.input[1:]:
        add(name, init[name])
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for c in convs:
        xq, xs, xz = dq_source(c.input[0])
        wq, ws, wz = dq_source(c.input[1])
        bq, _, _ = dq_source(c.input[2])
        q_out = [n for n in consumers[c.output[0]] if n.op_type == "QuantizeLinear"]
        assert len(q_out) == 1, c.name
        q_out = q_out[0]
        ys, yz = q_out.input[1], q_out.input[2]
        w, wzv = init[wq], init[wz]
        assert np.all(wzv == wzv.flat[0]), f"{c.name}: per-channel weight zero points differ"
        if w.dtype == np.int8:
            # symmetric int8 weights (export.py --weights qint8): already what tract wants
            assert wzv.flat[0] == 0, f"{c.name}: int8 weight zero point {wzv.flat[0]}, not 0"
            w_arr, wz_arr = w, np.array(0, np.int8)
        elif weights == "s8":
            assert wzv.flat[0] == 128, f"{c.name}: weight zero point {wzv.flat[0]}, not 128"
            w_arr = (w.astype(np.int16) - 128).astype(np.int8)
            wz_arr = np.array(0, np.int8)
        else:
            w_arr, wz_arr = w, np.array(wzv.flat[0], np.uint8)
        for name in (xs, xz, ys, yz):
            if not any(i.name == name for i in new_inits):
                add(name, init[name])
        wn = add(f"{c.name}.weight_q", w_arr)
        wsn = add(f"{c.name}.weight_scale", init[ws])
        wzn = add(f"{c.name}.weight_zp", wz_arr)
        bn = add(f"{c.name}.bias_q", init[bq].astype(np.int32))
        nodes.append(helper.make_node(
            "QLinearConv", [xq, xs, xz, wn, wsn, wzn, ys, yz, bn], [q_out.output[0]],
            name=c.name, **{a.name: helper.get_attribute_value(a) for a in c.attribute}))
    # the tail: DequantizeLinear(cam) -> GlobalAveragePool -> Flatten, as in the QDQ file
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.output[0] == "cam":
            nodes.append(n)
        elif n.op_type in ("GlobalAveragePool", "Flatten"):
            nodes.append(n)
    if act == "s8":
        # every activation zero point: the image's QuantizeLinear, each QLinearConv's x and y,
        # the tail's DequantizeLinear; weight zero points are not touched
        zps = set()
        for n in nodes:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                zps.add(n.input[2])
            elif n.op_type == "QLinearConv":
                zps.update([n.input[2], n.input[7]])
        for i, t in enumerate(new_inits):
            if t.name in zps:
                a = numpy_helper.to_array(t)
                assert a.dtype == np.uint8, (t.name, a.dtype)
                new_inits[i] = numpy_helper.from_array((a.astype(np.int16) - 128).astype(np.int8), t.name)
    graph = helper.make_graph(nodes, "cxr-net-qlinear", list(g.input), list(g.output),
                              initializer=new_inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                            producer_name="cxr-edge-train qoperator.py")
    out.ir_version = 8
    out = onnx.shape_inference.infer_shapes(out)
    onnx.checker.check_model(out, full_check=True)
    onnx.save(out, dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--weights", choices=["s8", "u8"], default="s8")
    ap.add_argument("--act", choices=["u8", "s8"], default="u8")
    a = ap.parse_args()
    convert(a.src, a.dst, a.weights, a.act)
    print("wrote", a.dst)


if __name__ == "__main__":
    main()
