#!/usr/bin/python3
"""Builds tests/serve/data/dtypes/1/model.onnx: one input per V2 datatype (BYTES too), each passed through
Identity to an output of the same type, all of shape [batch, 3], and one more output, s_int32: the INT32 input
cast to strings (strings a session makes, which live only until its next run). test_serve.py sends every
datatype to it, as JSON and as binary, and expects its values back: the decoding and encoding of every
datatype, checked end to end.

usage: /usr/bin/python3 tests/serve/make_fixtures.py
"""
import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))

DATATYPES = [("FP64", TensorProto.DOUBLE), ("FP32", TensorProto.FLOAT), ("FP16", TensorProto.FLOAT16),
             ("BF16", TensorProto.BFLOAT16), ("INT8", TensorProto.INT8), ("INT16", TensorProto.INT16),
             ("INT32", TensorProto.INT32), ("INT64", TensorProto.INT64), ("UINT8", TensorProto.UINT8),
             ("UINT16", TensorProto.UINT16), ("UINT32", TensorProto.UINT32), ("UINT64", TensorProto.UINT64),
             ("BOOL", TensorProto.BOOL), ("BYTES", TensorProto.STRING)]


def main():
    inputs, outputs, nodes = [], [], []
    for name, elem in DATATYPES:
        x, y = "x_" + name.lower(), "y_" + name.lower()
        inputs.append(helper.make_tensor_value_info(x, elem, ["batch", 3]))
        outputs.append(helper.make_tensor_value_info(y, elem, ["batch", 3]))
        nodes.append(helper.make_node("Identity", [x], [y], name="identity_" + name.lower()))
    outputs.append(helper.make_tensor_value_info("s_int32", TensorProto.STRING, ["batch", 3]))
    nodes.append(helper.make_node("Cast", ["x_int32"], ["s_int32"], name="int32_to_string", to=TensorProto.STRING))
    graph = helper.make_graph(nodes, "dtypes", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="make_fixtures.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    out = os.path.join(HERE, "data", "dtypes", "1")
    os.makedirs(out, exist_ok=True)
    onnx.save(model, os.path.join(out, "model.onnx"))
    with open(os.path.join(out, "..", "config.json"), "w") as f:
        f.write('{"description": "tests/serve/make_fixtures.py: every V2 datatype through Identity; requests wait '
                'up to 2 ms to share a batch", "max_queue_delay_us": 2000}\n')


if __name__ == "__main__":
    main()
