#!/usr/bin/python3
"""Builds small models in the idioms of exporters other than PyTorch's, with onnxruntime's outputs as reference.

Users bring graphs from paddle2onnx (PaddleOCR, PaddleDetection) and tf2onnx (Keras, TF SavedModels), which
write operators and patterns that PyTorch's exporter never does. Neither exporter can be installed on this
machine (no PyPI), so the graphs are written node by node with onnx.helper, following what those exporters
emit for the same layers:

  paddle_ocr_det   a DBNet-style text detector as paddle2onnx writes PP-OCR's: opset 11, dynamic dims named
                   p2o.DynamicDimension.K, unfolded BatchNormalization, hard-swish as HardSigmoid(alpha=1/6,
                   beta=0.5)·Mul, squeeze-excite gates with HardSigmoid(0.2, 0.5), depthwise convolutions, an FPN
                   with Resize(nearest, asymmetric, floor; opset-11 roi + scales inputs), a head upsampling by
                   two ConvTranspose and a Sigmoid;
  paddle_ocr_rec   a CRNN recogniser: conv backbone, Squeeze + Transpose to time-major, a bidirectional LSTM
                   (layout 0), MatMul + Add, Softmax over the character classes;
  tf_nhwc_cnn      what tf2onnx writes for a Keras CNN: NHWC input named "input_1:0", Transpose to NCHW and
                   back, TF 'SAME' padding as an explicit Pad, ReLU6 as Clip with min/max inputs, global average
                   pool as ReduceMean over H, W, Dense as MatMul + Add;
  tf_cond          a graph that branches with If (tf.cond): both branches read outer-scope values and give
                   different-shaped intermediates.

Weights are random (seeded). Each model directory gets model.onnx, input_K.npy and onnxruntime's outputs as
expected_K.npy (tests/models/ort_run.js), the layout run_model_tests.py reads.

usage: make_exporter_fixtures.py OUTDIR [--ort-path NODE_MODULES] [--only NAME]
"""
import argparse
import os
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fixture_io import save_with_onnxruntime_outputs



class GraphBuilder:
    """Nodes, initializers and fresh names for one graph, named the way the exporter being imitated names them."""

    def __init__(self, rng, prefix):
        self.rng, self.prefix = rng, prefix
        self.nodes, self.initializers, self.counts = [], [], {}

    def name(self, kind):
        k = self.counts.get(kind, 0)
        self.counts[kind] = k + 1
        return "%s%s.%d" % (self.prefix, kind, k)

    def const(self, array, kind="w"):
        name = self.name(kind)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape, scale=None):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        scale = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op_type, inputs, n_outputs=1, **attrs):
        outputs = [self.name(op_type + ".out") for _ in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.name(op_type), **attrs))
        return outputs[0] if n_outputs == 1 else outputs

    # ---- layers as the exporters spell them ----------------------------------------------------------------

    def conv(self, x, c_in, c_out, k, stride=1, group=1, bias=True):
        inputs = [x, self.weight(c_out, c_in // group, k, k)]
        if bias:
            inputs.append(self.const(np.zeros(c_out, np.float32) + 0.01 * self.rng.standard_normal(c_out).astype(np.float32)))
        pad = (k - 1) // 2
        return self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group,
                       dilations=[1, 1])

    def batchnorm(self, x, c):
        scale = self.const((1 + 0.2 * self.rng.standard_normal(c)).astype(np.float32))
        bias = self.const((0.1 * self.rng.standard_normal(c)).astype(np.float32))
        mean = self.const((0.1 * self.rng.standard_normal(c)).astype(np.float32))
        var = self.const(self.rng.uniform(0.5, 1.5, c).astype(np.float32))
        return self.op("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-5, momentum=0.9)

    def hard_swish(self, x):
        gate = self.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
        return self.op("Mul", [x, gate])

    def squeeze_excite(self, x, c):
        pooled = self.op("GlobalAveragePool", [x])
        hidden = self.op("Relu", [self.conv(pooled, c, max(c // 4, 1), 1)])
        gate = self.op("HardSigmoid", [self.conv(hidden, max(c // 4, 1), c, 1)], alpha=0.2, beta=0.5)
        return self.op("Mul", [x, gate])

    def conv_bn_act(self, x, c_in, c_out, k, stride=1, group=1, act="hard_swish"):
        y = self.batchnorm(self.conv(x, c_in, c_out, k, stride, group, bias=False), c_out)
        if act == "hard_swish":
            return self.hard_swish(y)
        return self.op("Relu", [y]) if act == "relu" else y

    def resize_nearest_2x(self, x):
        """paddle2onnx at opset 11: an empty roi and scales given as initializers, sizes omitted."""
        roi = self.const(np.array([], np.float32), "roi")
        scales = self.const(np.array([1, 1, 2, 2], np.float32), "scales")
        return self.op("Resize", [x, roi, scales], mode="nearest", coordinate_transformation_mode="asymmetric",
                       nearest_mode="floor")

    def model(self, inputs, outputs, opset, name):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, producer_name=name.split("_")[0], opset_imports=[helper.make_opsetid("", opset)])
        onnx.checker.check_model(model)
        return model


def dynamic_input(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


# ---- the models ------------------------------------------------------------------------------------------------

def paddle_ocr_det(rng):
    b = GraphBuilder(rng, "p2o.")
    x = "x"
    c1 = b.conv_bn_act(x, 3, 8, 3, stride=2)                       # 1/2
    c2 = b.conv_bn_act(c1, 8, 8, 3, stride=2, group=8)             # 1/4, depthwise
    c2 = b.squeeze_excite(b.conv_bn_act(c2, 8, 16, 1), 16)
    c3 = b.conv_bn_act(c2, 16, 16, 3, stride=2, group=16)          # 1/8
    c3 = b.conv_bn_act(c3, 16, 24, 1)
    # FPN: lateral 1x1 convs, top-down nearest upsampling, sum
    in3, in2 = b.conv(c3, 24, 16, 1, bias=False), b.conv(c2, 16, 16, 1, bias=False)
    p2 = b.op("Add", [in2, b.resize_nearest_2x(in3)])
    fused = b.op("Concat", [p2, b.resize_nearest_2x(b.conv(in3, 16, 16, 3, bias=False))], axis=1)
    # DB head: conv, two stride-2 transposed convs back to 1/1, sigmoid probability map
    h = b.conv_bn_act(fused, 32, 8, 3, act="relu")
    h = b.op("ConvTranspose", [h, b.weight(8, 8, 2, 2), b.const(np.zeros(8, np.float32))], kernel_shape=[2, 2],
             strides=[2, 2])
    h = b.op("Relu", [b.batchnorm(h, 8)])
    h = b.op("ConvTranspose", [h, b.weight(8, 1, 2, 2), b.const(np.zeros(1, np.float32))], kernel_shape=[2, 2],
             strides=[2, 2])
    b.nodes.append(helper.make_node("Sigmoid", [h], ["sigmoid_0.tmp_0"], name=b.name("Sigmoid")))
    dims = ["p2o.DynamicDimension.0", 3, "p2o.DynamicDimension.1", "p2o.DynamicDimension.2"]
    model = b.model([dynamic_input("x", TensorProto.FLOAT, dims)],
                    [dynamic_input("sigmoid_0.tmp_0", TensorProto.FLOAT,
                                   ["p2o.DynamicDimension.3", 1, "p2o.DynamicDimension.4", "p2o.DynamicDimension.5"])],
                    11, "paddle_ocr_det")
    return model, [rng.standard_normal((1, 3, 64, 96)).astype(np.float32)]


def paddle_ocr_rec(rng):
    b = GraphBuilder(rng, "p2o.")
    hidden, classes = 16, 37
    y = b.conv_bn_act("x", 3, 8, 3, stride=2, act="relu")                 # H 32 -> 16
    y = b.conv_bn_act(y, 8, 16, 3, stride=2, act="relu")                  # 8
    y = b.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])          # 4
    y = b.op("MaxPool", [b.conv_bn_act(y, 16, 24, 3, act="relu")], kernel_shape=[4, 1], strides=[4, 1])  # 1
    seq = b.op("Transpose", [b.op("Squeeze", [y], axes=[2])], perm=[2, 0, 1])   # [W, N, C], time-major
    w = b.weight(2, 4 * hidden, 24)
    r = b.weight(2, 4 * hidden, hidden)
    bias = b.const((0.1 * rng.standard_normal((2, 8 * hidden))).astype(np.float32))
    out, _, _ = b.op("LSTM", [seq, w, r, bias], n_outputs=3, hidden_size=hidden, direction="bidirectional")
    # [W, 2, N, H] -> [W, N, 2H] -> [N, W, 2H]
    out = b.op("Reshape", [b.op("Transpose", [out], perm=[0, 2, 1, 3]), b.const(np.array([0, 0, -1], np.int64))])
    out = b.op("Transpose", [out], perm=[1, 0, 2])
    logits = b.op("Add", [b.op("MatMul", [out, b.weight(2 * hidden, classes)]),
                          b.const(np.zeros(classes, np.float32))])
    b.nodes.append(helper.make_node("Softmax", [logits], ["softmax_0.tmp_0"], axis=2, name=b.name("Softmax")))
    model = b.model([dynamic_input("x", TensorProto.FLOAT, ["p2o.DynamicDimension.0", 3, 32, "p2o.DynamicDimension.1"])],
                    [dynamic_input("softmax_0.tmp_0", TensorProto.FLOAT, ["p2o.DynamicDimension.2", "p2o.DynamicDimension.3", classes])],
                    11, "paddle_ocr_rec")
    return model, [rng.standard_normal((2, 3, 32, 80)).astype(np.float32)]


def tf_nhwc_cnn(rng):
    b = GraphBuilder(rng, "StatefulPartitionedCall/model/")
    six, zero = b.const(np.float32(6), "relu6_max"), b.const(np.float32(0), "relu6_min")
    x = b.op("Transpose", ["input_1:0"], perm=[0, 3, 1, 2])
    # Conv2D 'SAME' with stride 2 on an even size pads (0, 1): tf2onnx writes the asymmetric pads explicitly
    x = b.op("Pad", [x, b.const(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64))], mode="constant")
    x = b.op("Conv", [x, b.weight(8, 3, 3, 3), b.const(np.zeros(8, np.float32))], kernel_shape=[3, 3], strides=[2, 2])
    x = b.op("Clip", [x, zero, six])
    dw = b.op("Conv", [x, b.weight(8, 1, 3, 3), b.const(np.zeros(8, np.float32))], kernel_shape=[3, 3], group=8,
              pads=[1, 1, 1, 1])
    x = b.op("Clip", [b.op("Add", [dw, x]), zero, six])
    x = b.op("Transpose", [x], perm=[0, 2, 3, 1])                         # back to NHWC, as TF layers hand over
    x = b.op("ReduceMean", [x], axes=[1, 2], keepdims=0)
    logits = b.op("Add", [b.op("MatMul", [x, b.weight(8, 5)]), b.const(np.zeros(5, np.float32))])
    b.nodes.append(helper.make_node("Softmax", [logits], ["Identity:0"], axis=-1, name=b.name("Softmax")))
    model = b.model([dynamic_input("input_1:0", TensorProto.FLOAT, ["unk__0", 32, 32, 3])],
                    [dynamic_input("Identity:0", TensorProto.FLOAT, ["unk__1", 5])], 13, "tf2onnx_nhwc_cnn")
    return model, [rng.standard_normal((3, 32, 32, 3)).astype(np.float32)]


def tf_cond(rng):
    """y = x @ W1 if mean(x) > 0 else relu(x @ W2) @ W3 (a wider hidden layer): both branches use outer values."""
    b = GraphBuilder(rng, "cond/")
    w1, w2, w3 = b.weight(6, 4), b.weight(6, 10), b.weight(10, 4)
    cond = b.op("Greater", [b.op("ReduceMean", ["x"], keepdims=0), b.const(np.float32(0), "zero")])
    then_graph = helper.make_graph([helper.make_node("MatMul", ["x", w1], ["then_y"])], "then_branch", [],
                                   [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, None)])
    else_graph = helper.make_graph([helper.make_node("MatMul", ["x", w2], ["else_h"]),
                                    helper.make_node("Relu", ["else_h"], ["else_r"]),
                                    helper.make_node("MatMul", ["else_r", w3], ["else_y"])], "else_branch", [],
                                   [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, None)])
    b.nodes.append(helper.make_node("If", [cond], ["y"], then_branch=then_graph, else_branch=else_graph,
                                    name=b.name("If")))
    model = b.model([dynamic_input("x", TensorProto.FLOAT, ["N", 6])], [dynamic_input("y", TensorProto.FLOAT, ["N", 4])],
                    13, "tf2onnx_cond")
    x = rng.standard_normal((3, 6)).astype(np.float32)
    return model, [x + 1.0]  # mean > 0: the then-branch; run_model_tests checks one input set


MODELS = {"paddle_ocr_det": paddle_ocr_det, "paddle_ocr_rec": paddle_ocr_rec, "tf_nhwc_cnn": tf_nhwc_cnn,
          "tf_cond": tf_cond}


def save(name, model, inputs, out_dir, ort_path):
    directory = os.path.join(out_dir, name)
    os.makedirs(directory, exist_ok=True)
    onnx.save(model, os.path.join(directory, "model.onnx"))
    save_with_onnxruntime_outputs(directory, inputs, ort_path)
    print("%-16s %8.1f KiB" % (name, os.path.getsize(os.path.join(directory, "model.onnx")) / 1024))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--ort-path", help="node_modules directory holding onnxruntime-node")
    parser.add_argument("--only", help="build just this model")
    args = parser.parse_args()
    for name, build in MODELS.items():
        if args.only and name != args.only:
            continue
        model, inputs = build(np.random.default_rng(zlib.crc32(name.encode())))  # seeded per model
        save(name, model, inputs, args.out_dir, args.ort_path)


if __name__ == "__main__":
    main()
