"""A denser class activation map from the same weights: the last stride-2 convolution is run at
stride 1 and every later convolution dilated by 2 ("dense evaluation", as in DeepLab), so the head
gives a map with twice the rows and columns (10x10 instead of 5x5 at 160 px input).

Why this is exact where it matters: a 3x3 convolution with stride 2 and padding 1 computes its
output `i` from inputs `2i-1, 2i, 2i+1`; at stride 1 output `2i` reads the same three. The next
3x3 convolution, dilated by 2 with padding 2, then reads `2i-2, 2i, 2i+2` for output `2i`, which
are the old `i-1, i, i+1`, zero padding included. So the dense map at even rows and columns *is*
the shipped map, and the odd ones are the same network evaluated half a cell further on.
`check_even` verifies this for every film it is given. The classification (`logits`) must still
come from the shipped graph: the dense map's average is not the shipped average.
"""
from __future__ import annotations

import onnx
from onnx import helper

import numpy as np


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _set(node, name, value):
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def densify(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose last stride-2 Conv runs at stride 1, with every later Conv dilated
    by 2. Refuses graphs it does not understand (anything but a plain chain of 3x3 / 1x1 convs,
    pointwise ops and the final pooling after the last stride)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes = list(m.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    strided = [i for i in convs if _attrs(nodes[i]).get("strides", [1, 1]) == [2, 2]]
    if not strided:
        raise ValueError("no stride-2 convolution to densify")
    last = strided[-1]
    allowed = {"Conv", "Relu", "Clip", "BatchNormalization", "GlobalAveragePool", "Flatten", "Dropout",
               "QuantizeLinear", "DequantizeLinear"}
    for n in nodes[last + 1:]:
        if n.op_type not in allowed:
            raise ValueError(f"densify: unsupported op after the last stride: {n.op_type}")
    _set(nodes[last], "strides", [1, 1])
    for i in convs:
        if i <= last:
            continue
        at = _attrs(nodes[i])
        k = at.get("kernel_shape", [1, 1])
        if at.get("strides", [1, 1]) != [1, 1] or at.get("group", 1) != 1 or k[0] != k[1] or k[0] % 2 != 1:
            raise ValueError(f"densify: unsupported conv {nodes[i].name} {at}")
        if k[0] == 1:
            continue
        d = at.get("dilations", [1, 1])
        if at.get("pads", [0, 0, 0, 0]) != [d[0] * (k[0] // 2)] * 4:
            raise ValueError(f"densify: conv {nodes[i].name} is not 'same'-padded")
        _set(nodes[i], "dilations", [2 * d[0], 2 * d[1]])
        _set(nodes[i], "pads", [2 * d[0] * (k[0] // 2)] * 4)
    # Output shapes changed: drop the recorded ones and let the runtime infer them.
    del m.graph.value_info[:]
    for o in m.graph.output:
        shape = o.type.tensor_type.shape
        for dim in shape.dim:  # every size may change but the rank; names keep them free
            dim.Clear()
            dim.dim_param = "n"
    onnx.checker.check_model(m)
    return m


def check_even(dense_cam: np.ndarray, cam: np.ndarray, tol: float = 1e-3) -> float:
    """Largest difference between the dense map's even rows/columns and the shipped map; raises
    when it exceeds `tol` (the two graphs must agree there up to float rounding)."""
    even = dense_cam[..., ::2, ::2]
    if even.shape != cam.shape:
        raise ValueError(f"dense map {dense_cam.shape} does not contain the shipped map {cam.shape}")
    diff = float(np.max(np.abs(even - cam)))
    if diff > tol * max(1.0, float(np.max(np.abs(cam)))):
        raise ValueError(f"dense map differs from the shipped map at even positions by {diff}")
    return diff
