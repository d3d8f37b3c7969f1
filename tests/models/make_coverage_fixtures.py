#!/usr/bin/python3
"""Exports the small recurrent and quantized models kiln is checked against onnxruntime with.

Issue 3 asks for models from other exporters than the plain-CNN path: recurrent layers as PyTorch exports
them, QDQ-quantized graphs as quantization tools write them, and the attribute combinations of the ONNX RNN
and integer operators that the backend node tests leave out. Each lands in tests/models/data/<name>/ in the
layout of make_fixtures.py's "small" set (model.onnx, input_K.npy, expected_K.npy from onnxruntime through
ort_run.js), so tests/models/run_model_tests.py checks kiln against them. Weights are random (seeded).

  lstm_tagger      PyTorch: bidirectional, batch_first, two-layer LSTM and a linear head
  gru_encoder      PyTorch: two-layer GRU (linear_before_reset=1 as PyTorch exports it), output and h_n
  qdq_cnn          onnx.helper: QuantizeLinear/DequantizeLinear around two Convs (per-channel int8 weights,
                   int32 biases) and a MatMul, uint8 activations: the QDQ form of static quantization
  rnn_variants     onnx.helper: one graph with an RNN, GRU and LSTM node each exercising what the node tests
                   do not: reverse and bidirectional runs, sequence_lens, initial states, peepholes,
                   clip, non-default activations with alpha/beta, GRU linear_before_reset=0 and 1, LSTM
                   input_forget, and nodes without biases
  integer_ops      onnx.helper: DynamicQuantizeLinear feeding MatMulInteger (dynamic quantization's pattern),
                   ConvInteger and QLinearConv with strides, groups, padding and per-channel weight scales

PyTorch models are checked against PyTorch's own outputs before being kept, like make_fixtures.py does.

usage: make_coverage_fixtures.py OUTDIR [--ort-path NODE_MODULES] [--only NAME]
"""
import argparse
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from fixture_io import save_with_onnxruntime_outputs

OPSET = 13


# ---- PyTorch recurrent models -------------------------------------------------------------------------------

class LSTMTagger(nn.Module):
    """Sequence tagger: embeddings in, a bidirectional two-layer LSTM over batch-first input, per-step scores."""

    def __init__(self, features=8, hidden=12, tags=5):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, tags)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y)


class GRUEncoder(nn.Module):
    """Two-layer GRU over time-major input; returns the whole output sequence and the final states."""

    def __init__(self, features=6, hidden=10):
        super().__init__()
        self.gru = nn.GRU(features, hidden, num_layers=2)

    def forward(self, x):
        return self.gru(x)


def torch_models(rng):
    return {
        "lstm_tagger": (LSTMTagger(), [rng.standard_normal((2, 7, 8)).astype(np.float32)], ["tokens"], ["scores"],
                        {"tokens": {0: "batch", 1: "sequence"}, "scores": {0: "batch", 1: "sequence"}}),
        "gru_encoder": (GRUEncoder(), [rng.standard_normal((9, 3, 6)).astype(np.float32)], ["sequence"],
                        ["outputs", "final_state"], None),
    }


def export_torch(name, spec, directory):
    model, inputs, input_names, output_names, dynamic_axes = spec
    model.eval()
    tensors = tuple(torch.from_numpy(x) for x in inputs)
    with torch.no_grad():
        outputs = model(*tensors)
        torch.onnx.export(model, tensors, os.path.join(directory, "model.onnx"), opset_version=OPSET,
                          input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return inputs, [o.numpy() for o in outputs]


# ---- graphs built with onnx.helper --------------------------------------------------------------------------

def save_graph(directory, nodes, inputs, outputs, initializers, name):
    """Saves the graph with its outputs' shapes filled in by ONNX shape inference, after the checker passes."""
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kiln fixtures",
                              doc_string="made by tests/models/make_coverage_fixtures.py (random seeded weights)")
    inferred_graph = onnx.shape_inference.infer_shapes(model).graph
    inferred = {v.name: v for v in list(inferred_graph.value_info) + list(inferred_graph.output)}
    for out in model.graph.output:
        out.type.CopyFrom(inferred[out.name].type)
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(directory, "model.onnx"))


def float_input(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def output(name, elem_type=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem_type, None)


def init(name, array):
    return numpy_helper.from_array(array, name)


def qdq_cnn(rng, directory):
    """x (float) -> Q/DQ -> Conv(per-channel int8 W, int32 B) -> Relu -> Q/DQ -> Conv(stride 2) -> Q/DQ ->
    GlobalAveragePool -> Flatten -> MatMul(per-column int8 W) -> Q/DQ -> logits: the graph a static QDQ
    quantizer writes, with every weight stored quantized and dequantized in the graph."""
    nodes, inits = [], []

    def qdq(value, scale, zero):
        inits.extend([init(value + "_scale", np.float32(scale)), init(value + "_zero", np.uint8(zero))])
        nodes.append(helper.make_node("QuantizeLinear", [value, value + "_scale", value + "_zero"], [value + "_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [value + "_q", value + "_scale", value + "_zero"],
                                      [value + "_dq"]))
        return value + "_dq"

    def weight(name, shape, axis, in_scale):
        """int8 weights per output channel along `axis` (symmetric, zero point 0) and their DequantizeLinear."""
        w = rng.standard_normal(shape).astype(np.float32) * 0.3
        reduce = tuple(d for d in range(len(shape)) if d != axis)
        scale = (np.abs(w).max(axis=reduce) / 127.0).astype(np.float32)
        shaped = scale.reshape([-1 if d == axis else 1 for d in range(len(shape))])
        q = np.clip(np.rint(w / shaped), -127, 127).astype(np.int8)
        inits.extend([init(name + "_q", q), init(name + "_scale", scale),
                      init(name + "_zero", np.zeros(scale.shape, np.int8))])
        nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zero"],
                                      [name + "_dq"], axis=axis))
        return name + "_dq", scale * in_scale

    def bias(name, count, scale):
        """int32 bias with scale x_scale * w_scale per channel, as QDQ tools store it."""
        b = (rng.standard_normal(count) * 0.1 / scale).round().astype(np.int32)
        inits.extend([init(name + "_q", b), init(name + "_scale", scale.astype(np.float32)),
                      init(name + "_zero", np.zeros(count, np.int32))])
        nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zero"],
                                      [name + "_dq"], axis=0))
        return name + "_dq"

    x = qdq("image", 0.02, 128)
    w1, s1 = weight("conv1_w", (8, 3, 3, 3), 0, 0.02)
    nodes.append(helper.make_node("Conv", [x, w1, bias("conv1_b", 8, s1)], ["conv1"], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["conv1"], ["relu1"]))
    a1 = qdq("relu1", 0.03, 0)
    w2, s2 = weight("conv2_w", (16, 8, 3, 3), 0, 0.03)
    nodes.append(helper.make_node("Conv", [a1, w2, bias("conv2_b", 16, s2)], ["conv2"], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    a2 = qdq("conv2", 0.05, 120)
    nodes.append(helper.make_node("GlobalAveragePool", [a2], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
    a3 = qdq("flat", 0.02, 128)
    w3, _ = weight("fc_w", (16, 10), 1, 0.02)
    nodes.append(helper.make_node("MatMul", [a3, w3], ["fc"]))
    logits = qdq("fc", 0.04, 128)
    nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    save_graph(directory, nodes, [float_input("image", [1, 3, 12, 12])], [output("logits")], inits, "qdq_cnn")
    return [rng.uniform(-2.0, 2.0, (1, 3, 12, 12)).astype(np.float32)]


def rnn_weights(rng, directions, gates, hidden, features):
    w = (rng.standard_normal((directions, gates * hidden, features)) * 0.4).astype(np.float32)
    r = (rng.standard_normal((directions, gates * hidden, hidden)) * 0.4).astype(np.float32)
    b = (rng.standard_normal((directions, 2 * gates * hidden)) * 0.2).astype(np.float32)
    return w, r, b


def rnn_variants(rng, directory):
    """Three recurrent nodes over one input x (time-major, 6 steps, batch 3, 4 features) with sequence lengths
    6, 3 and 1. Layout 1 is left to the node tests: onnxruntime refuses it."""
    seq, batch, features = 6, 3, 4
    inits = [init("lengths", np.array([6, 3, 1], np.int32))]
    nodes = []

    # RNN: bidirectional, initial state, LeakyRelu in one direction and ScaledTanh in the other
    w, r, b = rnn_weights(rng, 2, 1, 5, features)
    h0 = rng.standard_normal((2, batch, 5)).astype(np.float32)
    inits += [init("rnn_w", w), init("rnn_r", r), init("rnn_b", b), init("rnn_h0", h0)]
    nodes.append(helper.make_node("RNN", ["x", "rnn_w", "rnn_r", "rnn_b", "lengths", "rnn_h0"],
                                  ["rnn_y", "rnn_y_h"], hidden_size=5, direction="bidirectional",
                                  activations=["LeakyRelu", "ScaledTanh"], activation_alpha=[0.2, 0.8],
                                  activation_beta=[1.3]))

    # GRU: reverse, linear_before_reset=0, clip, HardSigmoid and Softsign
    w, r, b = rnn_weights(rng, 1, 3, 4, features)
    inits += [init("gru_w", w), init("gru_r", r), init("gru_b", b)]
    nodes.append(helper.make_node("GRU", ["x", "gru_w", "gru_r", "gru_b", "lengths"], ["gru_y", "gru_y_h"],
                                  hidden_size=4, direction="reverse", clip=1.5,
                                  activations=["HardSigmoid", "Softsign"], activation_alpha=[0.25],
                                  activation_beta=[0.45]))

    # LSTM: bidirectional, peepholes, initial h and c, input_forget, Elu/Softplus/Tanh in the second direction
    w, r, b = rnn_weights(rng, 2, 4, 3, features)
    p = (rng.standard_normal((2, 9)) * 0.3).astype(np.float32)
    h0 = rng.standard_normal((2, batch, 3)).astype(np.float32)
    c0 = rng.standard_normal((2, batch, 3)).astype(np.float32)
    inits += [init("lstm_w", w), init("lstm_r", r), init("lstm_b", b), init("lstm_p", p), init("lstm_h0", h0),
              init("lstm_c0", c0)]
    nodes.append(helper.make_node("LSTM", ["x", "lstm_w", "lstm_r", "lstm_b", "lengths", "lstm_h0", "lstm_c0",
                                           "lstm_p"], ["lstm_y", "lstm_y_h", "lstm_y_c"], hidden_size=3,
                                  direction="bidirectional", input_forget=1,
                                  activations=["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Elu", "Softplus"],
                                  activation_alpha=[0.7]))
    # without biases: GRU with linear_before_reset=1 and an initial state, LSTM reversed with clip
    w, r, _ = rnn_weights(rng, 1, 3, 4, features)
    h0 = rng.standard_normal((1, batch, 4)).astype(np.float32)
    inits += [init("gru2_w", w), init("gru2_r", r), init("gru2_h0", h0)]
    nodes.append(helper.make_node("GRU", ["x", "gru2_w", "gru2_r", "", "lengths", "gru2_h0"], ["gru2_y"],
                                  hidden_size=4, linear_before_reset=1))
    w, r, _ = rnn_weights(rng, 1, 4, 3, features)
    inits += [init("lstm2_w", w), init("lstm2_r", r)]
    nodes.append(helper.make_node("LSTM", ["x", "lstm2_w", "lstm2_r"], ["lstm2_y"], hidden_size=3,
                                  direction="reverse", clip=0.8))
    outputs = ["rnn_y", "rnn_y_h", "gru_y", "gru_y_h", "lstm_y", "lstm_y_h", "lstm_y_c", "gru2_y", "lstm2_y"]
    save_graph(directory, nodes, [float_input("x", [seq, batch, features])], [output(o) for o in outputs], inits,
               "rnn_variants")
    return [rng.standard_normal((seq, batch, features)).astype(np.float32)]


def integer_ops(rng, directory):
    """a (float) -> DynamicQuantizeLinear -> MatMulInteger with uint8 weights -> Cast -> Mul by the scales;
    image (uint8) -> ConvInteger (stride 2, pads, uint8 weights with a zero point) and QLinearConv (2 groups,
    int8 weights with per-channel scales, int32 bias)."""
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["a"], ["a_q", "a_scale", "a_zero"]),
        helper.make_node("MatMulInteger", ["a_q", "mm_w", "a_zero", "mm_w_zero"], ["mm_i32"]),
        helper.make_node("Cast", ["mm_i32"], ["mm_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["a_scale", "mm_w_scale"], ["mm_scale"]),
        helper.make_node("Mul", ["mm_f", "mm_scale"], ["matmul"]),
        helper.make_node("ConvInteger", ["image", "ci_w", "image_zero", "ci_w_zero"], ["conv_integer"],
                         strides=[2, 2], pads=[1, 0, 1, 1]),
        helper.make_node("QLinearConv", ["image", "image_scale", "image_zero", "qc_w", "qc_w_scale", "qc_w_zero",
                                         "y_scale", "y_zero", "qc_b"], ["qlinear_conv"], group=2,
                         pads=[1, 1, 1, 1]),
    ]
    inits = [
        init("mm_w", rng.integers(0, 256, (12, 7)).astype(np.uint8)), init("mm_w_zero", np.uint8(131)),
        init("mm_w_scale", np.float32(0.01)),
        init("image_zero", np.uint8(121)), init("image_scale", np.float32(0.05)),
        init("ci_w", rng.integers(0, 256, (3, 4, 3, 2)).astype(np.uint8)), init("ci_w_zero", np.uint8(127)),
        init("qc_w", rng.integers(-128, 128, (6, 2, 3, 3)).astype(np.int8)),
        init("qc_w_scale", rng.uniform(0.002, 0.01, 6).astype(np.float32)),
        init("qc_w_zero", np.zeros(6, np.int8)),
        init("y_scale", np.float32(0.07)), init("y_zero", np.uint8(118)),
        init("qc_b", rng.integers(-2000, 2000, 6).astype(np.int32)),
    ]
    inputs = [float_input("a", [5, 12]), helper.make_tensor_value_info("image", TensorProto.UINT8, [2, 4, 7, 6])]
    outputs = [output("matmul"), output("conv_integer", TensorProto.INT32),
               output("qlinear_conv", TensorProto.UINT8)]
    save_graph(directory, nodes, inputs, outputs, inits, "integer_ops")
    return [rng.standard_normal((5, 12)).astype(np.float32), rng.integers(0, 256, (2, 4, 7, 6)).astype(np.uint8)]


HELPER_MODELS = {"qdq_cnn": qdq_cnn, "rnn_variants": rnn_variants, "integer_ops": integer_ops}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--ort-path", help="node_modules directory holding onnxruntime-node")
    parser.add_argument("--only", help="export just this model")
    args = parser.parse_args()
    torch.manual_seed(20261126)
    rng = np.random.default_rng(20261126)
    specs = torch_models(rng)
    for name in list(specs) + list(HELPER_MODELS):
        if args.only and name != args.only:
            continue
        directory = os.path.join(args.out_dir, name)
        os.makedirs(directory, exist_ok=True)
        if name in specs:
            inputs, torch_outputs = export_torch(name, specs[name], directory)
        else:
            inputs, torch_outputs = HELPER_MODELS[name](rng, directory), None
        save_with_onnxruntime_outputs(directory, inputs, args.ort_path)
        for k, want in enumerate(torch_outputs or []):
            got = np.load(os.path.join(directory, "expected_%d.npy" % k))
            if not np.allclose(got, want, rtol=1e-3, atol=1e-4):
                sys.exit("%s: onnxruntime and PyTorch disagree on output %d (max diff %g); not keeping it" % (
                    name, k, np.abs(got - want).max()))
        size = os.path.getsize(os.path.join(directory, "model.onnx")) / 1024
        print("%-14s %7.1f KiB%s" % (name, size, "  onnxruntime == PyTorch within 1e-3" if torch_outputs else ""))


if __name__ == "__main__":
    main()
