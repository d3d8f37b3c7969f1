"""What every fixture script does last: save a model's inputs and onnxruntime's outputs beside model.onnx.

A model directory holds model.onnx, input_K.npy and expected_K.npy, the layout run_model_tests.py reads.
onnxruntime runs through ort_run.js (onnxruntime-node, found through NODE_PATH or ort_path).
"""
import os
import subprocess

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def save_with_onnxruntime_outputs(directory, inputs, ort_path=None):
    """Writes input_K.npy for each input, runs directory/model.onnx in onnxruntime, returns its outputs."""
    paths = []
    for i, x in enumerate(inputs):
        paths.append(os.path.join(directory, "input_%d.npy" % i))
        np.save(paths[-1], x)
    env = dict(os.environ)
    if ort_path:
        env["NODE_PATH"] = ort_path
    subprocess.run(["node", os.path.join(HERE, "ort_run.js"), os.path.join(directory, "model.onnx"), directory] + paths,
                   check=True, env=env)
    outputs = []
    while os.path.exists(os.path.join(directory, "expected_%d.npy" % len(outputs))):
        outputs.append(np.load(os.path.join(directory, "expected_%d.npy" % len(outputs))))
    return outputs
