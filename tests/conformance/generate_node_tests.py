#!/usr/bin/python3
"""Generates the ONNX backend node tests (model.onnx + test_data_set_*/{input,output}_K.pb) from Debian's
python3-onnx into a directory, the same data onnxruntime's conformance numbers are quoted against.

usage: generate_node_tests.py OUTDIR

onnx 1.12's generators still use NumPy aliases (np.float, np.int, ...) that Debian's NumPy removed; they are
restored here before onnx is imported.
"""
import os
import sys

import numpy as np

for alias, builtin in [("float", float), ("int", int), ("bool", bool), ("object", object),
                       ("complex", complex), ("str", str)]:
    if alias not in np.__dict__:
        setattr(np, alias, builtin)

from onnx.backend.test import cmd_tools  # noqa: E402  (must follow the aliases)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    stamp = os.path.join(out, ".complete")
    if os.path.exists(stamp):
        return
    sys.argv = [sys.argv[0], "generate-data", "-o", out]
    cmd_tools.main()
    open(stamp, "w").close()


if __name__ == "__main__":
    main()
