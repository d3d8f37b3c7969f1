#!/usr/bin/python3
"""Builds small models whose graphs branch (If), iterate (Loop, with scan outputs) and scan (Scan), saves
them under tests/models/data/<name>/ with their inputs and onnxruntime's outputs, in the layout
run_model_tests.py reads (model.onnx, input_K.npy, expected_K.npy).

The graphs are written with onnx.helper (opset 13): exporters emit control flow only for scripted code,
and hand-written graphs can aim at what matters — bodies reading outer-scope values and the iteration
number, trip counts and conditions computed from the data, branches of different output shapes, nested
bodies, reversed scans along a non-leading axis. Weights and inputs are random (seeded). The expected
outputs are onnxruntime's (tests/models/ort_run.js), checked against onnx's reference evaluator where it
exists.

usage: make_control_fixtures.py [OUTDIR] [--ort-path NODE_MODULES]
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fixture_io import save_with_onnxruntime_outputs

OPSET = 13
HERE = os.path.dirname(os.path.abspath(__file__))
F = TensorProto.FLOAT
I64 = TensorProto.INT64
rng = np.random.default_rng(1234)


def weight(name, *shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.5, name)


def constant(name, value):
    return numpy_helper.from_array(np.array(value), name)


def make_model(graph):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="kiln make_control_fixtures.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def if_model():
    """cond = ReduceSum(x) > 0 decides: then MatMul(x, W) + b ([N,4], W and b from the outer graph), else
    Transpose(Relu(x)) ([3,N]): the branches differ in shape."""
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["t"])],
                               "then_body", [], [helper.make_tensor_value_info("t", F, ["N", 4])])
    else_g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Transpose", ["r"], ["e"], perm=[1, 0])],
                               "else_body", [], [helper.make_tensor_value_info("e", F, [3, "N"])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Greater", ["total", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)]
    graph = helper.make_graph(nodes, "control_if", [helper.make_tensor_value_info("x", F, ["N", 3])],
                              [helper.make_tensor_value_info("y", F, ["rows", "cols"])],
                              [weight("W", 3, 4), weight("b", 4), constant("zero", np.float32(0))])
    return make_model(graph)


def loop_model():
    """A recurrent cell as a Loop: the trip count is x's length (Shape -> Gather), each iteration reads row
    i of the outer x and the outer weights, h = Tanh(h @ U + x[i] @ W); outputs the final h and every h
    stacked (a scan output). An inner If on the iteration number adds a bias only on even steps."""
    even = helper.make_graph([helper.make_node("Add", ["h_new", "b"], ["h_even"])], "even",
                             [], [helper.make_tensor_value_info("h_even", F, [4])])
    odd = helper.make_graph([helper.make_node("Identity", ["h_new"], ["h_odd"])], "odd",
                            [], [helper.make_tensor_value_info("h_odd", F, [4])])
    body_nodes = [
        helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
        helper.make_node("MatMul", ["row", "W"], ["xw"]),
        helper.make_node("MatMul", ["h_in", "U"], ["hu"]),
        helper.make_node("Add", ["xw", "hu"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["h_new"]),
        helper.make_node("Mod", ["i", "two"], ["parity"]),
        helper.make_node("Equal", ["parity", "zero_i"], ["is_even"]),
        helper.make_node("If", ["is_even"], ["h_out"], then_branch=even, else_branch=odd),
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        helper.make_node("Identity", ["h_out"], ["h_scan"]),
    ]
    body = helper.make_graph(body_nodes, "cell",
                             [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("h_in", F, [4])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("h_out", F, [4]), helper.make_tensor_value_info("h_scan", F, [4])])
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero_i"], ["trips"], axis=0),
             helper.make_node("Loop", ["trips", "", "h0"], ["h", "hs"], body=body)]
    graph = helper.make_graph(nodes, "control_loop",
                              [helper.make_tensor_value_info("x", F, ["T", 3]), helper.make_tensor_value_info("h0", F, [4])],
                              [helper.make_tensor_value_info("h", F, [4]), helper.make_tensor_value_info("hs", F, ["T", 4])],
                              [weight("W", 3, 4), weight("U", 4, 4), weight("b", 4), constant("two", np.int64(2)),
                               constant("zero_i", np.int64(0))])
    return make_model(graph)


def scan_model():
    """Scan (opset 13) over x[B,T,3] along axis 1, backwards: a running sum and a running max as states,
    the scaled sum as a scan output stored along axis 1 in reverse, plus a second scan input y[T,3]."""
    body_nodes = [helper.make_node("Add", ["sum_in", "xt"], ["s1"]),
                  helper.make_node("Add", ["s1", "yt"], ["sum_out"]),
                  helper.make_node("Max", ["max_in", "xt"], ["max_out"]),
                  helper.make_node("Mul", ["sum_out", "scale"], ["scaled"])]
    body = helper.make_graph(body_nodes, "step",
                             [helper.make_tensor_value_info("sum_in", F, ["B", 3]), helper.make_tensor_value_info("max_in", F, ["B", 3]),
                              helper.make_tensor_value_info("xt", F, ["B", 3]), helper.make_tensor_value_info("yt", F, [3])],
                             [helper.make_tensor_value_info("sum_out", F, ["B", 3]), helper.make_tensor_value_info("max_out", F, ["B", 3]),
                              helper.make_tensor_value_info("scaled", F, ["B", 3])])
    scan = helper.make_node("Scan", ["s0", "m0", "x", "y"], ["sum", "max", "scaled_all"], body=body, num_scan_inputs=2,
                            scan_input_axes=[1, 0], scan_input_directions=[1, 1], scan_output_axes=[1],
                            scan_output_directions=[1])
    graph = helper.make_graph([scan], "control_scan",
                              [helper.make_tensor_value_info("s0", F, ["B", 3]), helper.make_tensor_value_info("m0", F, ["B", 3]),
                               helper.make_tensor_value_info("x", F, ["B", "T", 3]), helper.make_tensor_value_info("y", F, ["T", 3])],
                              [helper.make_tensor_value_info("sum", F, ["B", 3]), helper.make_tensor_value_info("max", F, ["B", 3]),
                               helper.make_tensor_value_info("scaled_all", F, ["B", "T", 3])],
                              [constant("scale", np.float32(0.5))])
    return make_model(graph)


def fixtures():
    x_pos = np.abs(rng.standard_normal((5, 3))).astype(np.float32)
    x_neg = -np.abs(rng.standard_normal((4, 3))).astype(np.float32)
    return {
        "control_if_then": (if_model(), [x_pos]),
        "control_if_else": (if_model(), [x_neg]),
        "control_loop": (loop_model(), [rng.standard_normal((6, 3)).astype(np.float32),
                                        rng.standard_normal(4).astype(np.float32)]),
        "control_scan": (scan_model(), [rng.standard_normal((2, 3)).astype(np.float32),
                                        rng.standard_normal((2, 3)).astype(np.float32),
                                        rng.standard_normal((2, 5, 3)).astype(np.float32),
                                        rng.standard_normal((5, 3)).astype(np.float32)]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=os.path.join(HERE, "data"))
    parser.add_argument("--ort-path", default=os.environ.get("NODE_PATH"))
    args = parser.parse_args()
    for name, (model, inputs) in fixtures().items():
        directory = os.path.join(args.out_dir, name)
        os.makedirs(directory, exist_ok=True)
        onnx.save(model, os.path.join(directory, "model.onnx"))
        save_with_onnxruntime_outputs(directory, inputs, args.ort_path)
        print("%-18s %6.1f KiB" % (name, os.path.getsize(os.path.join(directory, "model.onnx")) / 1024))


if __name__ == "__main__":
    main()
